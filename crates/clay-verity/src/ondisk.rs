//! The verity superblock, as cryptsetup's on-disk format description (docs/on-disk-format.txt, "VERITY") lays it
//! out: 512 little-endian bytes at the start of the hash device, the tree starting at the next hash block.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The superblock's signature: "verity" padded with NULs.
pub const SUPERBLOCK_SIGNATURE: [u8; 8] = *b"verity\0\0";
/// The superblock layout version; cryptsetup writes and accepts only 1.
pub const SUPERBLOCK_VERSION: u32 = 1;
/// Bytes of the superblock.
pub const SUPERBLOCK_LEN: usize = 512;
/// Bytes of the salt field: the longest salt a superblock can hold.
pub const MAX_SALT_LEN: usize = 256;
/// Bytes of the NUL-padded algorithm name field.
pub const ALGORITHM_LEN: usize = 32;

/// `struct verity_sb` of cryptsetup's format description.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Superblock {
    pub signature: [u8; 8],
    /// [`SUPERBLOCK_VERSION`].
    pub version: U32,
    /// The tree format, the kernel table's `<version>`: 0 (Chrome OS) or 1.
    pub hash_type: U32,
    /// The UUID's 16 bytes in text order.
    pub uuid: [u8; 16],
    /// The hash algorithm's name, lowercase, NUL-padded.
    pub algorithm: [u8; ALGORITHM_LEN],
    pub data_block_size: U32,
    pub hash_block_size: U32,
    pub data_blocks: U64,
    pub salt_size: U16,
    pub pad1: [u8; 6],
    pub salt: [u8; MAX_SALT_LEN],
    pub pad2: [u8; 168],
}

const _: () = assert!(size_of::<Superblock>() == SUPERBLOCK_LEN);
