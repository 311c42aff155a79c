//! The squashfs 4.0 on-disk structures, little-endian, as the kernel reads them (fs/squashfs/squashfs_fs.h;
//! Documentation/filesystems/squashfs.rst). Each struct is declared once and its size asserted here.

use zerocopy::little_endian::{I16, U16, U32, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout, Unaligned};

/// "hsqs" read as a little-endian u32 (`SQUASHFS_MAGIC`).
pub const MAGIC: u32 = 0x7371_7368;
/// Format version 4.0 (`SQUASHFS_MAJOR`, `SQUASHFS_MINOR`).
pub const VERSION_MAJOR: u16 = 4;
pub const VERSION_MINOR: u16 = 0;

/// Metadata (inode, directory, table) blocks hold at most 8 KiB before compression (`SQUASHFS_METADATA_SIZE`).
pub const METADATA_SIZE: usize = 8192;
/// Bit 15 of a metadata block's u16 length header: the block is stored uncompressed
/// (`SQUASHFS_COMPRESSED_BIT`).
pub const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Bit 24 of a data or fragment block size word: the block is stored uncompressed
/// (`SQUASHFS_COMPRESSED_BIT_BLOCK`).
pub const DATA_UNCOMPRESSED: u32 = 1 << 24;
/// Block sizes the kernel accepts: powers of two from 4 KiB to 1 MiB (`SQUASHFS_FILE_MAX_SIZE`).
pub const MIN_BLOCK_LOG: u16 = 12;
pub const MAX_BLOCK_LOG: u16 = 20;

/// "No such table" / "no fragment" / "no xattrs" markers (`SQUASHFS_INVALID_BLK`, `_FRAG`, `_XATTR`).
pub const INVALID_TABLE: u64 = u64::MAX;
pub const INVALID_FRAGMENT: u32 = u32::MAX;
pub const INVALID_XATTR: u32 = u32::MAX;

/// Superblock flags (`SQUASHFS_NOX`, `SQUASHFS_EXPORT`): informational for the kernel, read by unsquashfs.
pub const FLAG_EXPORTABLE: u16 = 0x0080;
pub const FLAG_NO_XATTRS: u16 = 0x0200;

/// Compressor ids (`ZLIB_COMPRESSION`, `XZ_COMPRESSION`, `ZSTD_COMPRESSION`).
pub const COMPRESSION_GZIP: u16 = 1;
pub const COMPRESSION_XZ: u16 = 4;
pub const COMPRESSION_ZSTD: u16 = 6;

/// Inode types (`SQUASHFS_DIR_TYPE` ... `SQUASHFS_LSOCKET_TYPE`); the extended ("L") form of a type is the basic
/// one plus 7. Directory entries always carry the basic type.
pub const TYPE_DIR: u16 = 1;
pub const TYPE_FILE: u16 = 2;
pub const TYPE_SYMLINK: u16 = 3;
pub const TYPE_BLOCK_DEVICE: u16 = 4;
pub const TYPE_CHAR_DEVICE: u16 = 5;
pub const TYPE_FIFO: u16 = 6;
pub const EXTENDED_OFFSET: u16 = 7;

/// A directory header covers at most 256 entries (`SQUASHFS_DIR_COUNT`); names are at most 256 bytes
/// (`SQUASHFS_NAME_LEN`).
pub const DIR_MAX_ENTRIES: usize = 256;
pub const NAME_MAX: usize = 256;
/// A directory's `file_size` counts 3 bytes more than its listing (the kernel's `.` and `..`).
pub const DIR_SIZE_BIAS: u64 = 3;

/// Xattr name prefixes the format can store (`SQUASHFS_XATTR_USER` ...), with their type ids.
pub const XATTR_PREFIXES: [(&[u8], u16); 3] = [(b"user.", 0), (b"trusted.", 1), (b"security.", 2)];

/// The superblock at offset 0 (`struct squashfs_super_block`).
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SuperBlock {
    pub magic: U32,
    pub inodes: U32,
    pub mkfs_time: U32,
    pub block_size: U32,
    pub fragments: U32,
    pub compression: U16,
    pub block_log: U16,
    pub flags: U16,
    pub no_ids: U16,
    pub s_major: U16,
    pub s_minor: U16,
    pub root_inode: U64,
    pub bytes_used: U64,
    pub id_table_start: U64,
    pub xattr_id_table_start: U64,
    pub inode_table_start: U64,
    pub directory_table_start: U64,
    pub fragment_table_start: U64,
    pub lookup_table_start: U64,
}
const _: () = assert!(size_of::<SuperBlock>() == 96);

/// The header every inode starts with (`struct squashfs_base_inode`). `mode` holds permission bits only.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct BaseInode {
    pub inode_type: U16,
    pub mode: U16,
    pub uid: U16,
    pub guid: U16,
    pub mtime: U32,
    pub inode_number: U32,
}
const _: () = assert!(size_of::<BaseInode>() == 16);

/// `struct squashfs_dir_inode` after the base header.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct DirInode {
    pub start_block: U32,
    pub nlink: U32,
    pub file_size: U16,
    pub offset: U16,
    pub parent_inode: U32,
}
const _: () = assert!(size_of::<DirInode>() == 16);

/// `struct squashfs_ldir_inode` after the base header, without directory index entries (`i_count` 0).
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ExtDirInode {
    pub nlink: U32,
    pub file_size: U32,
    pub start_block: U32,
    pub parent_inode: U32,
    pub i_count: U16,
    pub offset: U16,
    pub xattr: U32,
}
const _: () = assert!(size_of::<ExtDirInode>() == 24);

/// `struct squashfs_reg_inode` after the base header; the block size list follows.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FileInode {
    pub start_block: U32,
    pub fragment: U32,
    pub offset: U32,
    pub file_size: U32,
}
const _: () = assert!(size_of::<FileInode>() == 16);

/// `struct squashfs_lreg_inode` after the base header; the block size list follows.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ExtFileInode {
    pub start_block: U64,
    pub file_size: U64,
    pub sparse: U64,
    pub nlink: U32,
    pub fragment: U32,
    pub offset: U32,
    pub xattr: U32,
}
const _: () = assert!(size_of::<ExtFileInode>() == 40);

/// `struct squashfs_symlink_inode` after the base header; the target follows, then (extended form) a u32 xattr.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SymlinkInode {
    pub nlink: U32,
    pub symlink_size: U32,
}

/// `struct squashfs_dev_inode` after the base header (the extended form appends a u32 xattr).
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct DevInode {
    pub nlink: U32,
    pub rdev: U32,
}

/// `struct squashfs_dir_header`: a run of entries whose inodes share one inode-table block.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct DirHeader {
    /// Entries in the run minus one.
    pub count: U32,
    pub start_block: U32,
    pub inode_number: U32,
}
const _: () = assert!(size_of::<DirHeader>() == 12);

/// `struct squashfs_dir_entry`; the name (`size + 1` bytes) follows.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct DirEntry {
    pub offset: U16,
    pub inode_number: I16,
    pub entry_type: U16,
    pub size: U16,
}
const _: () = assert!(size_of::<DirEntry>() == 8);

/// `struct squashfs_fragment_entry`.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FragmentEntry {
    pub start_block: U64,
    pub size: U32,
    pub unused: U32,
}
const _: () = assert!(size_of::<FragmentEntry>() == 16);

/// `struct squashfs_xattr_id`: where one inode's name/value list lives.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrId {
    pub xattr: U64,
    pub count: U32,
    pub size: U32,
}
const _: () = assert!(size_of::<XattrId>() == 16);

/// `struct squashfs_xattr_id_table`, followed by the index of the xattr id metadata blocks.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrIdTable {
    pub xattr_table_start: U64,
    pub xattr_ids: U32,
    pub unused: U32,
}
const _: () = assert!(size_of::<XattrIdTable>() == 16);

/// `struct squashfs_xattr_entry`; the name without its prefix follows, then a u32 value size and the value.
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrEntry {
    pub xattr_type: U16,
    pub size: U16,
}

/// A reference to a position in a metadata table: the block's offset from the table start, shifted left 16,
/// ORed with the byte offset inside the uncompressed block (`SQUASHFS_MKINODE`).
pub fn meta_ref(block: u64, offset: u16) -> u64 {
    (block << 16) | u64::from(offset)
}

/// Linux's `new_encode_dev`, the form the kernel decodes from a device inode's `rdev`.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}
