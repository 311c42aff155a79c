//! Checking a hash device and its data against a root hash, the way the kernel would on reading every block.

use std::io::Read;

use crate::options::{check_block_size, check_salt};
use crate::tree::{for_each_block, level_ranges, level_sizes, to_usize, Hasher, Slots};
use crate::{Result, VerityError, VerityParams, DIGEST_LEN};

/// Checks that `hash_device` holds the tree `params` describe and that the first `params.data_blocks` blocks of
/// `data` (streamed; anything after them is ignored, as a partition may be larger) match it.
///
/// The tree is checked from the root down, then the data in order; the error names the first block that does not
/// match its hash. With a superblock (`params.uuid` is `Some`), its fields must agree with `params`.
pub fn verify(data: impl Read, hash_device: &[u8], params: &VerityParams) -> Result<()> {
    check_block_size("data", params.data_block_size)?;
    check_block_size("hash", params.hash_block_size)?;
    check_salt(&params.salt)?;
    if params.data_blocks == 0 {
        return Err(VerityError::EmptyData);
    }
    let needed = params.hash_device_size();
    if (hash_device.len() as u64) < needed {
        return Err(VerityError::HashDeviceTooShort { len: hash_device.len() as u64, needed });
    }
    if params.uuid.is_some() {
        check_superblock(hash_device, params)?;
    }

    let hasher = Hasher::new(params.format, &params.salt);
    let slots = Slots::new(params.format, params.hash_block_size);
    let sizes = level_sizes(params.data_blocks, params.hash_block_size);
    let ranges = level_ranges(&sizes, params.hash_start_block, params.hash_block_size)?;

    // The digest the tree expects for block `index` of the level below `level` (or of the data, below level 0).
    let expected = |level: usize, index: u64| -> Result<&[u8]> {
        match ranges.get(level) {
            None => Ok(&params.root_hash[..]),
            Some(&(start, _)) => {
                let at = start + slots.offset(index)?;
                Ok(&hash_device[at..at + DIGEST_LEN])
            }
        }
    };

    for level in (0..ranges.len()).rev() {
        let (start, end) = ranges[level];
        for (index, block) in hash_device[start..end].chunks(slots.hash_block_size).enumerate() {
            let index = index as u64;
            if hasher.digest(block) != expected(level + 1, index)? {
                let offset = (start + to_usize(index)? * slots.hash_block_size) as u64;
                return Err(VerityError::HashBlockMismatch { level, index, offset });
            }
        }
    }

    let blocks = for_each_block(data, params.data_block_size, Some(params.data_blocks), |index, block| {
        if hasher.digest(block) == expected(0, index)? {
            Ok(())
        } else {
            Err(VerityError::DataBlockMismatch { block: index, offset: index * u64::from(params.data_block_size) })
        }
    })?;
    if blocks < params.data_blocks {
        return Err(VerityError::DataTooShort { blocks, expected: params.data_blocks });
    }
    Ok(())
}

fn check_superblock(hash_device: &[u8], params: &VerityParams) -> Result<()> {
    let sb = VerityParams::from_superblock(hash_device, params.root_hash)?;
    let mismatch = |field: &'static str, found: String, expected: String| {
        Err(VerityError::SuperblockMismatch { field, found, expected })
    };
    if sb.format != params.format {
        return mismatch("format", sb.format.number().to_string(), params.format.number().to_string());
    }
    if sb.data_block_size != params.data_block_size {
        return mismatch("data block size", sb.data_block_size.to_string(), params.data_block_size.to_string());
    }
    if sb.hash_block_size != params.hash_block_size {
        return mismatch("hash block size", sb.hash_block_size.to_string(), params.hash_block_size.to_string());
    }
    if sb.data_blocks != params.data_blocks {
        return mismatch("data block count", sb.data_blocks.to_string(), params.data_blocks.to_string());
    }
    if sb.hash_start_block != params.hash_start_block {
        return mismatch("hash start block", sb.hash_start_block.to_string(), params.hash_start_block.to_string());
    }
    if sb.salt != params.salt {
        return mismatch("salt", sb.salt_hex(), params.salt_hex());
    }
    if sb.uuid != params.uuid {
        return mismatch("UUID", sb.uuid_string().unwrap_or_default(), params.uuid_string().unwrap_or_default());
    }
    Ok(())
}
