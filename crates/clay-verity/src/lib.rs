//! dm-verity hash trees and superblocks, laid out exactly as `veritysetup format` (cryptsetup) writes them, per the
//! kernel's Documentation/admin-guide/device-mapper/verity.rst and cryptsetup's on-disk format description.
//!
//! [`format()`] streams the data once (a root file system may be gigabytes; only the level-0 digests, 32 bytes per
//! data block, stay in memory) and returns the hash device's bytes with the [`VerityParams`] a dm-verity table or
//! kernel command line needs; [`verify`] recomputes and compares, naming the first block that does not match.
//! Deterministic: the salt and UUID come from the caller (see [`salt_from_seed`]). The hash algorithm is SHA-256.
//!
//! The hash device is a superblock (512 bytes, in its own hash block) unless [`VerityOptions::superblock`] is
//! false, then the tree levels top-down: the root block first, the digests of the data blocks last.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod ondisk;
mod options;
mod params;
mod tree;
mod verify;

pub use error::{Result, VerityError};
pub use ondisk::{MAX_SALT_LEN, SUPERBLOCK_LEN, SUPERBLOCK_SIGNATURE, SUPERBLOCK_VERSION};
pub use options::{
    salt_from_seed, Format, VerityOptions, DEFAULT_BLOCK_SIZE, DEFAULT_SALT_LEN, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE,
};
pub use params::{hex, parse_uuid, uuid_to_string, VerityParams};
pub use tree::format;
pub use verify::verify;

/// The hash algorithm, by its kernel crypto API and cryptsetup name.
pub const ALGORITHM: &str = "sha256";
/// Bytes of a [`ALGORITHM`] digest.
pub const DIGEST_LEN: usize = 32;

/// What [`format()`] builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTree {
    /// The whole hash device: [`VerityParams::hash_device_size`] bytes.
    pub hash_device: Vec<u8>,
    pub params: VerityParams,
}

#[cfg(test)]
mod tests;
