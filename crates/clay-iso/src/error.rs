//! The one error type of the crate.

use std::io;

/// A failure while laying out, writing or reading an ISO image.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("volume id `{0}` is not 1 to 32 of the ISO 9660 d-characters A-Z, 0-9 and _")]
    InvalidVolumeId(String),
    #[error("path `{path}` is not usable in an ISO image: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("path `{0}` is given twice")]
    DuplicatePath(String),
    #[error("path `{0}` is used both as a file and as a directory")]
    FileDirectoryConflict(String),
    #[error("`{path}` is {len} bytes; ISO 9660 records a file extent's size in 32 bits, so files must be under 4 GiB")]
    FileTooLarge { path: String, len: u64 },
    #[error("`{path}` was declared as {expected} bytes but its reader gave {got}")]
    ShortFile { path: String, expected: u64, got: u64 },
    #[error("`{path}` was declared as {expected} bytes but its reader gave more")]
    LongFile { path: String, expected: u64 },
    #[error("cannot read `{path}`: {source}")]
    Read { path: String, source: io::Error },
    #[error("the {role} `{path}` is not among the image's files")]
    MissingBootFile { role: &'static str, path: String },
    #[error("the BIOS boot image `{path}` is not a usable isolinux.bin: {reason}")]
    BadIsolinux { path: String, reason: String },
    #[error("the hybrid MBR boot code is {len} bytes; isohdpfx.bin-style code is at least 432 bytes")]
    ShortMbrCode { len: usize },
    #[error("the image has {count} directories; ISO 9660 path tables number at most 65535")]
    TooManyDirectories { count: usize },
    #[error("the image would be {sectors} sectors of 2048 bytes; ISO 9660 addresses at most 2^32")]
    ImageTooLarge { sectors: u64 },
    #[error("cannot write the ISO image: {0}")]
    Write(#[source] io::Error),
    #[error("not an ISO 9660 image: {0}")]
    NotIso(String),
    #[error("the El Torito boot catalog at sector {lba} is invalid: {reason}")]
    BadBootCatalog { lba: u32, reason: String },
    #[error("cannot read the ISO image: {0}")]
    ReadImage(#[source] io::Error),
}
