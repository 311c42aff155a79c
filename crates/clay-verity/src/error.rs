//! The one error type of this crate.

use std::io;

/// A failure while building, reading or checking a dm-verity hash tree.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    #[error("the {which} block size is {size} bytes but must be a power of two from {min} to {max}")]
    BadBlockSize { which: &'static str, size: u32, min: u32, max: u32 },
    #[error("the salt is {len} bytes but the verity superblock holds at most {max}")]
    SaltTooLong { len: usize, max: usize },
    #[error("the data is {len} bytes, not a multiple of the {block_size}-byte data block")]
    PartialBlock { len: u64, block_size: u32 },
    #[error("the data is empty but dm-verity needs at least one block")]
    EmptyData,
    #[error("the data has more blocks than a hash tree in memory can address")]
    TooLarge,
    #[error("reading the data at byte {offset} failed")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("the data ends after {blocks} blocks but the hash tree covers {expected}")]
    DataTooShort { blocks: u64, expected: u64 },
    #[error("the hash device is {len} bytes but the hash tree needs {needed}")]
    HashDeviceTooShort { len: u64, needed: u64 },
    #[error("no valid verity superblock: {0}")]
    BadSuperblock(String),
    #[error("the superblock's {field} is {found} but the parameters say {expected}")]
    SuperblockMismatch { field: &'static str, found: String, expected: String },
    #[error("data block {block} (byte {offset} of the data) does not match its hash")]
    DataBlockMismatch { block: u64, offset: u64 },
    #[error("hash block {index} of tree level {level} (byte {offset} of the hash device) does not match its hash")]
    HashBlockMismatch { level: usize, index: u64, offset: u64 },
    #[error("`{0}` is not a UUID")]
    BadUuid(String),
}

/// This crate's `Result`.
pub type Result<T, E = VerityError> = std::result::Result<T, E>;
