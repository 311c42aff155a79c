//! The ext4 on-disk structures, little-endian, as Documentation/filesystems/ext4/ and e2fsprogs'
//! lib/ext2fs/ext2_fs.h describe them; the journal superblock is big-endian (include/linux/jbd2.h). Each struct is
//! declared once and its size asserted here.

use zerocopy::byteorder::big_endian as be;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The only block size we write (`EXT4_MIN_BLOCK_SIZE << s_log_block_size`, log 2).
pub const BLOCK_SIZE: usize = 4096;
pub const BLOCK: u64 = BLOCK_SIZE as u64;
pub const LOG_BLOCK_SIZE: u32 = 2;
/// One block bitmap covers a group (`s_blocks_per_group`): 8 bits per byte of a block.
pub const BLOCKS_PER_GROUP: u64 = 8 * BLOCK;
/// At most this many inodes per group: one inode bitmap block.
pub const MAX_INODES_PER_GROUP: u32 = 8 * 4096;
/// Groups per flex group, as a log (mke2fs's default `-G 16`).
pub const LOG_GROUPS_PER_FLEX: u8 = 4;
pub const GROUPS_PER_FLEX: u64 = 1 << LOG_GROUPS_PER_FLEX;

/// `EXT4_SUPER_MAGIC`; the superblock sits 1024 bytes into the filesystem.
pub const MAGIC: u16 = 0xEF53;
pub const SUPERBLOCK_OFFSET: usize = 1024;
/// `EXT4_DYNAMIC_REV`: inode size and features are in the superblock.
pub const REV_DYNAMIC: u32 = 1;
pub const STATE_CLEAN: u16 = 1;
pub const ERRORS_CONTINUE: u16 = 1;
pub const OS_LINUX: u32 = 0;
/// The first inode not reserved for the filesystem's own use (`EXT4_GOOD_OLD_FIRST_INO`).
pub const FIRST_INO: u32 = 11;
pub const ROOT_INO: u32 = 2;
pub const JOURNAL_INO: u32 = 8;
pub const INODE_SIZE: usize = 256;
/// Bytes of the inode past the 128-byte base that the kernel reads as fields (`i_extra_isize`): up to `i_projid`.
pub const EXTRA_ISIZE: u16 = 32;
/// In-inode extended attribute space: after the large inode fields, to the end of the inode.
pub const INODE_XATTR_SPACE: usize = INODE_SIZE - 128 - EXTRA_ISIZE as usize;
/// Group descriptors with the `64bit` feature (`EXT4_MIN_DESC_SIZE_64BIT`).
pub const DESC_SIZE: usize = 64;

/// Feature flags (`EXT4_FEATURE_COMPAT_*`, `_INCOMPAT_*`, `_RO_COMPAT_*`).
pub const COMPAT_HAS_JOURNAL: u32 = 0x0004;
pub const COMPAT_EXT_ATTR: u32 = 0x0008;
pub const COMPAT_DIR_INDEX: u32 = 0x0020;
pub const INCOMPAT_FILETYPE: u32 = 0x0002;
pub const INCOMPAT_EXTENTS: u32 = 0x0040;
pub const INCOMPAT_64BIT: u32 = 0x0080;
pub const INCOMPAT_FLEX_BG: u32 = 0x0200;
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x0002;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x0008;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x0020;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;

/// `s_default_mount_opts`: `user_xattr,acl`, as mke2fs.conf sets them.
pub const DEFM_XATTR_USER_ACL: u32 = 0x0004 | 0x0008;
/// `s_flags`: directory hashes treat names as signed chars (mke2fs on x86 sets it; fixed here for determinism).
pub const FLAGS_SIGNED_HASH: u32 = 0x0001;
/// `s_def_hash_version`: half MD4, mke2fs's default.
pub const HASH_HALF_MD4: u8 = 1;
/// `s_jnl_backup_type`: `s_jnl_blocks` holds a copy of the journal inode's `i_block` (`EXT3_JNL_BACKUP_BLOCKS`).
pub const JNL_BACKUP_BLOCKS: u8 = 1;
/// `s_checksum_type`: crc32c.
pub const CHECKSUM_CRC32C: u8 = 1;

/// Group descriptor flag: the inode table is zeroed (`EXT4_BG_INODE_ZEROED`), so the kernel need not zero it.
pub const BG_INODE_ZEROED: u16 = 0x0004;

/// Inode flags (`EXT4_EXTENTS_FL`).
pub const INODE_EXTENTS_FL: u32 = 0x0008_0000;
/// The most links a non-directory may have (`EXT4_LINK_MAX`); a directory with more subdirectories counts 1
/// (`dir_nlink`).
pub const LINK_MAX: u32 = 65_000;

/// Extent tree (`struct ext4_extent_header`, `EXT4_EXT_MAGIC`); an initialized extent covers at most 32768
/// blocks (`EXT_INIT_MAX_LEN`).
pub const EXTENT_MAGIC: u16 = 0xF30A;
pub const EXTENT_MAX_LEN: u32 = 32_768;
/// Entries in the inode's `i_block` and in a tree block (which ends with a 4-byte `ext4_extent_tail`).
pub const EXTENTS_IN_INODE: usize = 4;
pub const EXTENTS_IN_BLOCK: usize = (BLOCK_SIZE - size_of::<ExtentHeader>() - 4) / size_of::<Extent>();

/// Directory entry file types (`EXT4_FT_*`).
pub const FT_REG_FILE: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHRDEV: u8 = 3;
pub const FT_BLKDEV: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SYMLINK: u8 = 7;
/// The 12-byte fake entry that ends each directory block and holds its checksum (`struct ext4_dir_entry_tail`).
pub const DIR_TAIL_SIZE: usize = 12;
pub const DIR_TAIL_FT: u8 = 0xDE;
pub const NAME_MAX: usize = 255;

/// Extended attributes (`EXT4_XATTR_MAGIC`); entry name indices (`EXT4_XATTR_INDEX_*`).
pub const XATTR_MAGIC: u32 = 0xEA02_0000;
pub const XATTR_INDEX_USER: u8 = 1;
pub const XATTR_INDEX_POSIX_ACL_ACCESS: u8 = 2;
pub const XATTR_INDEX_POSIX_ACL_DEFAULT: u8 = 3;
pub const XATTR_INDEX_TRUSTED: u8 = 4;
pub const XATTR_INDEX_SECURITY: u8 = 6;

/// jbd2 (`JBD2_MAGIC_NUMBER`, `JBD2_SUPERBLOCK_V2`).
pub const JBD2_MAGIC: u32 = 0xC03B_3998;
pub const JBD2_SUPERBLOCK_V2: u32 = 4;

/// `struct ext4_super_block`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SuperBlock {
    pub s_inodes_count: U32,
    pub s_blocks_count_lo: U32,
    pub s_r_blocks_count_lo: U32,
    pub s_free_blocks_count_lo: U32,
    pub s_free_inodes_count: U32,
    pub s_first_data_block: U32,
    pub s_log_block_size: U32,
    pub s_log_cluster_size: U32,
    pub s_blocks_per_group: U32,
    pub s_clusters_per_group: U32,
    pub s_inodes_per_group: U32,
    pub s_mtime: U32,
    pub s_wtime: U32,
    pub s_mnt_count: U16,
    pub s_max_mnt_count: U16,
    pub s_magic: U16,
    pub s_state: U16,
    pub s_errors: U16,
    pub s_minor_rev_level: U16,
    pub s_lastcheck: U32,
    pub s_checkinterval: U32,
    pub s_creator_os: U32,
    pub s_rev_level: U32,
    pub s_def_resuid: U16,
    pub s_def_resgid: U16,
    pub s_first_ino: U32,
    pub s_inode_size: U16,
    pub s_block_group_nr: U16,
    pub s_feature_compat: U32,
    pub s_feature_incompat: U32,
    pub s_feature_ro_compat: U32,
    pub s_uuid: [u8; 16],
    pub s_volume_name: [u8; 16],
    pub s_last_mounted: [u8; 64],
    pub s_algorithm_usage_bitmap: U32,
    pub s_prealloc_blocks: u8,
    pub s_prealloc_dir_blocks: u8,
    pub s_reserved_gdt_blocks: U16,
    pub s_journal_uuid: [u8; 16],
    pub s_journal_inum: U32,
    pub s_journal_dev: U32,
    pub s_last_orphan: U32,
    pub s_hash_seed: [u8; 16],
    pub s_def_hash_version: u8,
    pub s_jnl_backup_type: u8,
    pub s_desc_size: U16,
    pub s_default_mount_opts: U32,
    pub s_first_meta_bg: U32,
    pub s_mkfs_time: U32,
    pub s_jnl_blocks: [U32; 17],
    pub s_blocks_count_hi: U32,
    pub s_r_blocks_count_hi: U32,
    pub s_free_blocks_count_hi: U32,
    pub s_min_extra_isize: U16,
    pub s_want_extra_isize: U16,
    pub s_flags: U32,
    pub s_raid_stride: U16,
    pub s_mmp_interval: U16,
    pub s_mmp_block: U64,
    pub s_raid_stripe_width: U32,
    pub s_log_groups_per_flex: u8,
    pub s_checksum_type: u8,
    pub s_encryption_level: u8,
    pub s_reserved_pad: u8,
    pub s_kbytes_written: U64,
    /// Snapshot, error-tracking and mount-option fields (0x180-0x23F): never set by mkfs.
    pub s_unused_0x180: [u8; 0xC0],
    pub s_usr_quota_inum: U32,
    pub s_grp_quota_inum: U32,
    pub s_overhead_clusters: U32,
    pub s_backup_bgs: [U32; 2],
    pub s_encrypt_algos: [u8; 4],
    pub s_encrypt_pw_salt: [u8; 16],
    pub s_lpf_ino: U32,
    pub s_prj_quota_inum: U32,
    pub s_checksum_seed: U32,
    pub s_wtime_hi: u8,
    pub s_mtime_hi: u8,
    pub s_mkfs_time_hi: u8,
    pub s_lastcheck_hi: u8,
    pub s_first_error_time_hi: u8,
    pub s_last_error_time_hi: u8,
    pub s_first_error_errcode: u8,
    pub s_last_error_errcode: u8,
    pub s_encoding: U16,
    pub s_encoding_flags: U16,
    pub s_orphan_file_inum: U32,
    pub s_reserved: [U32; 94],
    pub s_checksum: U32,
}
const _: () = assert!(size_of::<SuperBlock>() == 1024);
/// `s_checksum` covers everything before it.
pub const SUPERBLOCK_CSUM_OFFSET: usize = 0x3FC;

/// `struct ext4_group_desc` with the `64bit` fields.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct GroupDesc {
    pub bg_block_bitmap_lo: U32,
    pub bg_inode_bitmap_lo: U32,
    pub bg_inode_table_lo: U32,
    pub bg_free_blocks_count_lo: U16,
    pub bg_free_inodes_count_lo: U16,
    pub bg_used_dirs_count_lo: U16,
    pub bg_flags: U16,
    pub bg_exclude_bitmap_lo: U32,
    pub bg_block_bitmap_csum_lo: U16,
    pub bg_inode_bitmap_csum_lo: U16,
    pub bg_itable_unused_lo: U16,
    pub bg_checksum: U16,
    pub bg_block_bitmap_hi: U32,
    pub bg_inode_bitmap_hi: U32,
    pub bg_inode_table_hi: U32,
    pub bg_free_blocks_count_hi: U16,
    pub bg_free_inodes_count_hi: U16,
    pub bg_used_dirs_count_hi: U16,
    pub bg_itable_unused_hi: U16,
    pub bg_exclude_bitmap_hi: U32,
    pub bg_block_bitmap_csum_hi: U16,
    pub bg_inode_bitmap_csum_hi: U16,
    pub bg_reserved: U32,
}
const _: () = assert!(size_of::<GroupDesc>() == DESC_SIZE);

/// `struct ext4_inode` with the large-inode fields, followed by the in-inode extended attribute space.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Inode {
    pub i_mode: U16,
    pub i_uid: U16,
    pub i_size_lo: U32,
    pub i_atime: U32,
    pub i_ctime: U32,
    pub i_mtime: U32,
    pub i_dtime: U32,
    pub i_gid: U16,
    pub i_links_count: U16,
    pub i_blocks_lo: U32,
    pub i_flags: U32,
    pub i_version: U32,
    pub i_block: [u8; 60],
    pub i_generation: U32,
    pub i_file_acl_lo: U32,
    pub i_size_high: U32,
    pub i_obso_faddr: U32,
    pub i_blocks_high: U16,
    pub i_file_acl_high: U16,
    pub i_uid_high: U16,
    pub i_gid_high: U16,
    pub i_checksum_lo: U16,
    pub i_reserved: U16,
    pub i_extra_isize: U16,
    pub i_checksum_hi: U16,
    pub i_ctime_extra: U32,
    pub i_mtime_extra: U32,
    pub i_atime_extra: U32,
    pub i_crtime: U32,
    pub i_crtime_extra: U32,
    pub i_version_hi: U32,
    pub i_projid: U32,
    pub xattrs: [u8; INODE_XATTR_SPACE],
}
const _: () = assert!(size_of::<Inode>() == INODE_SIZE);
const _: () = assert!(128 + EXTRA_ISIZE as usize + INODE_XATTR_SPACE == INODE_SIZE);

/// `struct ext4_extent_header`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ExtentHeader {
    pub eh_magic: U16,
    pub eh_entries: U16,
    pub eh_max: U16,
    pub eh_depth: U16,
    pub eh_generation: U32,
}
const _: () = assert!(size_of::<ExtentHeader>() == 12);

/// `struct ext4_extent`: a leaf entry.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Extent {
    pub ee_block: U32,
    pub ee_len: U16,
    pub ee_start_hi: U16,
    pub ee_start_lo: U32,
}
const _: () = assert!(size_of::<Extent>() == 12);

/// `struct ext4_extent_idx`: an index entry.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ExtentIdx {
    pub ei_block: U32,
    pub ei_leaf_lo: U32,
    pub ei_leaf_hi: U16,
    pub ei_unused: U16,
}
const _: () = assert!(size_of::<ExtentIdx>() == 12);
const _: () = assert!(size_of::<ExtentHeader>() + EXTENTS_IN_INODE * size_of::<Extent>() == 60);

/// `struct ext4_xattr_header`: the start of an extended attribute block.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrHeader {
    pub h_magic: U32,
    pub h_refcount: U32,
    pub h_blocks: U32,
    pub h_hash: U32,
    pub h_checksum: U32,
    pub h_reserved: [U32; 3],
}
const _: () = assert!(size_of::<XattrHeader>() == 32);

/// `struct ext4_xattr_entry` without its name.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrEntry {
    pub e_name_len: u8,
    pub e_name_index: u8,
    pub e_value_offs: U16,
    pub e_value_inum: U32,
    pub e_value_size: U32,
    pub e_hash: U32,
}
const _: () = assert!(size_of::<XattrEntry>() == 16);

/// `journal_superblock_t` (version 2), big-endian, up to and including the users array.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct JournalSuperBlock {
    pub h_magic: be::U32,
    pub h_blocktype: be::U32,
    pub h_sequence: be::U32,
    pub s_blocksize: be::U32,
    pub s_maxlen: be::U32,
    pub s_first: be::U32,
    pub s_sequence: be::U32,
    pub s_start: be::U32,
    pub s_errno: be::U32,
    pub s_feature_compat: be::U32,
    pub s_feature_incompat: be::U32,
    pub s_feature_ro_compat: be::U32,
    pub s_uuid: [u8; 16],
    pub s_nr_users: be::U32,
    pub s_dynsuper: be::U32,
    pub s_max_transaction: be::U32,
    pub s_max_trans_data: be::U32,
    /// Checksum type, fast-commit block count, head, padding and checksum (0x50-0xFF): unused without features.
    pub s_unused_0x50: [u8; 0xB0],
    pub s_users: [u8; 16 * 48],
}
const _: () = assert!(size_of::<JournalSuperBlock>() == 1024);
