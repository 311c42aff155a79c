//! A streaming writer (and a reader, for inspection) for the cpio "newc" format, as the kernel's `init/initramfs.c` unpacks it.
//!
//! Format (Documentation/driver-api/early-userspace/buffer-format.rst): each entry is a 110-byte ASCII header
//! (`070701` and thirteen 8-digit hex fields), the NUL-terminated name padded to a multiple of four, then the
//! data padded to a multiple of four. The archive ends with an entry named `TRAILER!!!`.

use std::io::{self, Write};

mod read;
pub use read::{ReadEntry, Reader};

/// The newc magic (buffer-format.rst, "c_magic"): no header checksum.
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Header size: six magic bytes and thirteen 8-digit hex fields.
pub const HEADER_LEN: usize = 6 + 13 * 8;
/// Name of the entry that ends an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// One archive entry's header. Sizes and times are already in the format's 32-bit range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub ino: u32,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub filesize: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// A failure while writing an archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("`{name}` is {size} bytes; cpio newc records sizes in 32 bits, so files must be under 4 GiB")]
    TooLarge { name: String, size: u64 },
    #[error("entry `{name}` promised {promised} bytes of data but {written} were written")]
    SizeMismatch { name: String, promised: u64, written: u64 },
    #[error("entry name `{0}` contains a NUL byte")]
    NulInName(String),
    #[error("cannot write the cpio archive: {0}")]
    Io(#[from] io::Error),
}

/// Streams newc entries into `W`. Call [`entry`](Self::entry), write exactly `filesize` bytes through
/// [`data`](Self::data), repeat, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    offset: u64,
    open: Option<OpenEntry>,
}

#[derive(Debug)]
struct OpenEntry {
    name: String,
    promised: u64,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer { out, offset: 0, open: None }
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Writes the header and name of the next entry, closing the previous one.
    pub fn entry(&mut self, h: &Header<'_>) -> Result<(), CpioError> {
        self.close_entry()?;
        if h.name.contains(&0) {
            return Err(CpioError::NulInName(String::from_utf8_lossy(h.name).into_owned()));
        }
        let namesize = u32::try_from(h.name.len() + 1)
            .map_err(|_| CpioError::NulInName(String::from_utf8_lossy(h.name).into_owned()))?;
        let fields =
            [h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.filesize, 0, 0, h.rdev_major, h.rdev_minor, namesize, 0];
        let mut header = Vec::with_capacity(HEADER_LEN + h.name.len() + 4);
        header.extend_from_slice(NEWC_MAGIC);
        for f in fields {
            // write! into a Vec cannot fail.
            let _ = write!(header, "{f:08X}");
        }
        header.extend_from_slice(h.name);
        header.push(0);
        header.resize(header.len() + pad4(header.len() as u64), 0);
        self.put(&header)?;
        self.open = Some(OpenEntry {
            name: String::from_utf8_lossy(h.name).into_owned(),
            promised: u64::from(h.filesize),
            written: 0,
        });
        Ok(())
    }

    /// A writer for the current entry's data. Writing more than the header promised is an error.
    pub fn data(&mut self) -> DataWriter<'_, W> {
        DataWriter { w: self }
    }

    /// The inner writer, to ask what it can take (see [`data_by_reference`](Self::data_by_reference)).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Counts `len` bytes of the current entry's data as written, without writing them, and returns the inner
    /// writer: for an output that takes the data by reference (an archive assembled from pieces of files, as
    /// clay-initramfs makes one), which must then place exactly those `len` bytes there.
    pub fn data_by_reference(&mut self, len: u64) -> Result<&mut W, CpioError> {
        let Some(open) = self.open.as_mut() else {
            return Err(CpioError::Io(io::Error::other("cpio data placed outside an entry")));
        };
        if open.written + len > open.promised {
            return Err(CpioError::SizeMismatch {
                name: open.name.clone(),
                promised: open.promised,
                written: open.written + len,
            });
        }
        open.written += len;
        self.offset += len;
        Ok(&mut self.out)
    }

    /// Writes the trailer entry and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.entry(&Header {
            name: TRAILER,
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdev_major: 0,
            rdev_minor: 0,
        })?;
        self.close_entry()?;
        Ok(self.out)
    }

    fn close_entry(&mut self) -> Result<(), CpioError> {
        if let Some(open) = self.open.take() {
            if open.written != open.promised {
                return Err(CpioError::SizeMismatch {
                    name: open.name,
                    promised: open.promised,
                    written: open.written,
                });
            }
            let pad = pad4(self.offset);
            self.put(&[0u8; 3][..pad])?;
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

/// Writes one entry's data; see [`Writer::data`].
#[derive(Debug)]
pub struct DataWriter<'a, W: Write> {
    w: &'a mut Writer<W>,
}

impl<W: Write> Write for DataWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(open) = self.w.open.as_mut() else {
            return Err(io::Error::other("cpio data written outside an entry"));
        };
        if open.written + buf.len() as u64 > open.promised {
            return Err(io::Error::other(format!(
                "entry `{}` promised {} bytes of data but more were written",
                open.name, open.promised
            )));
        }
        open.written += buf.len() as u64;
        self.w.put(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.out.flush()
    }
}

/// Padding needed after `offset` to reach a multiple of four.
fn pad4(offset: u64) -> usize {
    ((4 - offset % 4) % 4) as usize
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
