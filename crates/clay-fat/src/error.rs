//! The one error type of this crate.

use std::io;

/// A failure while sizing, writing or reading a FAT32 volume.
#[derive(Debug, thiserror::Error)]
pub enum FatError {
    #[error("a {size}-byte volume is too small for FAT32, which needs at least {min} bytes")]
    TooSmall { size: u64, min: u64 },
    #[error("a {size}-byte volume is larger than FAT32 with 512-byte sectors can address")]
    TooLarge { size: u64 },
    #[error(
        "the files need {needed} bytes of clusters but the {size}-byte volume has {available}; \
         a volume of {suggested} bytes would hold them"
    )]
    Full { needed: u64, available: u64, size: u64, suggested: u64 },
    #[error("`{path}` is not a valid FAT path: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("`{path}` is given twice (FAT names are case-insensitive)")]
    DuplicatePath { path: String },
    #[error("`{path}` is needed both as a file and as a directory")]
    PathConflict { path: String },
    #[error("`{path}` is {len} bytes but a FAT file must be smaller than 4 GiB")]
    FileTooLarge { path: String, len: u64 },
    #[error("directory `{path}` has more entries than a FAT directory can hold (65,536)")]
    DirectoryTooLarge { path: String },
    #[error("the volume label `{label}` is invalid: it must be at most 11 characters of uppercase ASCII letters, digits, spaces or !#$%&'()-@^_`{{}}~")]
    InvalidLabel { label: String },
    #[error("`{path}` promised {expected} bytes but its data ended after {got}")]
    ShortData { path: String, expected: u64, got: u64 },
    #[error("`{path}` promised {expected} bytes but its data goes on")]
    LongData { path: String, expected: u64 },
    #[error("not a FAT32 volume: {0}")]
    NotFat32(String),
    #[error("the FAT32 volume is damaged: {0}")]
    Corrupt(String),
    #[error("cannot read or write the FAT volume: {0}")]
    Io(#[from] io::Error),
}
