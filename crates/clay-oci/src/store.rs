//! Where an image's files live: a directory on the host, or the entries of a tar archive read in place.
//!
//! Either way a file is handed out as a [`Blob`], a byte range of an open file; nothing is extracted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clay_tree::Kind;

use crate::tarentry::{tar_entry_inode, TarEntry};
use crate::tarscan::TarScan;
use crate::{Lookahead, OciError};
use clay_digest::Digest;

/// Magic numbers of the compressed streams we accept (RFC 1952 2.3.1, RFC 8878 3.1.1).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Whether a stream starting with `magic` is one we decompress (gzip or zstd).
pub(crate) fn compressed(magic: &[u8]) -> bool {
    magic.starts_with(GZIP_MAGIC) || magic.starts_with(ZSTD_MAGIC)
}

/// A byte range of an open file: a blob file of a layout directory, or an entry of an archive.
#[derive(Debug, Clone)]
pub struct Blob {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

impl Blob {
    pub fn whole(file: File) -> io::Result<Blob> {
        let len = file.metadata()?.len();
        Ok(Blob { file: Arc::new(file), offset: 0, len })
    }

    /// A reader and seeker over just this range, using positioned reads so clones never disturb each other.
    pub fn section(&self) -> Section {
        Section { file: Arc::clone(&self.file), start: self.offset, len: self.len, pos: 0 }
    }

    /// The first bytes, to tell compressed streams from plain tar.
    pub fn magic(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 8];
        let n = read_up_to(&mut self.section(), &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// See [`Blob::section`].
#[derive(Debug)]
pub struct Section {
    file: Arc<File>,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.len.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Section {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decompresses `reader` (gzip or zstd, as `magic` says) into an unlinked temporary file in `$TMPDIR`. The
/// writing is on a thread of its own, so decompression (the longest step of reading an image) never waits for it;
/// that thread also shows the data to `lookahead`.
pub(crate) fn spill(magic: &[u8], reader: impl Read, lookahead: Option<&dyn Lookahead>) -> io::Result<Blob> {
    const CHUNK: usize = 1 << 20;
    const QUEUE: usize = 8;
    let mut decoder = decoder(magic, reader)?;
    let file = Arc::new(tempfile::tempfile()?);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE);
        // Emptied buffers go back to be filled again: fresh megabytes would each cost page faults.
        let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE + 2);
        let spill = &file;
        let writer = scope.spawn(move || -> io::Result<u64> {
            let mut scan = lookahead.map(|l| TarScan::new(l, spill));
            let mut len = 0u64;
            for chunk in rx {
                (&**spill).write_all(&chunk)?;
                len += chunk.len() as u64;
                if let Some(scan) = scan.as_mut() {
                    scan.feed(&chunk);
                }
                let _ = back_tx.try_send(chunk);
            }
            Ok(len)
        });
        let decoded = (|| -> io::Result<()> {
            loop {
                let mut buf = back_rx.try_recv().unwrap_or_default();
                buf.resize(CHUNK, 0);
                let n = read_up_to(&mut decoder, &mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                if tx.send(buf).is_err() {
                    return Ok(()); // The writer stopped: its error is the one to report.
                }
            }
        })();
        drop(tx);
        let written = writer.join().map_err(|_| io::Error::other("the layer writer thread panicked"))?;
        decoded?;
        Ok(Blob { file: Arc::clone(&file), offset: 0, len: written? })
    })
}

/// A reader that decompresses `reader` as `magic` says (gzip or zstd), or passes plain data through.
fn decoder<'a>(magic: &[u8], reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(if magic.starts_with(GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, reader)))
    } else if magic.starts_with(ZSTD_MAGIC) {
        Box::new(zstd::stream::read::Decoder::new(reader)?)
    } else {
        Box::new(reader)
    })
}

/// The files of an image: a layout directory, or an archive's entries by normalized name.
#[derive(Debug)]
pub(crate) enum Store {
    Dir(PathBuf),
    Archive { path: PathBuf, entries: BTreeMap<Vec<u8>, ArchiveEntry> },
}

#[derive(Debug)]
pub(crate) enum ArchiveEntry {
    File(Blob),
    /// A symlink or hard link to another entry (docker save links identical layers this way).
    Link {
        target: Vec<u8>,
        symbolic: bool,
    },
}

/// How many links a name may go through inside an archive before we call it a loop.
const MAX_ARCHIVE_LINKS: usize = 16;

impl Store {
    /// Indexes the archive at `path` (plain, or gzip/zstd compressed into a spill file first) without extracting it.
    pub fn archive(path: &Path) -> Result<Store, OciError> {
        let io_err = |source| OciError::Io { path: path.to_owned(), source };
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => OciError::NotFound(path.to_owned()),
            _ => OciError::Io { path: path.to_owned(), source: e },
        })?;
        if file.metadata().map_err(io_err)?.is_dir() {
            return Err(OciError::ArchiveIsDirectory(path.to_owned()));
        }
        let blob = Blob::whole(file).map_err(io_err)?;
        let magic = blob.magic().map_err(io_err)?;
        let blob = if compressed(&magic) {
            spill(&magic, blob.section(), None)
                .map_err(|source| OciError::Decompress { what: path.display().to_string(), source })?
        } else {
            blob
        };
        let tar_err = |source| OciError::Archive { path: path.to_owned(), source };
        let entry_err = |name: &[u8], reason: String| OciError::ArchiveEntry {
            path: path.to_owned(),
            entry: String::from_utf8_lossy(name).into_owned(),
            reason,
        };
        let mut entries = BTreeMap::new();
        let mut archive = tar::Archive::new(blob.section());
        for entry in archive.entries_with_seek().map_err(tar_err)? {
            let mut entry = entry.map_err(tar_err)?;
            let raw = entry.path_bytes().into_owned();
            let name = normalize(&raw).map_err(|e| entry_err(&raw, e))?;
            let item = match tar_entry_inode(&mut entry, &blob.file, blob.offset).map_err(|e| entry_err(&raw, e.0))? {
                TarEntry::Inode(inode) => match inode.kind {
                    Kind::File(clay_tree::Content::Range { file, offset, len }) => {
                        ArchiveEntry::File(Blob { file, offset, len })
                    }
                    Kind::Symlink(target) => ArchiveEntry::Link { target, symbolic: true },
                    _ => continue,
                },
                TarEntry::HardLink(target) => ArchiveEntry::Link { target, symbolic: false },
                TarEntry::Unsupported(_) => continue,
            };
            entries.insert(name, item);
        }
        Ok(Store::Archive { path: path.to_owned(), entries })
    }

    /// The file at `name` (a `/`-separated path inside the layout or archive), or `None` when there is none.
    pub fn open(&self, name: &str) -> Result<Option<Blob>, OciError> {
        match self {
            Store::Dir(root) => {
                let path = root.join(name);
                match File::open(&path) {
                    Ok(file) => {
                        let io_err = |source| OciError::Io { path: path.clone(), source };
                        if !file.metadata().map_err(io_err)?.is_file() {
                            return Ok(None);
                        }
                        Ok(Some(Blob::whole(file).map_err(io_err)?))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(OciError::Io { path, source }),
                }
            }
            Store::Archive { path, entries } => {
                let mut current = normalize(name.as_bytes()).map_err(|reason| OciError::ArchiveEntry {
                    path: path.clone(),
                    entry: name.to_owned(),
                    reason,
                })?;
                for _ in 0..MAX_ARCHIVE_LINKS {
                    match entries.get(&current) {
                        None => return Ok(None),
                        Some(ArchiveEntry::File(blob)) => return Ok(Some(blob.clone())),
                        Some(ArchiveEntry::Link { target, symbolic }) => {
                            current = if *symbolic { resolve_relative(&current, target) } else { normalize(target) }
                                .map_err(|reason| OciError::ArchiveEntry {
                                    path: path.clone(),
                                    entry: String::from_utf8_lossy(&current).into_owned(),
                                    reason,
                                })?;
                        }
                    }
                }
                Err(OciError::ArchiveEntry {
                    path: path.clone(),
                    entry: name.to_owned(),
                    reason: "too many links (a loop?)".into(),
                })
            }
        }
    }

    /// The blob with `digest`, from `blobs/<algorithm>/<hex>`.
    pub fn blob(&self, digest: &Digest) -> Result<Option<Blob>, OciError> {
        self.open(&format!("blobs/{}/{}", digest.algorithm(), digest.hex()))
    }
}

/// A name inside an archive with `./`, leading `/`, empty and `.` components dropped; `..` refused.
fn normalize(name: &[u8]) -> Result<Vec<u8>, String> {
    let parts = clay_tree::components(name).map_err(|e| e.to_string())?;
    Ok(parts.join(&b'/'))
}

/// A symlink target inside an archive, relative to the link's directory, kept inside the archive's root.
fn resolve_relative(link: &[u8], target: &[u8]) -> Result<Vec<u8>, String> {
    let mut parts: Vec<&[u8]> = if target.starts_with(b"/") {
        Vec::new()
    } else {
        let mut dir: Vec<&[u8]> = link.split(|b| *b == b'/').collect();
        dir.pop();
        dir
    };
    for name in target.split(|b| *b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(format!("link target `{}` leaves the archive", String::from_utf8_lossy(target)));
                }
            }
            _ => parts.push(name),
        }
    }
    Ok(parts.join(&b'/'))
}
