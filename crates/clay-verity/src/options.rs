//! What the caller chooses: block sizes, salt, format version, UUID, superblock or not.

use sha2::{Digest, Sha256};

use crate::ondisk::MAX_SALT_LEN;
use crate::{Result, VerityError};

/// The smallest block size cryptsetup accepts (one sector).
pub const MIN_BLOCK_SIZE: u32 = 512;
/// The largest block size cryptsetup accepts. The kernel itself refuses blocks larger than the page size (4096 on
/// x86-64), which `veritysetup format` only warns about.
pub const MAX_BLOCK_SIZE: u32 = 512 * 1024;
/// `veritysetup format`'s default data and hash block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// `veritysetup format`'s default salt length (it draws the salt at random; we take it from the caller).
pub const DEFAULT_SALT_LEN: usize = 32;

/// The on-disk tree format, the first argument of the kernel's verity table (verity.rst, `<version>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The original Chrome OS format: the salt is appended to each block when hashing.
    V0,
    /// The current format and `veritysetup`'s default: the salt is prepended to each block when hashing and every
    /// digest is padded with zeroes to a power of two.
    #[default]
    V1,
}

impl Format {
    /// The number the kernel table and the superblock's `hash_type` use.
    pub fn number(self) -> u32 {
        match self {
            Format::V0 => 0,
            Format::V1 => 1,
        }
    }

    /// The format whose number is `n`, if any.
    pub fn from_number(n: u32) -> Option<Format> {
        match n {
            0 => Some(Format::V0),
            1 => Some(Format::V1),
            _ => None,
        }
    }
}

/// How to build a hash tree; [`VerityOptions::new`] gives `veritysetup format`'s defaults with the caller's salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityOptions {
    /// Bytes per data block (`--data-block-size`).
    pub data_block_size: u32,
    /// Bytes per hash block (`--hash-block-size`).
    pub hash_block_size: u32,
    /// At most [`MAX_SALT_LEN`] bytes, possibly none (`--salt`, `-` for none).
    pub salt: Vec<u8>,
    /// `--format`.
    pub format: Format,
    /// The superblock's UUID in text byte order (`--uuid`). `None` derives it from the root hash, so the same data
    /// and salt always give the same hash device.
    pub uuid: Option<[u8; 16]>,
    /// Whether the hash device starts with a superblock (`false` is `--no-superblock`).
    pub superblock: bool,
}

impl VerityOptions {
    /// 4096-byte data and hash blocks, format 1, a superblock with a UUID derived from the root hash.
    pub fn new(salt: impl Into<Vec<u8>>) -> VerityOptions {
        VerityOptions {
            data_block_size: DEFAULT_BLOCK_SIZE,
            hash_block_size: DEFAULT_BLOCK_SIZE,
            salt: salt.into(),
            format: Format::V1,
            uuid: None,
            superblock: true,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_block_size("data", self.data_block_size)?;
        check_block_size("hash", self.hash_block_size)?;
        check_salt(&self.salt)
    }
}

pub(crate) fn check_block_size(which: &'static str, size: u32) -> Result<()> {
    if size.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(VerityError::BadBlockSize { which, size, min: MIN_BLOCK_SIZE, max: MAX_BLOCK_SIZE })
    }
}

pub(crate) fn check_salt(salt: &[u8]) -> Result<()> {
    if salt.len() > MAX_SALT_LEN {
        return Err(VerityError::SaltTooLong { len: salt.len(), max: MAX_SALT_LEN });
    }
    Ok(())
}

/// A [`DEFAULT_SALT_LEN`]-byte salt derived from `seed`: deterministic builds get the same salt for the same seed,
/// and different seeds get unrelated salts.
pub fn salt_from_seed(seed: &[u8]) -> [u8; DEFAULT_SALT_LEN] {
    let mut h = Sha256::new();
    h.update(b"clay-verity salt\0");
    h.update(seed);
    h.finalize().into()
}
