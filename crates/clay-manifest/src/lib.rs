//! The extended-attribute manifest: xattrs carried through an initramfs that cannot hold them.
//!
//! The kernel's initramfs unpacker reads cpio `newc`, which has no field for extended attributes, yet
//! `security.capability` and friends must reach the booted system. The image builder therefore writes every xattr of
//! the tree into one file at [`XATTR_MANIFEST_PATH`], and clay-init applies it with `lsetxattr(2)` before handing
//! over to the real init, then deletes it.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic   b"CLAYXATTR1\n"
//! record* u32 path length, path bytes   (relative to the root, no leading slash)
//!         u32 name length, name bytes   (full name, e.g. "security.capability")
//!         u32 value length, value bytes
//! ```
//!
//! The file ends right after the last record; there is no count, so a truncated file is detected by a field that
//! runs past the end.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod boot;

/// Where the manifest lives, relative to the initramfs root.
pub const XATTR_MANIFEST_PATH: &str = ".clay/xattrs";

/// The first bytes of every manifest; the trailing digit is the format version.
pub const MAGIC: &[u8; 11] = b"CLAYXATTR1\n";

/// Width of each length prefix in bytes.
const LEN_SIZE: usize = 4;

/// One extended attribute of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XattrRecord {
    /// Path relative to the root, without a leading slash.
    pub path: Vec<u8>,
    /// Full attribute name including its namespace, e.g. `security.capability`.
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// A manifest that cannot be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the xattr manifest does not start with the magic `CLAYXATTR1`")]
    BadMagic,
    #[error("the xattr manifest is truncated: the {field} of record {record} at offset {offset} runs past the end")]
    Truncated { record: usize, field: &'static str, offset: usize },
    #[error("record {record} of the xattr manifest has an empty {field}")]
    Empty { record: usize, field: &'static str },
}

/// Serializes `records` in the order given.
///
/// # Panics
///
/// Never on real data; a single path, name or value of 4 GiB or more cannot be represented and panics, as no
/// filesystem can hold such an attribute (Linux caps values at 64 KiB and names at 255 bytes).
pub fn encode(records: &[XattrRecord]) -> Vec<u8> {
    let body: usize = records.iter().map(|r| 3 * LEN_SIZE + r.path.len() + r.name.len() + r.value.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + body);
    out.extend_from_slice(MAGIC);
    for record in records {
        for field in [&record.path, &record.name, &record.value] {
            #[allow(clippy::expect_used)]
            let len = u32::try_from(field.len()).expect("an xattr manifest field of 4 GiB or more");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(field);
        }
    }
    out
}

/// Parses a manifest. Any malformed input is an error, never a panic.
///
/// Empty paths and names are refused: the root would be spelled `.` and an attribute always has a name, so an empty
/// one can only mean a corrupt file.
pub fn decode(bytes: &[u8]) -> Result<Vec<XattrRecord>, ManifestError> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(ManifestError::BadMagic)?;
    let mut records = Vec::new();
    while !rest.is_empty() {
        let record = records.len();
        let mut field = |field: &'static str| -> Result<Vec<u8>, ManifestError> {
            let offset = bytes.len() - rest.len();
            let truncated = ManifestError::Truncated { record, field, offset };
            let (len, tail) = rest.split_first_chunk::<LEN_SIZE>().ok_or(truncated.clone())?;
            let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| truncated.clone())?;
            if tail.len() < len {
                return Err(truncated);
            }
            let (value, tail) = tail.split_at(len);
            rest = tail;
            Ok(value.to_vec())
        };
        let path = field("path")?;
        let name = field("name")?;
        let value = field("value")?;
        if path.is_empty() {
            return Err(ManifestError::Empty { record, field: "path" });
        }
        if name.is_empty() {
            return Err(ManifestError::Empty { record, field: "name" });
        }
        records.push(XattrRecord { path, name, value });
    }
    Ok(records)
}

#[cfg(test)]
mod tests;
