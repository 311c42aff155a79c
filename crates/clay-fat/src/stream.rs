//! A whole single-file volume as one `Read`, for putting an ESP image inside an ISO without a temporary copy.

use std::fmt;
use std::io::{self, ErrorKind, Read};

use crate::{FatError, FatLayout};

/// Reads a whole single-file volume in one pass: [`FatLayout::head`], then the file's data (exactly its planned
/// length, taken from `data`), then zeros up to [`FatLayout::size`]. Data that ends early is an
/// [`ErrorKind::UnexpectedEof`] error and data that goes on an [`ErrorKind::InvalidData`] one, each wrapping the
/// matching [`FatError`], never a silently wrong volume.
pub struct VolumeReader<R> {
    head: Vec<u8>,
    data: R,
    path: String,
    len: u64,
    size: u64,
    /// Bytes handed out so far.
    pos: u64,
    /// Whether `data` was found to end after `len` bytes.
    data_ended: bool,
}

impl<R: Read> VolumeReader<R> {
    /// The reader over `layout`'s volume with `data` as its file's contents; `None` unless [`FatLayout::head`]
    /// is (the volume holds exactly one file).
    pub fn new(layout: &FatLayout, data: R) -> Option<Self> {
        let (path, len) = layout.single_file()?;
        let head = layout.head()?;
        let path = path.to_owned();
        Some(VolumeReader { head, data, path, len, size: layout.size(), pos: 0, data_ended: false })
    }

    fn read_data(&mut self, buf: &mut [u8], data_start: u64) -> io::Result<usize> {
        let done = self.pos - data_start;
        let want = usize::try_from(self.len - done).unwrap_or(usize::MAX).min(buf.len());
        let n = self.data.read(&mut buf[..want])?.min(want);
        if n == 0 {
            let short = FatError::ShortData { path: self.path.clone(), expected: self.len, got: done };
            return Err(io::Error::new(ErrorKind::UnexpectedEof, short));
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Checks that `data` has nothing past its length, as [`write_fat`](crate::write_fat) does.
    fn expect_end(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        if self.data.read(&mut probe)? != 0 {
            let long = FatError::LongData { path: self.path.clone(), expected: self.len };
            return Err(io::Error::new(ErrorKind::InvalidData, long));
        }
        self.data_ended = true;
        Ok(())
    }
}

impl<R: Read> Read for VolumeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let data_start = self.head.len() as u64;
        if self.pos < data_start {
            let rest = usize::try_from(self.pos).ok().and_then(|p| self.head.get(p..)).unwrap_or_default();
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.pos += n as u64;
            return Ok(n);
        }
        if self.pos < data_start + self.len {
            return self.read_data(buf, data_start);
        }
        if !self.data_ended {
            self.expect_end()?;
        }
        let n = usize::try_from(self.size.saturating_sub(self.pos)).unwrap_or(usize::MAX).min(buf.len());
        buf[..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R> fmt::Debug for VolumeReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VolumeReader")
            .field("head_len", &self.head.len())
            .field("path", &self.path)
            .field("len", &self.len)
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}
