//! One tar entry (ustar, GNU or PAX, as the `tar` crate parses it) turned into a tree inode, without reading its
//! data: a regular file becomes a byte range of the archive file it sits in.
//!
//! Shared by image layers (this crate) and root filesystem tarballs (clay-source, which depends on this crate;
//! the helper lives here so that dependency stays one-way).

use std::fs::File;
use std::io::Read;
use std::sync::Arc;

use clay_tree::{Content, Inode, Kind, Metadata, PERMISSION_BITS};
use tar::EntryType;

/// PAX keys (POSIX pax, "pax Extended Header") that override the ustar header fields we use.
const PAX_UID: &[u8] = b"uid";
const PAX_GID: &[u8] = b"gid";
const PAX_MTIME: &[u8] = b"mtime";
const PAX_SIZE: &[u8] = b"size";
/// Extended attributes as GNU tar and bsdtar record them: `SCHILY.xattr.<name>` with the raw value.
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// The largest size the 11-digit octal ustar size field holds (POSIX ustar "size"); larger files carry their
/// size only in a PAX record and leave the header's field 0 (Go's archive/tar does so).
const USTAR_SIZE_MAX: u64 = 0o77777777777;

/// What one tar entry adds to a tree.
#[derive(Debug, Clone)]
pub enum TarEntry {
    /// A new object: a file (as a range of the archive), directory, symlink, device or fifo.
    Inode(Inode),
    /// A hard link to the entry named by the target (a path inside the archive).
    HardLink(Vec<u8>),
    /// An entry kind an image cannot hold (e.g. a PAX global header); the caller decides whether to warn.
    Unsupported(String),
}

/// Why an entry cannot be used; one sentence, without the entry's name (callers add it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EntryError(pub String);

/// Converts the entry the `tar` crate is positioned at into what it adds to a tree. `data` is the open file the
/// archive was read from, starting at byte `base` of it (an archive may be a range of a larger file); a regular
/// file's content is referenced as a range of `data`, never copied.
///
/// Refuses an entry whose PAX `size` record disagrees with its header's size field: readers that honour one or
/// the other see different entries after it (TARmageddon, CVE-2025-62518), so such an archive means whatever
/// its author wants it to mean to each reader.
pub fn tar_entry_inode<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    data: &Arc<File>,
    base: u64,
) -> Result<TarEntry, EntryError> {
    let meta = metadata(entry)?;
    let header = entry.header();
    let kind = match header.entry_type() {
        EntryType::Regular | EntryType::Continuous => {
            let offset = base
                .checked_add(entry.raw_file_position())
                .ok_or_else(|| EntryError("its data offset is out of range".into()))?;
            Kind::File(Content::Range { file: Arc::clone(data), offset, len: entry.size() })
        }
        EntryType::Directory => Kind::Directory(Default::default()),
        EntryType::Symlink => match entry.link_name_bytes() {
            Some(target) if !target.is_empty() => Kind::Symlink(target.into_owned()),
            _ => return Err(EntryError("symlink without a target".into())),
        },
        EntryType::Link => {
            return match entry.link_name_bytes() {
                Some(target) if !target.is_empty() => Ok(TarEntry::HardLink(target.into_owned())),
                _ => Err(EntryError("hard link without a target".into())),
            }
        }
        EntryType::Char | EntryType::Block => {
            let number = |n: std::io::Result<Option<u32>>| n.map(Option::unwrap_or_default).map_err(io_reason);
            let (major, minor) = (number(header.device_major())?, number(header.device_minor())?);
            if header.entry_type() == EntryType::Char {
                Kind::CharDevice { major, minor }
            } else {
                Kind::BlockDevice { major, minor }
            }
        }
        EntryType::Fifo => Kind::Fifo,
        EntryType::GNUSparse => {
            return Err(EntryError("GNU sparse files are not supported; repack without --sparse".into()))
        }
        EntryType::XGlobalHeader => return Ok(TarEntry::Unsupported("a PAX global header".into())),
        other => return Ok(TarEntry::Unsupported(format!("type {other:?}"))),
    };
    Ok(TarEntry::Inode(Inode { meta, kind }))
}

fn io_reason(e: std::io::Error) -> EntryError {
    EntryError(e.to_string())
}

/// The entry's metadata: ustar fields, overridden by PAX records where present (ids and times beyond the ustar
/// field widths, and extended attributes).
fn metadata<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Metadata, EntryError> {
    let header = entry.header();
    let header_size = header.entry_size().map_err(io_reason)?;
    let number_field = |n: std::io::Result<u64>, what: &str| -> Result<u64, EntryError> {
        n.map_err(|e| EntryError(format!("its {what} field is damaged: {e}")))
    };
    let id = |n: u64, what: &str| u32::try_from(n).map_err(|_| EntryError(format!("its {what} {n} is too large")));
    let mut meta = Metadata {
        mode: header.mode().map_err(io_reason)? & PERMISSION_BITS,
        uid: id(number_field(header.uid(), "uid")?, "uid")?,
        gid: id(number_field(header.gid(), "gid")?, "gid")?,
        mtime: i64::try_from(number_field(header.mtime(), "mtime")?)
            .map_err(|_| EntryError("its mtime is out of range".into()))?,
        xattrs: Default::default(),
    };
    let Some(pax) = entry.pax_extensions().map_err(io_reason)? else {
        return Ok(meta);
    };
    for ext in pax {
        let ext = ext.map_err(io_reason)?;
        let (key, value) = (ext.key_bytes(), ext.value_bytes());
        let number = || -> Result<i64, EntryError> {
            let text = std::str::from_utf8(value).map_err(|_| EntryError("a PAX number is not text".into()))?;
            // PAX times may carry a fraction ("1700000000.123456789"); whole seconds are kept.
            let whole = text.split('.').next().unwrap_or(text);
            whole.parse::<i64>().map_err(|_| EntryError(format!("bad PAX number `{text}`")))
        };
        let unsigned = |what: &str| -> Result<u64, EntryError> {
            u64::try_from(number()?).map_err(|_| EntryError(format!("its PAX {what} is negative")))
        };
        match key {
            PAX_UID => meta.uid = id(unsigned("uid")?, "uid")?,
            PAX_GID => meta.gid = id(unsigned("gid")?, "gid")?,
            PAX_MTIME => meta.mtime = number()?,
            PAX_SIZE => {
                let pax_size = unsigned("size")?;
                let too_big_for_ustar = header_size == 0 && pax_size > USTAR_SIZE_MAX;
                if pax_size != header_size && !too_big_for_ustar {
                    return Err(EntryError(format!(
                        "its PAX size ({pax_size}) and its header size ({header_size}) disagree, so tar readers \
                         would split the archive differently (CVE-2025-62518); refusing it"
                    )));
                }
            }
            _ => {
                if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                    meta.xattrs.insert(name.to_vec(), value.to_vec());
                }
            }
        }
    }
    Ok(meta)
}
