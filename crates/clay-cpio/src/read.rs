//! Reading newc archives back: entry names and, on request, their data. Used by `clay inspect` to find what the
//! builder put in an initramfs; every field is checked, so damaged input is an error, never a panic.

use std::io::{self, Read};

use crate::{HEADER_LEN, TRAILER};

/// The largest name accepted; the kernel's own limit is PATH_MAX.
const MAX_NAME: usize = 4096;

/// One entry as read: its name, mode and data size. Its data follows in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    pub name: Vec<u8>,
    pub mode: u32,
    pub filesize: u32,
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads newc entries from a stream positioned at an entry header.
#[derive(Debug)]
pub struct Reader<R: Read> {
    input: R,
    /// Bytes of the current entry's data (with padding) not yet consumed.
    pending: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader { input, pending: 0 }
    }

    /// The next entry, or `None` at the trailer. Skips whatever of the previous entry's data was not read.
    pub fn next_entry(&mut self) -> io::Result<Option<ReadEntry>> {
        self.skip_pending()?;
        let mut header = [0u8; HEADER_LEN];
        self.input.read_exact(&mut header)?;
        if !(header.starts_with(b"070701") || header.starts_with(b"070702")) {
            return Err(invalid("a cpio entry does not start with the newc magic 070701".into()));
        }
        let field = |i: usize| -> io::Result<u32> {
            let text = std::str::from_utf8(&header[6 + i * 8..6 + i * 8 + 8])
                .map_err(|_| invalid("a cpio header field is not hexadecimal".into()))?;
            u32::from_str_radix(text, 16)
                .map_err(|_| invalid(format!("the cpio header field `{text}` is not hexadecimal")))
        };
        let (mode, filesize, namesize) = (field(1)?, field(6)?, field(11)?);
        let namesize = usize::try_from(namesize).unwrap_or(usize::MAX);
        if namesize == 0 || namesize > MAX_NAME {
            return Err(invalid(format!("a cpio entry name of {namesize} bytes")));
        }
        let mut name = vec![0u8; (HEADER_LEN + namesize).next_multiple_of(4) - HEADER_LEN];
        self.input.read_exact(&mut name)?;
        name.truncate(namesize - 1);
        if name == TRAILER {
            return Ok(None);
        }
        self.pending = u64::from(filesize).next_multiple_of(4);
        Ok(Some(ReadEntry { name, mode, filesize }))
    }

    /// The current entry's data, whole (for small files: the caller checks `filesize` first).
    pub fn read_data(&mut self, entry: &ReadEntry) -> io::Result<Vec<u8>> {
        let mut data = vec![0u8; usize::try_from(entry.filesize).unwrap_or(usize::MAX)];
        self.input.read_exact(&mut data)?;
        self.pending -= u64::from(entry.filesize);
        Ok(data)
    }

    fn skip_pending(&mut self) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.input).take(self.pending), &mut io::sink())?;
        if skipped != self.pending {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.pending = 0;
        Ok(())
    }

    /// The stream after the trailer (padding included), for the next archive.
    pub fn into_inner(self) -> R {
        self.input
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    use crate::{Header, Writer};

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let mut w = Writer::new(Vec::new());
        for (name, data) in [(&b"."[..], &b""[..]), (b".clay/boot", b"clay-boot 1\n"), (b"bin/sh", b"abcde")] {
            let filesize = u32::try_from(data.len()).unwrap();
            let mode = if data.is_empty() { 0o040_755 } else { 0o100_644 };
            let h = Header {
                name,
                ino: 1,
                mode,
                uid: 0,
                gid: 0,
                nlink: 1,
                mtime: 0,
                filesize,
                rdev_major: 0,
                rdev_minor: 0,
            };
            w.entry(&h).unwrap();
            w.data().write_all(data).unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(bytes.as_slice());
        assert_eq!(r.next_entry().unwrap().unwrap().name, b".");
        let boot = r.next_entry().unwrap().unwrap();
        assert_eq!(boot.name, b".clay/boot");
        assert_eq!(r.read_data(&boot).unwrap(), b"clay-boot 1\n");
        let sh = r.next_entry().unwrap().unwrap();
        assert_eq!((sh.name.as_slice(), sh.filesize), (&b"bin/sh"[..], 5));
        assert_eq!(r.next_entry().unwrap(), None, "unread data is skipped up to the trailer");
    }

    #[test]
    fn damaged_archives_are_errors() {
        assert!(Reader::new(&b"070701zzzzzzzz"[..]).next_entry().is_err());
        assert!(Reader::new(&[b'x'; 200][..]).next_entry().is_err());
        let mut header = b"070701".to_vec();
        header.extend(std::iter::repeat_n(b'0', 13 * 8));
        assert!(Reader::new(header.as_slice()).next_entry().is_err(), "a zero name size");
    }
}
