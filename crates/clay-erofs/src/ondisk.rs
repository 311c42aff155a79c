//! The EROFS on-disk structures, little-endian, as Linux 6.1 reads them (fs/erofs/erofs_fs.h;
//! Documentation/filesystems/erofs.rst). Each struct is declared once and its size asserted here.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout, Unaligned};

/// `EROFS_SUPER_MAGIC_V1`.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// The superblock sits 1 KiB into block 0, leaving room for a boot sector (`EROFS_SUPER_OFFSET`).
pub const SUPER_OFFSET: u64 = 1024;
/// 4 KiB blocks: the only size a 6.1 kernel with 4 KiB pages mounts (`EROFS_BLKSIZ`, `blkszbits`).
pub const BLOCK_BITS: u8 = 12;
pub const BLOCK: u64 = 1 << BLOCK_BITS;
pub const BLOCK_BYTES: usize = 1 << BLOCK_BITS;
/// An inode's number (nid) is its offset from the metadata start in 32-byte slots (`EROFS_ISLOTBITS`).
pub const SLOT: u64 = 32;

/// `EROFS_FEATURE_COMPAT_SB_CHKSUM`: the superblock carries a crc32c; `EROFS_FEATURE_COMPAT_MTIME`: extended
/// inodes carry their own mtime. mkfs.erofs sets both.
pub const FEATURE_COMPAT_SB_CHKSUM: u32 = 0x1;
pub const FEATURE_COMPAT_MTIME: u32 = 0x2;

/// `i_format` bit 0: 0 for the 32-byte compact inode, 1 for the 64-byte extended one (`EROFS_INODE_LAYOUT_*`).
pub const FORMAT_EXTENDED: u16 = 1;
/// `i_format` bits 1-3, the data layout (`EROFS_INODE_FLAT_PLAIN`, `EROFS_INODE_FLAT_INLINE`): plain data lives in
/// consecutive blocks from `raw_blkaddr`; inline keeps the last partial block right after the inode and xattrs.
pub const LAYOUT_FLAT_PLAIN: u16 = 0;
pub const LAYOUT_FLAT_INLINE: u16 = 2;
pub const LAYOUT_SHIFT: u16 = 1;
/// `raw_blkaddr` of an inode with no data blocks (erofs-utils' `NULL_ADDR`).
pub const NULL_ADDR: u32 = u32::MAX;

/// Directory entry file types (`EROFS_FT_*`).
pub const FT_REG_FILE: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHRDEV: u8 = 3;
pub const FT_BLKDEV: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SYMLINK: u8 = 7;
/// Names are at most 255 bytes (`EROFS_NAME_LEN`).
pub const NAME_MAX: usize = 255;

/// Inline xattr entries are padded to 4 bytes (`EROFS_XATTR_ALIGN`); `i_xattr_icount` counts the 12-byte body
/// header as one 4-byte slot (`erofs_xattr_ibody_size`).
pub const XATTR_ALIGN: usize = 4;
/// Xattr name prefixes and their indexes (`EROFS_XATTR_INDEX_*`); the POSIX ACL names are whole names with an
/// empty suffix.
pub const XATTR_PREFIXES: [(&[u8], u8); 6] = [
    (b"user.", 1),
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 3),
    (b"trusted.", 4),
    (b"lustre.", 5),
    (b"security.", 6),
];
/// The kernel refuses values above `XATTR_SIZE_MAX`.
pub const XATTR_VALUE_MAX: usize = 65536;

/// The superblock (`struct erofs_super_block`).
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SuperBlock {
    pub magic: U32,
    pub checksum: U32,
    pub feature_compat: U32,
    pub blkszbits: u8,
    pub sb_extslots: u8,
    pub root_nid: U16,
    pub inos: U64,
    pub build_time: U64,
    pub build_time_nsec: U32,
    pub blocks: U32,
    pub meta_blkaddr: U32,
    pub xattr_blkaddr: U32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub feature_incompat: U32,
    pub available_compr_algs: U16,
    pub extra_devices: U16,
    pub devt_slotoff: U16,
    pub reserved: [u8; 6],
    pub packed_nid: U64,
    pub reserved2: [u8; 24],
}

/// The 32-byte inode (`struct erofs_inode_compact`); its mtime is the superblock's build time.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct InodeCompact {
    pub format: U16,
    pub xattr_icount: U16,
    pub mode: U16,
    pub nlink: U16,
    pub size: U32,
    pub reserved: U32,
    /// `raw_blkaddr` for files, directories and symlinks; the `new_encode_dev` number for devices.
    pub u: U32,
    pub ino: U32,
    pub uid: U16,
    pub gid: U16,
    pub reserved2: U32,
}

/// The 64-byte inode (`struct erofs_inode_extended`).
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct InodeExtended {
    pub format: U16,
    pub xattr_icount: U16,
    pub mode: U16,
    pub reserved: U16,
    pub size: U64,
    pub u: U32,
    pub ino: U32,
    pub uid: U32,
    pub gid: U32,
    pub mtime: U64,
    pub mtime_nsec: U32,
    pub nlink: U32,
    pub reserved2: [u8; 16],
}

/// A directory entry (`struct erofs_dirent`); names follow the entries of their block, unterminated.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Dirent {
    pub nid: U64,
    pub nameoff: U16,
    pub file_type: u8,
    pub reserved: u8,
}

/// The header of an inode's inline xattrs (`struct erofs_xattr_ibody_header`), without shared xattr ids.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrIbodyHeader {
    pub reserved: U32,
    pub shared_count: u8,
    pub reserved2: [u8; 7],
}

/// One xattr (`struct erofs_xattr_entry`), followed by the name suffix and the value.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrEntry {
    pub name_len: u8,
    pub name_index: u8,
    pub value_size: U16,
}

const _: () = assert!(size_of::<SuperBlock>() == 128);
const _: () = assert!(size_of::<InodeCompact>() == 32);
const _: () = assert!(size_of::<InodeExtended>() == 64);
const _: () = assert!(size_of::<Dirent>() == 12);
const _: () = assert!(size_of::<XattrIbodyHeader>() == 12);
const _: () = assert!(size_of::<XattrEntry>() == 4);
