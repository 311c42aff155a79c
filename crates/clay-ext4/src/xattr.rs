//! Extended attributes (Documentation/filesystems/ext4/attributes.rst): as many as fit in the inode's spare bytes,
//! the rest in one attribute block. POSIX ACLs are converted from the VFS form (`posix_acl_xattr`, version 2) to
//! ext4's compact on-disk form (`ext4_acl_header`, version 1), as the kernel stores them.

use std::collections::BTreeMap;

use zerocopy::{FromBytes, IntoBytes};

use crate::csum::crc32c;
use crate::ondisk::*;
use crate::Ext4Error;

/// One attribute as ext4 stores it: a name index standing for the prefix, the rest of the name, the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    index: u8,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Attr {
    /// Bytes of its entry: the fixed part and the name, padded to 4 (`EXT4_XATTR_LEN`).
    fn entry_size(&self) -> usize {
        (size_of::<XattrEntry>() + self.name.len()).next_multiple_of(4)
    }

    /// Bytes of its value, padded to 4 (`EXT4_XATTR_SIZE`).
    fn value_size(&self) -> usize {
        self.value.len().next_multiple_of(4)
    }

    /// `ext4_xattr_hash_entry`: the name's bytes, then the value's little-endian words (zero-padded).
    fn hash(&self) -> u32 {
        let mut hash = 0u32;
        for &b in &self.name {
            hash = (hash << 5) ^ (hash >> 27) ^ u32::from(b);
        }
        let mut padded = self.value.clone();
        padded.resize(self.value_size(), 0);
        for word in padded.chunks_exact(4) {
            hash = (hash << 16) ^ (hash >> 16) ^ u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        hash
    }
}

/// Name prefixes stored as an index (`ext4_xattr_handler_map`); the ACL names are whole names.
const PREFIXES: [(&[u8], u8); 3] =
    [(b"user.", XATTR_INDEX_USER), (b"trusted.", XATTR_INDEX_TRUSTED), (b"security.", XATTR_INDEX_SECURITY)];
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// The attributes of one inode in ext4's form, in the order a block must list them: by index, name length, name
/// (`ext4_xattr_find_entry` stops early in sorted blocks).
pub(crate) fn encode(path: &str, xattrs: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<Vec<Attr>, Ext4Error> {
    let mut out = Vec::with_capacity(xattrs.len());
    for (full, value) in xattrs {
        let shown = || String::from_utf8_lossy(full).into_owned();
        let attr = if full == ACL_ACCESS || full == ACL_DEFAULT {
            let index = if full == ACL_ACCESS { XATTR_INDEX_POSIX_ACL_ACCESS } else { XATTR_INDEX_POSIX_ACL_DEFAULT };
            let value = acl_to_disk(value).ok_or_else(|| Ext4Error::BadAcl { path: path.to_owned(), name: shown() })?;
            Attr { index, name: Vec::new(), value }
        } else {
            let (index, name) = PREFIXES
                .iter()
                .find_map(|(prefix, index)| full.strip_prefix(*prefix).map(|rest| (*index, rest)))
                .filter(|(_, rest)| !rest.is_empty())
                .ok_or_else(|| Ext4Error::XattrNamespace { path: path.to_owned(), name: shown() })?;
            if name.len() > 255 {
                return Err(Ext4Error::XattrTooLarge { path: path.to_owned() });
            }
            Attr { index, name: name.to_vec(), value: value.clone() }
        };
        out.push(attr);
    }
    out.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
    Ok(out)
}

/// Converts a VFS POSIX ACL (version 2, 8-byte entries) to ext4's form (version 1; 4-byte entries for the owner,
/// group, mask and other, 8-byte ones naming a user or group). `None` when it is malformed.
fn acl_to_disk(vfs: &[u8]) -> Option<Vec<u8>> {
    const VFS_VERSION: u32 = 2;
    const DISK_VERSION: u32 = 1;
    const USER_OBJ: u16 = 0x01;
    const USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const GROUP: u16 = 0x08;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    let (version, entries) = vfs.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != VFS_VERSION || entries.len() % 8 != 0 {
        return None;
    }
    let mut out = DISK_VERSION.to_le_bytes().to_vec();
    for e in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        match tag {
            USER_OBJ | GROUP_OBJ | MASK | OTHER => out.extend_from_slice(&e[..4]),
            USER | GROUP => out.extend_from_slice(e),
            _ => return None,
        }
    }
    Some(out)
}

/// Attributes split between the inode and an attribute block.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    pub in_inode: Vec<Attr>,
    pub in_block: Vec<Attr>,
}

impl Placement {
    pub fn needs_block(&self) -> bool {
        !self.in_block.is_empty()
    }
}

/// Puts each attribute in the inode while it fits and the rest in a block; fails when the block overflows
/// (values in their own inodes, `ea_inode`, are not written).
pub(crate) fn place(path: &str, attrs: Vec<Attr>) -> Result<Placement, Ext4Error> {
    let mut placement = Placement::default();
    // The magic before the entries and the 4 zero bytes after the last one.
    let mut inode_used = 8;
    let mut block_used = size_of::<XattrHeader>() + 4;
    for attr in attrs {
        let size = attr.entry_size() + attr.value_size();
        if inode_used + size <= INODE_XATTR_SPACE {
            inode_used += size;
            placement.in_inode.push(attr);
        } else {
            block_used += size;
            if block_used > BLOCK_SIZE {
                return Err(Ext4Error::XattrTooLarge { path: path.to_owned() });
            }
            placement.in_block.push(attr);
        }
    }
    Ok(placement)
}

/// Lays out entries from `entries_at` and values down from `end`; value offsets count from `offsets_from`.
/// Returns the entries' hashes.
fn lay_out(area: &mut [u8], attrs: &[Attr], entries_at: usize, offsets_from: usize) -> Vec<u32> {
    let mut at = entries_at;
    let mut value_end = area.len();
    let mut hashes = Vec::with_capacity(attrs.len());
    for attr in attrs {
        let mut value_offs = 0;
        if !attr.value.is_empty() {
            value_end -= attr.value_size();
            area[value_end..value_end + attr.value.len()].copy_from_slice(&attr.value);
            value_offs = value_end - offsets_from;
        }
        let hash = attr.hash();
        hashes.push(hash);
        let entry = XattrEntry {
            e_name_len: u8::try_from(attr.name.len()).unwrap_or(u8::MAX),
            e_name_index: attr.index,
            e_value_offs: u16::try_from(value_offs).unwrap_or(0).into(),
            e_value_inum: 0.into(),
            e_value_size: u32::try_from(attr.value.len()).unwrap_or(0).into(),
            e_hash: hash.into(),
        };
        let name_at = at + size_of::<XattrEntry>();
        area[at..name_at].copy_from_slice(entry.as_bytes());
        area[name_at..name_at + attr.name.len()].copy_from_slice(&attr.name);
        at += attr.entry_size();
    }
    hashes
}

/// The inode's attribute space: the magic, the entries, values from the end (offsets from the first entry).
pub(crate) fn inode_area(attrs: &[Attr]) -> [u8; INODE_XATTR_SPACE] {
    let mut area = [0u8; INODE_XATTR_SPACE];
    if !attrs.is_empty() {
        area[..4].copy_from_slice(&XATTR_MAGIC.to_le_bytes());
        lay_out(&mut area, attrs, 4, 4);
    }
    area
}

/// An attribute block at `block_nr`: header, entries, values from the end, checksummed.
pub(crate) fn block(attrs: &[Attr], block_nr: u64, fs_seed: u32) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK_SIZE];
    let hashes = lay_out(&mut block, attrs, size_of::<XattrHeader>(), 0);
    // ext4_xattr_rehash: a rolling combination of the entry hashes.
    let hash = hashes.iter().fold(0u32, |h, e| (h << 16) ^ (h >> 16) ^ e);
    let header = XattrHeader {
        h_magic: XATTR_MAGIC.into(),
        h_refcount: 1.into(),
        h_blocks: 1.into(),
        h_hash: hash.into(),
        h_checksum: 0.into(),
        h_reserved: [0.into(); 3],
    };
    block[..size_of::<XattrHeader>()].copy_from_slice(header.as_bytes());
    let csum = crc32c(crc32c(fs_seed, &block_nr.to_le_bytes()), &block);
    if let Ok((h, _)) = XattrHeader::mut_from_prefix(&mut block) {
        h.h_checksum = csum.into();
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_shrink_to_the_disk_form_and_bad_ones_are_refused() {
        // user::rw-, user:1000:r--, group::r--, mask::r--, other::---
        let mut vfs = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in
            [(1u16, 6u16, u32::MAX), (2, 4, 1000), (4, 4, u32::MAX), (0x10, 4, u32::MAX), (0x20, 0, u32::MAX)]
        {
            vfs.extend_from_slice(&tag.to_le_bytes());
            vfs.extend_from_slice(&perm.to_le_bytes());
            vfs.extend_from_slice(&id.to_le_bytes());
        }
        let disk = acl_to_disk(&vfs).unwrap_or_default();
        assert_eq!(disk.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert_eq!(&disk[8..16], &[2, 0, 4, 0, 0xE8, 3, 0, 0]);
        assert!(acl_to_disk(&vfs[..7]).is_none());
        assert!(acl_to_disk(&[1, 0, 0, 0]).is_none());
    }
}
