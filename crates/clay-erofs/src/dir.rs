//! Directory blocks (Documentation/filesystems/erofs.rst, "Directories"): each 4 KiB block holds a run of
//! `erofs_dirent`s, then their names unterminated; the first entry's `nameoff` tells how many entries the block
//! has. Names, `.` and `..` included, are sorted bytewise within and across blocks: the kernel's lookup is a binary
//! search over blocks, then within one.

use std::ops::Range;

use zerocopy::IntoBytes;

use crate::ondisk::{Dirent, BLOCK, BLOCK_BYTES};

const DIRENT: usize = size_of::<Dirent>();

/// One name of a directory, with the inode it names.
#[derive(Debug, Clone)]
pub struct DirEntry<'a> {
    pub name: &'a [u8],
    pub nid: u64,
    pub file_type: u8,
}

/// Splits a sorted listing (given as name lengths) into blocks, greedily, returning each block's entries and the
/// directory size: full blocks, then the bytes the last block uses.
pub fn split(name_lens: &[usize]) -> (Vec<Range<usize>>, u64) {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, len) in name_lens.iter().enumerate() {
        if used + DIRENT + len > BLOCK_BYTES {
            blocks.push(start..i);
            start = i;
            used = 0;
        }
        used += DIRENT + len;
    }
    blocks.push(start..name_lens.len());
    let size = (blocks.len() as u64 - 1) * BLOCK + used as u64;
    (blocks, size)
}

/// The directory's data: every block but the last padded with zeros to 4 KiB (a NUL ends its last name).
/// `entries` must be sorted by name and each name at most `NAME_MAX` bytes.
pub fn encode(entries: &[DirEntry<'_>]) -> Vec<u8> {
    let lens: Vec<usize> = entries.iter().map(|e| e.name.len()).collect();
    let (blocks, size) = split(&lens);
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for (b, range) in blocks.iter().enumerate() {
        let block = &entries[range.clone()];
        let mut nameoff = DIRENT * block.len();
        for e in block {
            // Within a block: at most 4096 / 13 entries and names end before 4096, so both fit u16.
            let off = u16::try_from(nameoff).unwrap_or(u16::MAX);
            let d = Dirent { nid: e.nid.into(), nameoff: off.into(), file_type: e.file_type, reserved: 0 };
            out.extend_from_slice(d.as_bytes());
            nameoff += e.name.len();
        }
        for e in block {
            out.extend_from_slice(e.name);
        }
        if b + 1 < blocks.len() {
            out.resize((b + 1) * BLOCK_BYTES, 0);
        }
    }
    out
}
