//! Metadata blocks: the inode, directory and xattr tables are streams cut into 8 KiB pieces, each compressed on
//! its own behind a u16 length header (squashfs.rst, "Metadata blocks").

use std::io;

use crate::compress::BlockCompressor;
use crate::ondisk::{METADATA_SIZE, METADATA_UNCOMPRESSED};

/// Builds one metadata table in memory; positions inside it are `(block offset, byte offset)` pairs.
pub(crate) struct MetaWriter {
    blocks: Vec<u8>,
    /// Start of each finished block inside `blocks`, for tables that need an index of their blocks.
    starts: Vec<u64>,
    pending: Vec<u8>,
}

impl MetaWriter {
    pub(crate) fn new() -> Self {
        MetaWriter { blocks: Vec::new(), starts: Vec::new(), pending: Vec::with_capacity(METADATA_SIZE) }
    }

    /// Where the next byte goes: the offset of its block from the table start and its offset inside the
    /// uncompressed block.
    pub(crate) fn position(&self) -> (u64, u16) {
        // `pending` is flushed as soon as it fills, so its length is below 8 KiB and fits.
        (self.blocks.len() as u64, u16::try_from(self.pending.len()).unwrap_or(u16::MAX))
    }

    pub(crate) fn write(&mut self, mut bytes: &[u8], comp: &mut BlockCompressor) -> io::Result<()> {
        while !bytes.is_empty() {
            let take = bytes.len().min(METADATA_SIZE - self.pending.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == METADATA_SIZE {
                self.flush(comp)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, comp: &mut BlockCompressor) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.starts.push(self.blocks.len() as u64);
        let len = |n: usize| u16::try_from(n).map_err(io::Error::other);
        match comp.compress(&self.pending)? {
            Some(packed) => {
                self.blocks.extend_from_slice(&len(packed.len())?.to_le_bytes());
                self.blocks.extend_from_slice(&packed);
            }
            None => {
                let header = len(self.pending.len())? | METADATA_UNCOMPRESSED;
                self.blocks.extend_from_slice(&header.to_le_bytes());
                self.blocks.extend_from_slice(&self.pending);
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// The finished table and the start of each of its blocks relative to the table start.
    pub(crate) fn finish(mut self, comp: &mut BlockCompressor) -> io::Result<(Vec<u8>, Vec<u64>)> {
        self.flush(comp)?;
        Ok((self.blocks, self.starts))
    }
}

/// A table of fixed-size records (ids, fragments, the export table, xattr ids) laid out as the kernel reads it:
/// the metadata blocks, then an index of their absolute positions. Returns the bytes, which start at `at`, and
/// the offset of the index inside them.
pub(crate) fn indexed_table(records: &[u8], at: u64, comp: &mut BlockCompressor) -> io::Result<(Vec<u8>, usize)> {
    let mut meta = MetaWriter::new();
    meta.write(records, comp)?;
    let (mut bytes, starts) = meta.finish(comp)?;
    let index_at = bytes.len();
    for start in starts {
        bytes.extend_from_slice(&(at + start).to_le_bytes());
    }
    Ok((bytes, index_at))
}
