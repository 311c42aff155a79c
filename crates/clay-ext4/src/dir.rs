//! Linear directories (Documentation/filesystems/ext4/directory.rst): `ext4_dir_entry_2` records packed into
//! blocks, each block ending with the 12-byte tail that holds its checksum.

use crate::csum::set_dir_block_csum;
use crate::ondisk::{BLOCK_SIZE, DIR_TAIL_FT, DIR_TAIL_SIZE, FT_DIR};

/// Entries end where the tail starts.
const ENTRIES_END: usize = BLOCK_SIZE - DIR_TAIL_SIZE;
const ENTRY_HEADER: usize = 8;

/// A directory's listing, block by block.
#[derive(Debug, Default)]
pub(crate) struct DirBuilder {
    bytes: Vec<u8>,
    /// Offset in `bytes` of the current block's last entry, whose `rec_len` stretches to the tail.
    last: Option<usize>,
    /// Offset in `bytes` where the next entry goes.
    at: usize,
}

impl DirBuilder {
    /// A listing starting with `.` and `..`.
    pub fn new(ino: u32, parent: u32) -> Self {
        let mut d = DirBuilder::default();
        d.push(b".", ino, FT_DIR);
        d.push(b"..", parent, FT_DIR);
        d
    }

    pub fn push(&mut self, name: &[u8], ino: u32, file_type: u8) {
        let size = (ENTRY_HEADER + name.len()).next_multiple_of(4);
        if self.last.is_none() || self.at % BLOCK_SIZE + size > ENTRIES_END {
            self.new_block();
        }
        let at = self.at;
        let b = &mut self.bytes;
        b[at..at + 4].copy_from_slice(&ino.to_le_bytes());
        b[at + 4..at + 6].copy_from_slice(&u16::try_from(size).unwrap_or(0).to_le_bytes());
        b[at + 6] = u8::try_from(name.len()).unwrap_or(u8::MAX);
        b[at + 7] = file_type;
        b[at + ENTRY_HEADER..at + ENTRY_HEADER + name.len()].copy_from_slice(name);
        self.last = Some(at);
        self.at += size;
    }

    /// Closes the current block (its last entry takes the slack) and opens a fresh one.
    fn new_block(&mut self) {
        self.close_block();
        self.at = self.bytes.len();
        self.bytes.resize(self.at + BLOCK_SIZE, 0);
        let tail = self.at + ENTRIES_END;
        self.bytes[tail + 4..tail + 6].copy_from_slice(&u16::try_from(DIR_TAIL_SIZE).unwrap_or(0).to_le_bytes());
        self.bytes[tail + 7] = DIR_TAIL_FT;
        self.last = None;
    }

    fn close_block(&mut self) {
        let block_start = self.bytes.len().saturating_sub(BLOCK_SIZE);
        match self.last {
            Some(last) => {
                let rec_len = block_start + ENTRIES_END - last;
                self.bytes[last + 4..last + 6].copy_from_slice(&u16::try_from(rec_len).unwrap_or(0).to_le_bytes());
            }
            // An empty block: one unused entry (inode 0) spanning it, as mke2fs writes lost+found's spare blocks.
            None if !self.bytes.is_empty() => {
                let rec_len = u16::try_from(ENTRIES_END).unwrap_or(0);
                self.bytes[block_start + 4..block_start + 6].copy_from_slice(&rec_len.to_le_bytes());
            }
            None => {}
        }
    }

    /// Pads with empty blocks up to `blocks` (lost+found's preallocated room).
    pub fn pad_to(&mut self, blocks: usize) {
        while self.bytes.len() < blocks * BLOCK_SIZE {
            self.new_block();
        }
    }

    pub fn block_count(&self) -> usize {
        self.bytes.len() / BLOCK_SIZE
    }

    /// The blocks, each with its checksum.
    pub fn finish(mut self, inode_seed: u32) -> Vec<u8> {
        self.close_block();
        for block in self.bytes.chunks_exact_mut(BLOCK_SIZE) {
            set_dir_block_csum(block, inode_seed);
        }
        self.bytes
    }
}
