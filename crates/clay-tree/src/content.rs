//! File content handles: where a file's bytes live until a writer streams them out.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the bytes of a regular file come from. Cloning a handle never copies the bytes.
#[derive(Debug, Clone)]
pub enum Content {
    /// Bytes held in memory (small generated files).
    Bytes(Arc<[u8]>),
    /// A file on the host, read when written out. `len` is its size when the source was read.
    Host { path: PathBuf, len: u64 },
    /// A byte range of an already open file (a plain tarball, or a spill file of a decompressed stream).
    Range { file: Arc<File>, offset: u64, len: u64 },
    /// Several contents one after another: an uncompressed archive whose large members stay where they already are
    /// instead of being copied into it.
    Concat(Arc<[Content]>),
}

/// Reading a file's content failed, or the content no longer matches what the source said.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: String, source: io::Error },
    #[error("`{path}` changed while being read: expected {expected} bytes, found {found}")]
    Changed { path: String, expected: u64, found: u64 },
    #[error("cannot write out `{path}`: {source}")]
    Write { path: String, source: io::Error },
}

impl Content {
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        Content::Bytes(bytes.into())
    }

    /// `parts` one after another; a single part is itself.
    pub fn concat(mut parts: Vec<Content>) -> Self {
        if parts.len() == 1 {
            if let Some(part) = parts.pop() {
                return part;
            }
        }
        Content::Concat(parts.into())
    }

    /// The number of bytes this content holds.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Host { len, .. } | Content::Range { len, .. } => *len,
            Content::Concat(parts) => parts.iter().map(Content::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Streams exactly [`len`](Self::len) bytes into `out`. `name` is the tree path, for messages.
    ///
    /// A host file that has grown or shrunk since it was scanned is an error rather than a silently different
    /// image: the size was already promised to the archive header.
    pub fn copy_to(&self, name: &str, out: &mut dyn Write) -> Result<u64, ContentError> {
        let write_err = |source| ContentError::Write { path: name.to_owned(), source };
        match self {
            Content::Bytes(b) => {
                out.write_all(b).map_err(write_err)?;
                Ok(b.len() as u64)
            }
            Content::Host { path, len } => {
                let read_err = |source| ContentError::Read { path: path.display().to_string(), source };
                // O_NOFOLLOW: the scan saw a regular file here; a symlink swapped in since must not be followed.
                let file = File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
                    .open(path)
                    .map_err(read_err)?;
                let copied = copy_exact(&mut file.take(len.saturating_add(1)), out, *len, name)?;
                if copied != *len {
                    return Err(ContentError::Changed {
                        path: path.display().to_string(),
                        expected: *len,
                        found: copied,
                    });
                }
                Ok(copied)
            }
            Content::Range { file, offset, len } => {
                let mut reader = RangeReader { file, pos: *offset, end: offset.saturating_add(*len) };
                let copied = copy_exact(&mut reader, out, *len, name)?;
                if copied != *len {
                    return Err(ContentError::Changed { path: name.to_owned(), expected: *len, found: copied });
                }
                Ok(copied)
            }
            Content::Concat(parts) => parts.iter().try_fold(0, |total, part| Ok(total + part.copy_to(name, out)?)),
        }
    }

    /// A reader yielding exactly [`len`](Self::len) bytes, for consumers that pull data (a tar builder) rather
    /// than take a writer. A source that has shrunk is an error at its end; one that grew is cut at `len`.
    pub fn reader(&self, name: &str) -> Result<ExactReader<'_>, ContentError> {
        let inner: Box<dyn Read + '_> = match self {
            Content::Bytes(b) => Box::new(&b[..]),
            Content::Host { path, len } => {
                let file = File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
                    .open(path)
                    .map_err(|source| ContentError::Read { path: path.display().to_string(), source })?;
                Box::new(file.take(*len))
            }
            Content::Range { file, offset, len } => {
                Box::new(RangeReader { file, pos: *offset, end: offset.saturating_add(*len) })
            }
            Content::Concat(parts) => Box::new(ConcatReader { parts, current: None, name: name.to_owned() }),
        };
        Ok(ExactReader { inner, name: name.to_owned(), left: self.len(), expected: self.len() })
    }

    /// Reads the whole content into memory; for small files such as os-release or a kernel image.
    pub fn read_all(&self, name: &str) -> Result<Vec<u8>, ContentError> {
        let mut buf = Vec::with_capacity(usize::try_from(self.len()).unwrap_or(0));
        self.copy_to(name, &mut buf)?;
        Ok(buf)
    }
}

/// Copies from `r` to `w` through a fixed buffer, returning how many bytes were read (which may exceed
/// `expected` by one when the source grew, so the caller can tell).
fn copy_exact(r: &mut dyn Read, w: &mut dyn Write, expected: u64, name: &str) -> Result<u64, ContentError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ContentError::Read { path: name.to_owned(), source }),
        };
        // Never write past the promised size: the extra byte only tells us the file grew.
        let room = usize::try_from(expected.saturating_sub(total)).unwrap_or(usize::MAX);
        w.write_all(&buf[..n.min(room)]).map_err(|source| ContentError::Write { path: name.to_owned(), source })?;
        total += n as u64;
    }
}

/// See [`Content::reader`].
pub struct ExactReader<'a> {
    inner: Box<dyn Read + 'a>,
    name: String,
    left: u64,
    expected: u64,
}

impl std::fmt::Debug for ExactReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactReader").field("name", &self.name).field("left", &self.left).finish_non_exhaustive()
    }
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            let found = self.expected - self.left;
            let err = ContentError::Changed { path: self.name.clone(), expected: self.expected, found };
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, err));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads the parts of a [`Content::Concat`] in turn, opening each when the one before is done.
struct ConcatReader<'a> {
    parts: &'a [Content],
    current: Option<ExactReader<'a>>,
    name: String,
}

impl Read for ConcatReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => {
                    let Some((next, rest)) = self.parts.split_first() else { return Ok(0) };
                    self.parts = rest;
                    self.current.insert(next.reader(&self.name).map_err(io::Error::other)?)
                }
            };
            match reader.read(buf)? {
                0 if !buf.is_empty() => self.current = None,
                n => return Ok(n),
            }
        }
    }
}

struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
