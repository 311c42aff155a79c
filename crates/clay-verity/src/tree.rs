//! Building the hash tree (verity.rst, "Hash Tree"): level 0 holds the digests of the data blocks, each level above
//! the digests of the blocks below, until one block remains; its digest is the root hash. The hash device stores the
//! levels top-down: the single top block first, level 0 last.

use std::io::{ErrorKind, Read};

use sha2::{Digest, Sha256};

use crate::params::superblock_blocks;
use crate::{Format, HashTree, Result, VerityError, VerityOptions, VerityParams, DIGEST_LEN};

/// Bytes read from the data at a time (or one block, if blocks are larger).
const CHUNK_LEN: usize = 1 << 20;

/// Hashes blocks with the salt in the place the format puts it.
pub(crate) struct Hasher {
    /// The state after the salt, for [`Format::V1`], which prepends it.
    start: Sha256,
    /// The salt to append, for [`Format::V0`].
    suffix: Vec<u8>,
}

impl Hasher {
    pub(crate) fn new(format: Format, salt: &[u8]) -> Hasher {
        match format {
            Format::V0 => Hasher { start: Sha256::new(), suffix: salt.to_vec() },
            Format::V1 => Hasher { start: Sha256::new_with_prefix(salt), suffix: Vec::new() },
        }
    }

    pub(crate) fn digest(&self, block: &[u8]) -> [u8; DIGEST_LEN] {
        let mut h = self.start.clone();
        h.update(block);
        h.update(&self.suffix);
        h.finalize().into()
    }
}

/// Where each digest goes in the hash blocks of one level.
#[derive(Clone, Copy)]
pub(crate) struct Slots {
    /// Digests per hash block: the largest power of two that fits (verity.rst: `hash_per_block_bits`).
    pub per_block: u64,
    /// Bytes from one digest to the next: a power of two in format 1, the digest itself in format 0.
    pub stride: usize,
    pub hash_block_size: usize,
}

impl Slots {
    pub(crate) fn new(format: Format, hash_block_size: u32) -> Slots {
        let hash_block_size = hash_block_size as usize;
        let per_block = 1u64 << (hash_block_size / DIGEST_LEN).ilog2();
        let stride = match format {
            Format::V0 => DIGEST_LEN,
            Format::V1 => DIGEST_LEN.next_power_of_two(),
        };
        Slots { per_block, stride, hash_block_size }
    }

    /// The byte offset of digest `index` within its level.
    pub(crate) fn offset(&self, index: u64) -> Result<usize> {
        let block = usize::try_from(index / self.per_block).map_err(|_| VerityError::TooLarge)?;
        let within = to_usize(index % self.per_block)?;
        Ok(block * self.hash_block_size + within * self.stride)
    }
}

/// Hash blocks of each tree level, level 0 first; empty for a single data block, whose digest is the root hash.
pub(crate) fn level_sizes(data_blocks: u64, hash_block_size: u32) -> Vec<u64> {
    let per_block = 1u64 << (hash_block_size as usize / DIGEST_LEN).ilog2();
    let mut sizes = Vec::new();
    let mut n = data_blocks;
    while n > 1 {
        n = n.div_ceil(per_block);
        sizes.push(n);
    }
    sizes
}

/// Byte ranges of each level on the hash device, level 0 first, for a tree starting at hash block `start_block`.
pub(crate) fn level_ranges(sizes: &[u64], start_block: u64, hash_block_size: u32) -> Result<Vec<(usize, usize)>> {
    let hbs = u64::from(hash_block_size);
    let mut ranges = vec![(0, 0); sizes.len()];
    let mut block = start_block;
    for (range, &size) in ranges.iter_mut().zip(sizes).rev() {
        let start = block.checked_mul(hbs).ok_or(VerityError::TooLarge)?;
        block = block.checked_add(size).ok_or(VerityError::TooLarge)?;
        let end = block.checked_mul(hbs).ok_or(VerityError::TooLarge)?;
        *range = (to_usize(start)?, to_usize(end)?);
    }
    Ok(ranges)
}

pub(crate) fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| VerityError::TooLarge)
}

/// Fills `buf` from `reader`; fewer bytes only at the end of the data.
fn fill(reader: &mut impl Read, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(source) => return Err(VerityError::Read { offset: offset + filled as u64, source }),
        }
    }
    Ok(filled)
}

/// Calls `f(index, block)` for each data block, reading at most `limit` blocks; returns the number of blocks. Data
/// ending inside a block is [`VerityError::PartialBlock`].
pub(crate) fn for_each_block(
    mut reader: impl Read,
    block_size: u32,
    limit: Option<u64>,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let bs = block_size as usize;
    let mut chunk = vec![0u8; CHUNK_LEN.max(bs)];
    let mut blocks = 0u64;
    loop {
        let want = match limit {
            Some(limit) => chunk.len().min(to_usize(limit - blocks)?.saturating_mul(bs)),
            None => chunk.len(),
        };
        if want == 0 {
            return Ok(blocks);
        }
        let offset = blocks * u64::from(block_size);
        let got = fill(&mut reader, &mut chunk[..want], offset)?;
        for block in chunk[..got].chunks(bs) {
            if block.len() < bs {
                let len = offset + got as u64;
                return Err(VerityError::PartialBlock { len, block_size });
            }
            f(blocks, block)?;
            blocks += 1;
        }
        if got < want {
            return Ok(blocks);
        }
    }
}

/// Builds the hash device for `data` (read to its end, a block at a time) as `veritysetup format` does.
pub fn format(data: impl Read, options: &VerityOptions) -> Result<HashTree> {
    options.validate()?;
    let hasher = Hasher::new(options.format, &options.salt);
    let mut leaves: Vec<[u8; DIGEST_LEN]> = Vec::new();
    let data_blocks = for_each_block(data, options.data_block_size, None, |_, block| {
        leaves.push(hasher.digest(block));
        Ok(())
    })?;
    if data_blocks == 0 {
        return Err(VerityError::EmptyData);
    }

    let hbs = options.hash_block_size;
    let slots = Slots::new(options.format, hbs);
    let hash_start_block = if options.superblock { superblock_blocks(hbs) } else { 0 };
    let sizes = level_sizes(data_blocks, hbs);
    let ranges = level_ranges(&sizes, hash_start_block, hbs)?;
    let end = ranges.first().map_or(to_usize(hash_start_block * u64::from(hbs))?, |r| r.1);
    let mut device = vec![0u8; end];

    let root_hash = match ranges.first() {
        None => leaves[0],
        Some(&(start, _)) => {
            for (i, leaf) in leaves.iter().enumerate() {
                let at = start + slots.offset(i as u64)?;
                device[at..at + DIGEST_LEN].copy_from_slice(leaf);
            }
            drop(leaves);
            for level in 1..ranges.len() {
                let (above, below) = device.split_at_mut(ranges[level - 1].0);
                let (start, _) = ranges[level];
                let child_len = ranges[level - 1].1 - ranges[level - 1].0;
                for (i, block) in below[..child_len].chunks(slots.hash_block_size).enumerate() {
                    let at = start + slots.offset(i as u64)?;
                    above[at..at + DIGEST_LEN].copy_from_slice(&hasher.digest(block));
                }
            }
            let (top, _) = ranges[ranges.len() - 1];
            hasher.digest(&device[top..top + slots.hash_block_size])
        }
    };

    let uuid = options.superblock.then(|| options.uuid.unwrap_or_else(|| uuid_from_root_hash(&root_hash)));
    let params = VerityParams {
        format: options.format,
        data_block_size: options.data_block_size,
        hash_block_size: hbs,
        data_blocks,
        hash_start_block,
        root_hash,
        salt: options.salt.clone(),
        uuid,
    };
    if options.superblock {
        device[..crate::ondisk::SUPERBLOCK_LEN].copy_from_slice(&params.superblock());
    }
    Ok(HashTree { hash_device: device, params })
}

/// A version 4 style UUID made of the root hash's last 16 bytes (systemd-repart's choice for the hash partition),
/// so the same data and salt always give the same superblock.
fn uuid_from_root_hash(root_hash: &[u8; DIGEST_LEN]) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&root_hash[DIGEST_LEN - 16..]);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}
