//! Writes a [`Tree`] as a squashfs 4.0 image the Linux kernel mounts (Documentation/filesystems/squashfs.rst,
//! fs/squashfs/squashfs_fs.h).
//!
//! Everything the tree holds is kept: regular files, directories, symlinks, hard links (one inode, its link
//! count), devices, FIFOs, owners, permission bits including setuid/setgid/sticky, times clamped to
//! `SOURCE_DATE_EPOCH`, and `user.`, `trusted.` and `security.` extended attributes. Equal trees and options give
//! equal bytes whatever the thread count: no clock, no randomness, entries in name order, blocks written in the
//! order they were read.
//!
//! Layout, as mksquashfs writes it and the kernel checks it: superblock, file data and fragments, inode table,
//! directory table, fragment table, export table, id table, xattr tables, then zero padding to 4 KiB so the
//! image can sit on a loop device.

mod ahead;
mod compress;
mod data;
mod metadata;
mod ondisk;
mod tables;

use std::io::{self, Seek, SeekFrom, Write};

use clay_tree::{ContentError, Tree};
use zerocopy::IntoBytes;

pub use ahead::{AheadBlocks, Precompressor};
use compress::BlockCompressor;
use metadata::{indexed_table, MetaWriter};
use ondisk::*;

/// The compressor for data and metadata blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd at `level` (1-22); mksquashfs's default level is 15.
    Zstd { level: i32 },
    /// xz (LZMA2) at `preset` (0-9), with the dictionary the size of a block as the kernel expects.
    Xz { preset: u32 },
    /// zlib ("gzip" in squashfs terms) at `level` (1-9).
    Gzip { level: u32 },
}

/// How to write the image.
#[derive(Debug, Clone)]
pub struct Options {
    pub compression: Compression,
    /// Data block size: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// `SOURCE_DATE_EPOCH`: later modification times are clamped to it; it is also the image's creation time.
    pub clamp_mtime: Option<i64>,
    /// Compression threads, 0 for one per CPU; the output does not depend on it.
    pub threads: u32,
}

/// The default block size (mksquashfs's): 128 KiB.
pub const DEFAULT_BLOCK_SIZE: u32 = 128 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            compression: Compression::Zstd { level: 15 },
            block_size: DEFAULT_BLOCK_SIZE,
            clamp_mtime: None,
            threads: 0,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub inodes: u64,
    /// Bytes of file content (each hard-linked file once).
    pub content_bytes: u64,
    pub fragments: u64,
    /// The filesystem's size (`bytes_used`), without the padding.
    pub bytes_used: u64,
    /// Everything written, padding included.
    pub total_bytes: u64,
    /// Lines worth showing the user (extended attributes squashfs cannot store, ...).
    pub notes: Vec<String>,
}

/// Why the image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SquashfsError {
    #[error("the block size {0} is not a power of two from 4 KiB to 1 MiB")]
    BadBlockSize(u32),
    #[error("cannot read `{path}`: {source}")]
    Read { path: String, source: io::Error },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("the name `{path}` is longer than the 256 bytes squashfs allows")]
    NameTooLong { path: String },
    #[error("the directory `{path}` has more entries than a squashfs directory can list")]
    DirectoryTooLarge { path: String },
    #[error(
        "the device `{path}` has number {major}:{minor}, beyond the 12-bit major and 20-bit minor squashfs stores"
    )]
    DeviceNumber { path: String, major: u32, minor: u32 },
    #[error("the extended attribute `{name}` of `{path}` is too large for squashfs")]
    XattrTooLarge { path: String, name: String },
    #[error("the tree uses {0} distinct owners and groups; squashfs holds at most 65536")]
    TooManyIds(usize),
    #[error("the {0} is too large for squashfs")]
    TooLarge(&'static str),
    #[error("cannot compress the image: {0}")]
    Compress(io::Error),
    #[error("cannot write the squashfs image: {0}")]
    Write(io::Error),
}

/// Writes `tree` as a squashfs image to `out`, starting at its current position; `out` is left just past the
/// image.
pub fn write_squashfs(tree: &Tree, opts: &Options, out: &mut (impl Write + Seek)) -> Result<Stats, SquashfsError> {
    write_squashfs_with(tree, opts, None, out)
}

/// [`write_squashfs`], taking file blocks from `ahead` (a [`Precompressor`]'s work) where it has them. The image
/// is the same bytes either way; blocks packed for other options are ignored.
pub fn write_squashfs_with(
    tree: &Tree,
    opts: &Options,
    ahead: Option<&mut AheadBlocks>,
    out: &mut (impl Write + Seek),
) -> Result<Stats, SquashfsError> {
    let block_log = block_log(opts.block_size)?;
    let base = out.stream_position().map_err(SquashfsError::Write)?;
    // The superblock is written last, once the table positions are known.
    let super_len = size_of::<SuperBlock>() as u64;
    out.write_all(&[0u8; size_of::<SuperBlock>()]).map_err(SquashfsError::Write)?;
    let entries = tree.walk();
    let ahead = ahead.filter(|a| a.fits(opts));
    let data = data::write_data(tree, &entries, opts, block_log, ahead, out, super_len)?;
    let mut comp = BlockCompressor::new(opts.compression, block_log).map_err(SquashfsError::Compress)?;
    let t = tables::build(tree, &entries, &data, opts, block_log, &mut comp)?;

    let mut w = Placed { out, pos: data.end };
    let inode_table_start = w.put(&t.inode_table)?;
    let directory_table_start = w.put(&t.dir_table)?;
    let fragment_table_start = if data.fragments.is_empty() {
        INVALID_TABLE
    } else {
        let records: Vec<u8> = data
            .fragments
            .iter()
            .flat_map(|(start, size)| {
                FragmentEntry { start_block: (*start).into(), size: (*size).into(), unused: 0.into() }
                    .as_bytes()
                    .to_vec()
            })
            .collect();
        w.put_indexed(&records, &mut comp)?
    };
    let export: Vec<u8> = t.export.iter().flat_map(|r| r.to_le_bytes()).collect();
    let lookup_table_start = w.put_indexed(&export, &mut comp)?;
    let ids: Vec<u8> = t.ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    let id_table_start = w.put_indexed(&ids, &mut comp)?;
    let xattr_id_table_start = if t.xattr_ids.is_empty() {
        INVALID_TABLE
    } else {
        let xattr_table_start = w.put(&t.xattr_kv)?;
        let records: Vec<u8> = t.xattr_ids.iter().flat_map(|x| x.as_bytes().to_vec()).collect();
        // The kernel wants the id table header immediately followed by the block index, and that to end the
        // filesystem (squashfs_read_xattr_id_table).
        let mut meta = MetaWriter::new();
        meta.write(&records, &mut comp).map_err(SquashfsError::Compress)?;
        let (blocks, starts) = meta.finish(&mut comp).map_err(SquashfsError::Compress)?;
        let blocks_at = w.put(&blocks)?;
        let header = XattrIdTable {
            xattr_table_start: xattr_table_start.into(),
            xattr_ids: u32::try_from(t.xattr_ids.len()).map_err(|_| SquashfsError::TooLarge("xattr table"))?.into(),
            unused: 0.into(),
        };
        let at = w.put(header.as_bytes())?;
        let index: Vec<u8> = starts.iter().flat_map(|s| (blocks_at + s).to_le_bytes()).collect();
        w.put(&index)?;
        at
    };
    let bytes_used = w.pos;
    let padded = bytes_used.next_multiple_of(PAD_TO);
    let pad = usize::try_from(padded - bytes_used).unwrap_or(0);
    w.put(&vec![0u8; pad])?;

    let inode_count = u32::try_from(t.export.len()).map_err(|_| SquashfsError::TooLarge("inode table"))?;
    let mkfs_time = opts.clamp_mtime.unwrap_or(0).clamp(0, i64::from(u32::MAX));
    let mut flags = FLAG_EXPORTABLE;
    if t.xattr_ids.is_empty() {
        flags |= FLAG_NO_XATTRS;
    }
    let sb = SuperBlock {
        magic: MAGIC.into(),
        inodes: inode_count.into(),
        mkfs_time: u32::try_from(mkfs_time).unwrap_or(0).into(),
        block_size: opts.block_size.into(),
        fragments: u32::try_from(data.fragments.len()).map_err(|_| SquashfsError::TooLarge("fragment table"))?.into(),
        compression: opts.compression.id().into(),
        block_log: block_log.into(),
        flags: flags.into(),
        no_ids: u16::try_from(t.ids.len()).map_err(|_| SquashfsError::TooManyIds(t.ids.len()))?.into(),
        s_major: VERSION_MAJOR.into(),
        s_minor: VERSION_MINOR.into(),
        root_inode: t.root_ref.into(),
        bytes_used: bytes_used.into(),
        id_table_start: id_table_start.into(),
        xattr_id_table_start: xattr_id_table_start.into(),
        inode_table_start: inode_table_start.into(),
        directory_table_start: directory_table_start.into(),
        fragment_table_start: fragment_table_start.into(),
        lookup_table_start: lookup_table_start.into(),
    };
    let out = w.out;
    out.seek(SeekFrom::Start(base)).map_err(SquashfsError::Write)?;
    out.write_all(sb.as_bytes()).map_err(SquashfsError::Write)?;
    out.seek(SeekFrom::Start(base + padded)).map_err(SquashfsError::Write)?;
    Ok(Stats {
        inodes: u64::from(inode_count),
        content_bytes: data.content_bytes,
        fragments: data.fragments.len() as u64,
        bytes_used,
        total_bytes: padded,
        notes: t.notes,
    })
}

/// mksquashfs pads images to 4 KiB: a loop device or block device reads whole blocks.
const PAD_TO: u64 = 4096;

fn block_log(block_size: u32) -> Result<u16, SquashfsError> {
    let log = u16::try_from(block_size.trailing_zeros()).unwrap_or(0);
    if !block_size.is_power_of_two() || !(MIN_BLOCK_LOG..=MAX_BLOCK_LOG).contains(&log) {
        return Err(SquashfsError::BadBlockSize(block_size));
    }
    Ok(log)
}

/// The output with the image-relative position of the next byte.
struct Placed<'a, W> {
    out: &'a mut W,
    pos: u64,
}

impl<W: Write> Placed<'_, W> {
    /// Writes `bytes`, returning where they start.
    fn put(&mut self, bytes: &[u8]) -> Result<u64, SquashfsError> {
        let at = self.pos;
        self.out.write_all(bytes).map_err(SquashfsError::Write)?;
        self.pos += bytes.len() as u64;
        Ok(at)
    }

    /// Writes a table of records and its block index, returning where the index starts.
    fn put_indexed(&mut self, records: &[u8], comp: &mut BlockCompressor) -> Result<u64, SquashfsError> {
        let (bytes, index_at) = indexed_table(records, self.pos, comp).map_err(SquashfsError::Compress)?;
        let at = self.put(&bytes)?;
        Ok(at + index_at as u64)
    }
}

#[cfg(test)]
mod tests;
