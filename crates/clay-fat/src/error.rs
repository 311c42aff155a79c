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
    #[error("`{path}` does not exist on the FAT volume")]
    NotFound { path: String },
    #[error("`{path}` is a directory, not a file")]
    NotAFile { path: String },
    #[error("`{path}` is a file, so it cannot hold `{rest}`")]
    NotADirectory { path: String, rest: String },
    #[error(
        "writing {len} bytes to `{path}` needs {needed} bytes of free clusters but the volume has {free}, \
         {missing} bytes too few"
    )]
    NoSpace { path: String, len: u64, needed: u64, free: u64, missing: u64 },
    #[error("the cluster chain of `{path}` runs in a loop back to cluster {cluster}")]
    ChainLoop { path: String, cluster: u32 },
    #[error("the cluster chain of `{path}` leads to cluster {cluster}, outside the volume's clusters 2 to {max}")]
    ClusterOutOfRange { path: String, cluster: u32, max: u32 },
    #[error("`{path}` is {len} bytes, which take {expected} clusters, but its cluster chain ends after {clusters}")]
    ChainTooShort { path: String, len: u64, expected: u64, clusters: u64 },
    #[error("`{path}` is {len} bytes, which take {expected} clusters, but its cluster chain has {clusters}")]
    ChainTooLong { path: String, len: u64, expected: u64, clusters: u64 },
    #[error("`{path}` shares cluster {cluster} with another file or directory, so its clusters cannot be freed")]
    CrossLinked { path: String, cluster: u32 },
    #[error("cannot read or write the FAT volume: {0}")]
    Io(#[from] io::Error),
}
