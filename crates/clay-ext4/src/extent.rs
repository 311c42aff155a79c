//! Extent trees (Documentation/filesystems/ext4/dynamic.rst, "The Contents of inode.i_block"): up to four
//! extents in the inode itself; more go to leaf blocks of 340, indexed from the inode, with further index levels
//! when more than four leaves are needed.

use zerocopy::IntoBytes;

use crate::csum::set_extent_block_csum;
use crate::ondisk::*;

/// A file's mapping from logical to physical blocks, merged into extents as blocks are added in order.
#[derive(Debug, Default)]
pub(crate) struct Extents {
    /// (first logical block, first physical block, length).
    list: Vec<(u32, u64, u32)>,
}

impl Extents {
    /// Maps `len` blocks from logical `lblk` to physical `pblk`, extending the last extent when they follow it.
    pub fn push(&mut self, mut lblk: u32, mut pblk: u64, mut len: u32) {
        while len > 0 {
            if let Some(last) = self.list.last_mut() {
                if last.0 + last.2 == lblk && last.1 + u64::from(last.2) == pblk && last.2 < EXTENT_MAX_LEN {
                    let take = len.min(EXTENT_MAX_LEN - last.2);
                    last.2 += take;
                    (lblk, pblk, len) = (lblk + take, pblk + u64::from(take), len - take);
                    continue;
                }
            }
            let take = len.min(EXTENT_MAX_LEN);
            self.list.push((lblk, pblk, take));
            (lblk, pblk, len) = (lblk + take, pblk + u64::from(take), len - take);
        }
    }

    pub fn as_slice(&self) -> &[(u32, u64, u32)] {
        &self.list
    }
}

/// The most tree blocks `extents` extents can need.
pub(crate) fn tree_blocks_bound(extents: u64) -> u64 {
    if extents <= EXTENTS_IN_INODE as u64 {
        return 0;
    }
    let mut total = 0;
    let mut level = extents;
    while level > EXTENTS_IN_INODE as u64 {
        level = level.div_ceil(EXTENTS_IN_BLOCK as u64);
        total += level;
    }
    total
}

/// A finished tree: the inode's `i_block`, and the tree blocks with where they go.
#[derive(Debug)]
pub(crate) struct Tree {
    pub i_block: [u8; 60],
    pub blocks: Vec<(u64, Vec<u8>)>,
}

/// Builds the tree for `extents`, taking tree blocks from `alloc`.
pub(crate) fn build<E>(
    extents: &Extents,
    inode_seed: u32,
    alloc: &mut dyn FnMut() -> Result<u64, E>,
) -> Result<Tree, E> {
    let leaves: Vec<(u32, [u8; 12])> = extents
        .list
        .iter()
        .map(|&(lblk, pblk, len)| {
            let e = Extent {
                ee_block: lblk.into(),
                ee_len: u16::try_from(len).unwrap_or(0).into(),
                ee_start_hi: u16::try_from(pblk >> 32).unwrap_or(0).into(),
                ee_start_lo: u32::try_from(pblk & 0xFFFF_FFFF).unwrap_or(0).into(),
            };
            (lblk, to_array(e.as_bytes()))
        })
        .collect();
    let mut level = leaves;
    let mut depth = 0u16;
    let mut blocks = Vec::new();
    while level.len() > EXTENTS_IN_INODE {
        let mut parents = Vec::new();
        for chunk in level.chunks(EXTENTS_IN_BLOCK) {
            let at = alloc()?;
            let mut block = node(chunk, EXTENTS_IN_BLOCK, depth, BLOCK_SIZE);
            let tail = size_of::<ExtentHeader>() + EXTENTS_IN_BLOCK * size_of::<Extent>();
            set_extent_block_csum(&mut block, tail, inode_seed);
            blocks.push((at, block));
            let idx = ExtentIdx {
                ei_block: chunk[0].0.into(),
                ei_leaf_lo: u32::try_from(at & 0xFFFF_FFFF).unwrap_or(0).into(),
                ei_leaf_hi: u16::try_from(at >> 32).unwrap_or(0).into(),
                ei_unused: 0.into(),
            };
            parents.push((chunk[0].0, to_array(idx.as_bytes())));
        }
        level = parents;
        depth += 1;
    }
    let root = node(&level, EXTENTS_IN_INODE, depth, 60);
    Ok(Tree { i_block: root.try_into().unwrap_or([0; 60]), blocks })
}

/// A node: header and entries, zero-padded to `size`.
fn node(entries: &[(u32, [u8; 12])], max: usize, depth: u16, size: usize) -> Vec<u8> {
    let header = ExtentHeader {
        eh_magic: EXTENT_MAGIC.into(),
        eh_entries: u16::try_from(entries.len()).unwrap_or(0).into(),
        eh_max: u16::try_from(max).unwrap_or(0).into(),
        eh_depth: depth.into(),
        eh_generation: 0.into(),
    };
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(header.as_bytes());
    for (_, e) in entries {
        out.extend_from_slice(e);
    }
    out.resize(size, 0);
    out
}

fn to_array(bytes: &[u8]) -> [u8; 12] {
    bytes.try_into().unwrap_or([0; 12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_merge_split_and_grow_index_levels() {
        let mut e = Extents::default();
        e.push(0, 100, 10);
        e.push(10, 110, 5);
        assert_eq!(e.as_slice().len(), 1);
        e.push(15, 1000, EXTENT_MAX_LEN + 1);
        assert_eq!(e.list, vec![(0, 100, 15), (15, 1000, EXTENT_MAX_LEN), (15 + EXTENT_MAX_LEN, 1000 + 32768, 1)]);

        let mut many = Extents::default();
        for i in 0..2000u32 {
            many.push(2 * i, u64::from(2 * i) + 5000, 1);
        }
        let mut next = 1u64;
        let tree = build::<()>(&many, 7, &mut || {
            next += 1;
            Ok(next)
        })
        .unwrap_or_else(|()| unreachable!());
        // 2000 extents: 6 leaves, more than the inode's 4, so one index block above them: depth 2.
        assert_eq!(tree.blocks.len(), 7);
        assert_eq!(tree_blocks_bound(2000), 7);
        assert_eq!(u16::from_le_bytes([tree.i_block[6], tree.i_block[7]]), 2);
    }
}
