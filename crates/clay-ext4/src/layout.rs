//! Where everything goes: the block groups, the superblock backups (`sparse_super`), each flex group's bitmaps and
//! inode tables packed at its start (`flex_bg`, as mke2fs lays them out), the journal's size, and a bump
//! allocator handing out the remaining blocks in order.

use crate::ondisk::{BLOCK, BLOCKS_PER_GROUP, DESC_SIZE, GROUPS_PER_FLEX, INODE_SIZE, MAX_INODES_PER_GROUP};

const INODES_PER_BLOCK: u64 = BLOCK / INODE_SIZE as u64;
/// mke2fs drops a last group too small to be worth its metadata; so do we, below this many spare blocks.
const MIN_LAST_GROUP_SPARE: u64 = 50;
/// The smallest filesystem we make: a group holding its metadata, the root and lost+found.
pub(crate) const MIN_BLOCKS: u64 = 64;
/// Below this, mke2fs makes no journal (`ext2fs_default_journal_size` returns -1).
pub(crate) const MIN_JOURNAL_FS_BLOCKS: u64 = 2048;

/// Why no layout fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayoutError {
    /// Too few blocks for the metadata and the inodes asked for.
    TooSmall,
    /// More inodes or groups than ext4's 32-bit counters hold.
    TooLarge,
}

/// The shape of one filesystem.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub blocks: u64,
    pub groups: u64,
    pub inodes_per_group: u32,
    /// Inode table blocks per group.
    pub itable_blocks: u64,
    /// Group descriptor table blocks (at block 1 and after each backup superblock).
    pub gdt_blocks: u64,
    pub journal_blocks: u64,
    /// Blocks taken by superblocks, descriptor tables, bitmaps and inode tables: sorted, disjoint `start..end`.
    pub reserved: Vec<(u64, u64)>,
}

impl Geometry {
    /// Lays out a filesystem of `blocks` blocks with room for `inodes` inodes (reserved ones included).
    pub fn new(mut blocks: u64, inodes: u64, journal: bool) -> Result<Geometry, LayoutError> {
        loop {
            if blocks < MIN_BLOCKS || (journal && blocks < MIN_JOURNAL_FS_BLOCKS) {
                return Err(LayoutError::TooSmall);
            }
            let groups = blocks.div_ceil(BLOCKS_PER_GROUP);
            let gdt_blocks = (groups * DESC_SIZE as u64).div_ceil(BLOCK);
            let ipg = inodes_per_group(blocks, groups, inodes)?;
            let itable_blocks = u64::from(ipg) / INODES_PER_BLOCK;
            let last = groups - 1;
            let last_len = blocks - last * BLOCKS_PER_GROUP;
            let overhead = |g: u64| {
                let sb = if has_super(g) { 1 + gdt_blocks } else { 0 };
                let flex = if g % GROUPS_PER_FLEX == 0 { flex_members(g, groups) * (2 + itable_blocks) } else { 0 };
                sb + flex
            };
            if groups > 1 && last_len < overhead(last) + MIN_LAST_GROUP_SPARE {
                blocks -= last_len;
                continue;
            }
            let mut reserved: Vec<(u64, u64)> = Vec::new();
            for g in 0..groups {
                let start = g * BLOCKS_PER_GROUP;
                let len = overhead(g);
                let group_len = if g == last { last_len } else { BLOCKS_PER_GROUP };
                if len > group_len {
                    return Err(LayoutError::TooSmall);
                }
                if len > 0 {
                    reserved.push((start, start + len));
                }
            }
            let journal_blocks = if journal { default_journal_blocks(blocks) } else { 0 };
            return Ok(Geometry {
                blocks,
                groups,
                inodes_per_group: ipg,
                itable_blocks,
                gdt_blocks,
                journal_blocks,
                reserved,
            });
        }
    }

    pub fn inodes(&self) -> u64 {
        self.groups * u64::from(self.inodes_per_group)
    }

    pub fn reserved_blocks(&self) -> u64 {
        self.reserved.iter().map(|(s, e)| e - s).sum()
    }

    /// Blocks left for file data, directories and the journal.
    pub fn data_blocks(&self) -> u64 {
        self.blocks - self.reserved_blocks()
    }

    /// The first block and length of group `g`.
    pub fn group_range(&self, g: u64) -> (u64, u64) {
        let start = g * BLOCKS_PER_GROUP;
        (start, (self.blocks - start).min(BLOCKS_PER_GROUP))
    }

    /// Where the metadata of `g`'s flex group starts: after the leader's superblock and descriptor copies.
    fn flex_start(&self, g: u64) -> (u64, u64, u64) {
        let leader = g - g % GROUPS_PER_FLEX;
        let sb = if has_super(leader) { 1 + self.gdt_blocks } else { 0 };
        (leader * BLOCKS_PER_GROUP + sb, g - leader, flex_members(leader, self.groups))
    }

    pub fn block_bitmap_at(&self, g: u64) -> u64 {
        let (start, i, _) = self.flex_start(g);
        start + i
    }

    pub fn inode_bitmap_at(&self, g: u64) -> u64 {
        let (start, i, n) = self.flex_start(g);
        start + n + i
    }

    pub fn inode_table_at(&self, g: u64) -> u64 {
        let (start, i, n) = self.flex_start(g);
        start + 2 * n + i * self.itable_blocks
    }

    /// Where inode `ino` (1-based) lives: its block and byte offset in that block.
    pub fn inode_location(&self, ino: u32) -> (u64, usize) {
        let index = u64::from(ino - 1);
        let ipg = u64::from(self.inodes_per_group);
        let (g, i) = (index / ipg, index % ipg);
        let block = self.inode_table_at(g) + i / INODES_PER_BLOCK;
        let offset = usize::try_from(i % INODES_PER_BLOCK).unwrap_or(0) * INODE_SIZE;
        (block, offset)
    }
}

/// Groups holding a superblock copy with `sparse_super`: 0, 1 and the powers of 3, 5 and 7.
pub(crate) fn has_super(g: u64) -> bool {
    if g <= 1 {
        return true;
    }
    [3u64, 5, 7].iter().any(|&base| {
        let mut n = base;
        while n < g {
            n *= base;
        }
        n == g
    })
}

fn flex_members(leader: u64, groups: u64) -> u64 {
    (groups - leader).min(GROUPS_PER_FLEX)
}

/// mke2fs's inode ratio for 4 KiB blocks (mke2fs.conf's `floppy`, `small` and default types), raised to fit
/// `needed`; a whole number of inode table blocks.
fn inodes_per_group(blocks: u64, groups: u64, needed: u64) -> Result<u32, LayoutError> {
    let bytes = blocks * BLOCK;
    let ratio = match bytes {
        b if b < 3 << 20 => 8192,
        b if b < 512 << 20 => 4096,
        _ => 16384,
    };
    let ipg = (bytes / ratio).div_ceil(groups).max(needed.div_ceil(groups)).max(INODES_PER_BLOCK);
    let ipg = ipg.next_multiple_of(INODES_PER_BLOCK);
    if needed.div_ceil(groups) > u64::from(MAX_INODES_PER_GROUP) {
        return Err(LayoutError::TooSmall);
    }
    let ipg = u32::try_from(ipg.min(u64::from(MAX_INODES_PER_GROUP))).map_err(|_| LayoutError::TooLarge)?;
    if groups.checked_mul(u64::from(ipg)).is_none_or(|n| n > u64::from(u32::MAX)) {
        return Err(LayoutError::TooLarge);
    }
    Ok(ipg)
}

/// The journal size mke2fs picks for a filesystem of `blocks` 4 KiB blocks (`ext2fs_default_journal_size`).
fn default_journal_blocks(blocks: u64) -> u64 {
    match blocks {
        b if b < 32_768 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16_384,
        b if b < 8192 * 1024 => 32_768,
        b if b < 16_384 * 1024 => 65_536,
        b if b < 32_768 * 1024 => 131_072,
        _ => 262_144,
    }
}

/// Hands out free blocks in increasing order, skipping the reserved ones. Everything below the cursor is then in
/// use, so the block bitmaps follow from the cursor and the reserved runs alone.
#[derive(Debug)]
pub(crate) struct Allocator<'a> {
    geo: &'a Geometry,
    next: u64,
    run: usize,
}

impl<'a> Allocator<'a> {
    pub fn new(geo: &'a Geometry) -> Self {
        Allocator { geo, next: 0, run: 0 }
    }

    /// The next free run of at most `max` contiguous blocks, or `None` when the filesystem is full.
    pub fn alloc(&mut self, max: u64) -> Option<(u64, u64)> {
        while let Some(&(start, end)) = self.geo.reserved.get(self.run) {
            if self.next < start {
                break;
            }
            self.next = self.next.max(end);
            self.run += 1;
        }
        let limit = self.geo.reserved.get(self.run).map_or(self.geo.blocks, |r| r.0);
        let len = max.min(limit.saturating_sub(self.next));
        if len == 0 {
            return None;
        }
        let start = self.next;
        self.next += len;
        Some((start, len))
    }

    /// Every block below this one is in use.
    pub fn cursor(&self) -> u64 {
        self.next
    }
}
