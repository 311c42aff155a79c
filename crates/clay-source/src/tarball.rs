//! Reading a root filesystem tarball (plain, gzip, zstd or xz) into a tree, without unpacking it on the host.
//!
//! A plain tarball's file contents are referenced in place (byte ranges of the archive). A compressed one is
//! decompressed once into an unlinked spill file, which is then read the same way: the image never has to fit
//! in memory, and nothing appears on the host's filesystem.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use clay_tree::{Content, Inode, Kind, Metadata, Tree, PERMISSION_BITS};
use tar::EntryType;

use crate::{SourceError, Warning};

/// Magic numbers of the compressed containers we accept (RFC 1952 2.3.1, RFC 8878 3.1.1, xz-file-format 2.1.1.1).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// PAX keys (POSIX pax, "pax Extended Header") that override the ustar header fields we use.
const PAX_UID: &[u8] = b"uid";
const PAX_GID: &[u8] = b"gid";
const PAX_MTIME: &[u8] = b"mtime";
/// Extended attributes as GNU tar and bsdtar record them: `SCHILY.xattr.<name>` with the raw value.
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Reads the tarball at `path` into a tree.
pub fn read_tar(path: &Path, warn: &mut dyn FnMut(Warning)) -> Result<Tree, SourceError> {
    let io_err = |source| SourceError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SourceError::NotFound(path.to_owned()),
        _ => SourceError::Io { path: path.to_owned(), source: e },
    })?;
    if file.metadata().map_err(io_err)?.is_dir() {
        return Err(SourceError::TarIsDirectory(path.to_owned()));
    }
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut file, &mut magic).map_err(io_err)?;
    let magic = &magic[..n];
    let decompress_err = |source| SourceError::Decompress { archive: path.to_owned(), source };
    let archive = if magic.starts_with(GZIP_MAGIC) {
        spill(flate2::read::MultiGzDecoder::new(reopen(path)?)).map_err(decompress_err)?
    } else if magic.starts_with(ZSTD_MAGIC) {
        spill(zstd::stream::read::Decoder::new(reopen(path)?).map_err(decompress_err)?).map_err(decompress_err)?
    } else if magic.starts_with(XZ_MAGIC) {
        spill(xz2::read::XzDecoder::new_multi_decoder(reopen(path)?)).map_err(decompress_err)?
    } else {
        reopen(path)?
    };
    parse(path, archive, warn)
}

fn reopen(path: &Path) -> Result<File, SourceError> {
    File::open(path).map_err(|source| SourceError::Io { path: path.to_owned(), source })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Decompresses into an unlinked temporary file (in `$TMPDIR`), so contents can be referenced by range.
fn spill(decoder: impl Read) -> io::Result<File> {
    let file = tempfile::tempfile()?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    io::copy(&mut BufReader::with_capacity(1 << 20, decoder), &mut out)?;
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

fn parse(path: &Path, archive_file: File, warn: &mut dyn FnMut(Warning)) -> Result<Tree, SourceError> {
    let tar_err = |source| SourceError::Tar { archive: path.to_owned(), source };
    let data = Arc::new(archive_file.try_clone().map_err(tar_err)?);
    let mut archive = tar::Archive::new(archive_file);
    let parent_meta = Metadata::root_owned(0o755, 0);
    let mut tree = Tree::new(parent_meta.clone());

    for entry in archive.entries_with_seek().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let name = entry.path_bytes().into_owned();
        let entry_err = |reason: String| SourceError::Entry {
            archive: path.to_owned(),
            entry: String::from_utf8_lossy(&name).into_owned(),
            reason,
        };
        let meta = metadata(&mut entry).map_err(|e| entry_err(e.to_string()))?;
        let header = entry.header();
        let kind = match header.entry_type() {
            EntryType::Regular | EntryType::Continuous => Kind::File(Content::Range {
                file: Arc::clone(&data),
                offset: entry.raw_file_position(),
                len: entry.size(),
            }),
            EntryType::Directory => Kind::Directory(Default::default()),
            EntryType::Symlink => match entry.link_name_bytes() {
                Some(target) => Kind::Symlink(target.into_owned()),
                None => return Err(entry_err("symlink without a target".into())),
            },
            EntryType::Link => {
                let Some(target) = entry.link_name_bytes() else {
                    return Err(entry_err("hard link without a target".into()));
                };
                tree.link(&name, &target, &parent_meta).map_err(|e| entry_err(e.to_string()))?;
                continue;
            }
            EntryType::Char | EntryType::Block => {
                let major = header.device_major().map_err(|e| entry_err(e.to_string()))?.unwrap_or(0);
                let minor = header.device_minor().map_err(|e| entry_err(e.to_string()))?.unwrap_or(0);
                if header.entry_type() == EntryType::Char {
                    Kind::CharDevice { major, minor }
                } else {
                    Kind::BlockDevice { major, minor }
                }
            }
            EntryType::Fifo => Kind::Fifo,
            EntryType::GNUSparse => {
                return Err(entry_err("GNU sparse files are not supported; repack without --sparse".into()))
            }
            other => {
                warn(Warning(format!(
                    "skipping tarball entry `{}` of unsupported type {:?}",
                    String::from_utf8_lossy(&name),
                    other
                )));
                continue;
            }
        };
        tree.insert(&name, Inode { meta, kind }, &parent_meta).map_err(|e| entry_err(e.to_string()))?;
    }
    Ok(tree)
}

/// The entry's metadata: ustar fields, overridden by PAX records where present (ids and times beyond the
/// ustar field widths, and extended attributes).
fn metadata<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Metadata> {
    let header = entry.header();
    let mut meta = Metadata {
        mode: header.mode()? & PERMISSION_BITS,
        uid: u32::try_from(header.uid()?).map_err(io::Error::other)?,
        gid: u32::try_from(header.gid()?).map_err(io::Error::other)?,
        mtime: i64::try_from(header.mtime()?).map_err(io::Error::other)?,
        xattrs: Default::default(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            let number = || -> io::Result<i64> {
                let text = std::str::from_utf8(value).map_err(io::Error::other)?;
                // PAX times may carry a fraction ("1700000000.123456789"); whole seconds are kept.
                let whole = text.split('.').next().unwrap_or(text);
                whole.parse::<i64>().map_err(|_| io::Error::other(format!("bad PAX number `{text}`")))
            };
            match key {
                PAX_UID => meta.uid = u32::try_from(number()?).map_err(io::Error::other)?,
                PAX_GID => meta.gid = u32::try_from(number()?).map_err(io::Error::other)?,
                PAX_MTIME => meta.mtime = number()?,
                _ => {
                    if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                        meta.xattrs.insert(name.to_vec(), value.to_vec());
                    }
                }
            }
        }
    }
    Ok(meta)
}
