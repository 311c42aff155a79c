//! Writes a tree as a POSIX tarball (pax interchange format, POSIX.1-2008 `pax`), deterministically.
//!
//! Entries are in bytewise path order, times are clamped to `SOURCE_DATE_EPOCH`, owners are numeric, hard links
//! point at the first name of their inode, and extended attributes travel as `SCHILY.xattr.*` PAX records (what
//! GNU tar and bsdtar read and write), so `security.capability` survives a round trip.

use std::collections::BTreeMap;
use std::io::{self, Write};

use clay_tree::{lossy, ContentError, InodeId, Kind, Tree};

/// PAX record prefix for extended attributes (GNU tar, bsdtar, and our own reader).
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Why the tarball could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("cannot write the tarball entry `{path}`: {source}")]
    Entry { path: String, source: io::Error },
    #[error("cannot write the tarball: {0}")]
    Io(#[from] io::Error),
}

/// How to write the tarball.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `SOURCE_DATE_EPOCH`: later modification times are clamped to it.
    pub clamp_mtime: Option<i64>,
}

/// Writes every entry of `tree` (the root as `./`) to `out` and returns the number of entries.
pub fn write_tarball<W: Write>(tree: &Tree, opts: &Options, out: W) -> Result<u64, TarballError> {
    let mut builder = tar::Builder::new(out);
    let mut first_name: BTreeMap<InodeId, Vec<u8>> = BTreeMap::new();
    let mut count = 0;
    for entry in tree.walk() {
        let inode = tree.inode(entry.inode);
        let path = if entry.path.is_empty() { b"./".to_vec() } else { entry.path.clone() };
        let name = lossy(&path);
        let entry_err = |source| TarballError::Entry { path: name.clone(), source };

        if !inode.meta.xattrs.is_empty() && !first_name.contains_key(&entry.inode) {
            let records: Vec<(String, &[u8])> = inode
                .meta
                .xattrs
                .iter()
                .map(|(k, v)| (format!("{PAX_XATTR_PREFIX}{}", lossy(k)), v.as_slice()))
                .collect();
            builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v))).map_err(entry_err)?;
        }
        let mut header = tar::Header::new_ustar();
        header.set_mode(inode.meta.mode);
        header.set_uid(u64::from(inode.meta.uid));
        header.set_gid(u64::from(inode.meta.gid));
        let mtime = opts.clamp_mtime.map_or(inode.meta.mtime, |c| inode.meta.mtime.min(c));
        header.set_mtime(u64::try_from(mtime).unwrap_or(0));
        header.set_size(0);

        if let Some(first) = first_name.get(&entry.inode) {
            header.set_entry_type(tar::EntryType::Link);
            builder.append_link(&mut header, os(&path), os(first)).map_err(entry_err)?;
            count += 1;
            continue;
        }
        first_name.insert(entry.inode, path.clone());
        match &inode.kind {
            Kind::Directory(_) => {
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, os(&path), io::empty()).map_err(entry_err)?;
            }
            Kind::File(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len());
                let reader = content.reader(&name)?;
                builder.append_data(&mut header, os(&path), reader).map_err(entry_err)?;
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, os(&path), os(target)).map_err(entry_err)?;
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                let kind = if matches!(inode.kind, Kind::CharDevice { .. }) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                header.set_entry_type(kind);
                header.set_device_major(*major).map_err(entry_err)?;
                header.set_device_minor(*minor).map_err(entry_err)?;
                builder.append_data(&mut header, os(&path), io::empty()).map_err(entry_err)?;
            }
            Kind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                builder.append_data(&mut header, os(&path), io::empty()).map_err(entry_err)?;
            }
        }
        count += 1;
    }
    builder.into_inner()?.flush()?;
    Ok(count)
}

fn os(bytes: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(test)]
mod tests;
