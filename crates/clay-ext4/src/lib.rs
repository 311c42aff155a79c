//! Writes a [`Tree`] as an ext4 filesystem that Linux mounts read-write (Documentation/filesystems/ext4/,
//! e2fsprogs' lib/ext2fs/ext2_fs.h), for a persistent data partition the booted system keeps writing to.
//!
//! Everything the tree holds is kept: regular files (extents; all-zero blocks become holes, as `mke2fs -d` makes
//! them), directories, fast and slow symlinks, hard links (one inode, its link count), character and block
//! devices, FIFOs, owners, permission bits including setuid/setgid/sticky, modification times clamped to
//! `SOURCE_DATE_EPOCH`, and `user.`, `trusted.`, `security.` and POSIX ACL extended attributes (in the inode, the
//! rest in one attribute block). The root directory takes the tree root's metadata; lost+found is added as
//! mke2fs makes it unless the tree has one. Equal trees and options give equal bytes: no clock, no randomness,
//! inodes numbered and blocks allocated in path order.
//!
//! Features are mke2fs's ext4 defaults (4 KiB blocks, 256-byte inodes): `has_journal`, `ext_attr`, `dir_index`,
//! `filetype`, `extent`, `64bit`, `flex_bg`, `sparse_super`, `large_file`, `huge_file`, `dir_nlink`,
//! `extra_isize` and `metadata_csum` (crc32c), with mke2fs's inode ratio, journal size and 5 % root reserve. Left
//! out: `resize_inode`, whose reserved descriptor blocks only serve growing the filesystem online (resize2fs can
//! still grow it offline), and hashed trees for the directories we write: `dir_index` is set, so the kernel
//! indexes the directories it grows, but ours are linear, which the kernel and e2fsck accept at any size (lookups
//! in a directory of thousands of entries scan it). Extended attribute values in their own inodes (`ea_inode`)
//! and inline data are not written either: attributes must fit the inode and one block.
//!
//! The output stays sparse: the region written to must read as zeros (a fresh sparse file), blocks that are all
//! zeros are never written, and every group is marked `INODE_ZEROED` because its unused inode table already is.
//! Only used inode table blocks, bitmaps, directories, file data and the superblock and descriptor copies are
//! written.

mod csum;
mod dir;
mod extent;
mod layout;
mod ondisk;
mod plan;
mod write;
mod xattr;

use std::io::{self, Seek, Write};

use clay_tree::{ContentError, Tree};

use layout::{Geometry, LayoutError, MIN_BLOCKS, MIN_JOURNAL_FS_BLOCKS};
use ondisk::BLOCK;
use plan::Plan;

/// How to make the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The filesystem's size in bytes, rounded down to whole 4 KiB blocks.
    pub size: u64,
    /// The volume label, at most 16 bytes.
    pub label: String,
    /// The filesystem UUID; the caller derives it deterministically.
    pub uuid: [u8; 16],
    /// The seed of the directory name hash the kernel uses for indexed directories.
    pub hash_seed: [u8; 16],
    /// `SOURCE_DATE_EPOCH`: the creation and last-write time; later modification times are clamped to it.
    pub timestamp: i64,
    /// Whether to add a journal (sized as mke2fs sizes it); needs a filesystem of at least 8 MiB.
    pub journal: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { size: 0, label: String::new(), uuid: [0; 16], hash_seed: [0; 16], timestamp: 0, journal: true }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The filesystem's size in bytes: `Options::size` rounded down to whole blocks (and without a last group
    /// too small to hold its own metadata, as mke2fs drops it).
    pub size: u64,
    /// Inodes in use, the filesystem's reserved ones included.
    pub inodes: u64,
    /// Blocks in use, metadata and journal included.
    pub used_blocks: u64,
    /// Bytes of file content (each hard-linked file once).
    pub content_bytes: u64,
    /// The journal's size in bytes (0 without one).
    pub journal_bytes: u64,
}

/// Why the filesystem could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error("the volume label `{0}` is longer than the 16 bytes ext4 stores")]
    LabelTooLong(String),
    #[error("a filesystem of {given} bytes cannot hold this tree, which needs {needed} bytes")]
    TooSmall { needed: u64, given: u64 },
    #[error("a filesystem of {0} bytes has more inodes or block groups than ext4 can count")]
    TooLarge(u64),
    #[error("the name `{path}` is longer than the 255 bytes ext4 allows")]
    NameTooLong { path: String },
    #[error("the name `{path}` cannot be stored in a directory")]
    BadName { path: String },
    #[error("the directory `{path}` appears under a second name; directories cannot be hard-linked")]
    LinkedDirectory { path: String },
    #[error("`{path}` has {links} hard links; ext4 allows at most 65000")]
    TooManyLinks { path: String, links: u32 },
    #[error("the symlink `{path}` has a target of {len} bytes; ext4 stores 1 to 4095 bytes without NUL")]
    BadSymlink { path: String, len: usize },
    #[error("the device `{path}` has number {major}:{minor}, beyond the 12-bit major and 20-bit minor ext4 stores")]
    DeviceNumber { path: String, major: u32, minor: u32 },
    #[error("the file `{path}` is {size} bytes, more than the 16 TiB an ext4 file holds")]
    FileTooLarge { path: String, size: u64 },
    #[error("the extended attribute `{name}` of `{path}` is in a namespace ext4 does not store")]
    XattrNamespace { path: String, name: String },
    #[error("the extended attributes of `{path}` do not fit in the inode and one 4 KiB block")]
    XattrTooLarge { path: String },
    #[error("the POSIX ACL `{name}` of `{path}` is malformed")]
    BadAcl { path: String, name: String },
    #[error("cannot read `{path}`: {source}")]
    Read { path: String, source: io::Error },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("cannot write the ext4 filesystem: {0}")]
    Write(io::Error),
}

/// Writes `tree` as an ext4 filesystem of `opts.size` bytes at `out`'s current position, which must start a
/// region of that many zero bytes (blocks left free are not written). `out` is left at the region's end.
///
/// Fails with [`Ext4Error::TooSmall`], naming [`min_size`], when the tree does not fit.
pub fn write_ext4(tree: &Tree, opts: &Options, out: &mut (impl Write + Seek)) -> Result<Stats, Ext4Error> {
    if opts.label.len() > 16 {
        return Err(Ext4Error::LabelTooLong(opts.label.clone()));
    }
    if !tree.inode(tree.root()).kind.is_dir() {
        return Err(Ext4Error::BadName { path: "/".to_owned() });
    }
    let plan = Plan::new(tree);
    if let Some(path) = &plan.linked_dir {
        return Err(Ext4Error::LinkedDirectory { path: path.clone() });
    }
    let too_small = || Ext4Error::TooSmall { needed: min_size(tree, opts), given: opts.size };
    let geo = match Geometry::new(opts.size / BLOCK, u64::from(plan.last_ino), opts.journal) {
        Ok(geo) => geo,
        Err(LayoutError::TooSmall) => return Err(too_small()),
        Err(LayoutError::TooLarge) => return Err(Ext4Error::TooLarge(opts.size)),
    };
    write::write(tree, &plan, &geo, opts, out).map_err(|e| match e {
        Ext4Error::TooSmall { .. } => too_small(),
        e => e,
    })
}

/// A filesystem size (bytes, a whole number of blocks) that always holds `tree` with `opts`: enough blocks for
/// all of the content written out (holes only make room), the metadata and the journal, and enough inodes.
pub fn min_size(tree: &Tree, opts: &Options) -> u64 {
    let plan = Plan::new(tree);
    let need = plan.blocks_bound(tree);
    let inodes = u64::from(plan.last_ino);
    let floor = if opts.journal { MIN_JOURNAL_FS_BLOCKS } else { MIN_BLOCKS };
    let mut blocks = (need + MIN_BLOCKS).max(floor);
    for _ in 0..1000 {
        match Geometry::new(blocks, inodes, opts.journal) {
            Ok(geo) => {
                // The journal may need an extent tree block or two when it crosses reserved blocks.
                let have = geo.data_blocks().saturating_sub(geo.journal_blocks + 2);
                if have >= need {
                    return blocks * BLOCK;
                }
                blocks += (need - have).max(16);
            }
            Err(LayoutError::TooSmall) => blocks += blocks / 8 + MIN_BLOCKS,
            Err(LayoutError::TooLarge) => break,
        }
    }
    blocks.saturating_mul(BLOCK)
}

#[cfg(test)]
mod tests;
