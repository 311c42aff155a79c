//! A byte range of a bigger device, seen as a device of its own: how a FAT volume is written into its GPT
//! partition of the disk file.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// `len` bytes of `inner` from `start`, as a `Read + Write + Seek` whose position 0 is `start`. Seeking past the
/// end or writing beyond it is an error (nothing of such a write is written); reads stop at the end.
#[derive(Debug)]
pub struct Window<D> {
    inner: D,
    start: u64,
    len: u64,
    pos: u64,
    /// Whether `inner` is known to be at `start + pos`, saving a seek per read or write.
    synced: bool,
}

impl<D: Seek> Window<D> {
    /// The window `start..start + len` of `inner`, positioned at its start.
    pub fn new(inner: D, start: u64, len: u64) -> io::Result<Window<D>> {
        if start.checked_add(len).is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the window ends past 2^64 bytes"));
        }
        Ok(Window { inner, start, len, pos: 0, synced: false })
    }

    /// The window's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives the underlying device back.
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn sync(&mut self) -> io::Result<()> {
        if !self.synced {
            self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
            self.synced = true;
        }
        Ok(())
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }
}

impl<D: Read + Seek> Read for Window<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = usize::try_from(self.remaining()).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.sync()?;
        let read = self.inner.read(&mut buf[..n]).inspect_err(|_| self.synced = false)?;
        self.pos += read as u64;
        Ok(read)
    }
}

impl<D: Write + Seek> Write for Window<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.remaining() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {}-byte write at offset {} would pass the end of the {}-byte window",
                    buf.len(),
                    self.pos,
                    self.len
                ),
            ));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.sync()?;
        let written = self.inner.write(buf).inspect_err(|_| self.synced = false)?;
        self.pos += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<D: Seek> Seek for Window<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        match target {
            Some(p) if p <= self.len => {
                if p != self.pos {
                    self.pos = p;
                    self.synced = false;
                }
                Ok(p)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("seek to {to:?} leaves the {}-byte window", self.len),
            )),
        }
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}
