//! Writes a [`Tree`] as an EROFS image the Linux kernel (6.1 and later) mounts (fs/erofs/erofs_fs.h,
//! Documentation/filesystems/erofs.rst), laid out as `mkfs.erofs` without `-z` lays it out.
//!
//! Everything the tree holds is kept: regular files, directories, symlinks, hard links (one inode, its link
//! count), devices, FIFOs, owners, permission bits including setuid/setgid/sticky, times clamped to
//! `SOURCE_DATE_EPOCH`, and `user.`, `trusted.`, `security.` (and POSIX ACL) extended attributes, stored inline
//! after their inode. Inodes are compact (32 bytes) when owner, link count, size and time fit one, extended
//! (64 bytes) otherwise. Data is uncompressed: full blocks in the data area (EROFS_INODE_FLAT_PLAIN), the last
//! partial block packed after its inode when it fits (EROFS_INODE_FLAT_INLINE). Compression (lz4, lzma), shared
//! xattrs, chunk-based files and holes are not written: a sparse file takes its full size.
//!
//! Equal trees and options give equal bytes: no clock, no randomness, inodes in path order, directory entries
//! sorted bytewise. File content is streamed, one file at a time.

mod dir;
mod layout;
mod ondisk;
mod xattr;

use std::io::{self, Read, Seek, SeekFrom, Write};

use clay_tree::{ContentError, Kind, Tree};
use zerocopy::IntoBytes;

use dir::DirEntry;
use layout::{Layout, Node};
use ondisk::*;

/// How to write the image.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `SOURCE_DATE_EPOCH`: later modification times are clamped to it; it is also the image's build time, which
    /// compact inodes take as their time (0 when unset).
    pub clamp_mtime: Option<i64>,
    /// The filesystem UUID.
    pub uuid: [u8; 16],
    /// The volume label, at most 16 bytes.
    pub volume_name: String,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub inodes: u64,
    /// Bytes of file content (each hard-linked file once).
    pub content_bytes: u64,
    /// Everything written: the image is a whole number of 4 KiB blocks.
    pub total_bytes: u64,
    /// Lines worth showing the user (extended attributes EROFS cannot store, ...).
    pub notes: Vec<String>,
}

/// Why the image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ErofsError {
    #[error("the volume name `{0}` is longer than the 16 bytes EROFS stores")]
    VolumeNameTooLong(String),
    #[error("cannot read `{path}`: {source}")]
    Read { path: String, source: io::Error },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("the name `{path}` is longer than the 255 bytes EROFS allows")]
    NameTooLong { path: String },
    #[error("the device `{path}` has number {major}:{minor}, beyond the 12-bit major and 20-bit minor EROFS stores")]
    DeviceNumber { path: String, major: u32, minor: u32 },
    #[error("the extended attribute `{name}` of `{path}` is too large for EROFS")]
    XattrTooLarge { path: String, name: String },
    #[error("the extended attributes of `{path}` are too large together for EROFS")]
    XattrsTooLarge { path: String },
    #[error("the {0} is too large for EROFS")]
    TooLarge(&'static str),
    #[error("cannot write the EROFS image: {0}")]
    Write(io::Error),
}

/// Writes `tree` as an EROFS image to `out`, starting at its current position; `out` is left just past the image.
pub fn write_erofs(tree: &Tree, opts: &Options, out: &mut (impl Write + Seek)) -> Result<Stats, ErofsError> {
    let mut volume_name = [0u8; 16];
    volume_name
        .get_mut(..opts.volume_name.len())
        .ok_or_else(|| ErofsError::VolumeNameTooLong(opts.volume_name.clone()))?
        .copy_from_slice(opts.volume_name.as_bytes());
    let base = out.stream_position().map_err(ErofsError::Write)?;
    let entries = tree.walk();
    let layout = layout::plan(tree, &entries, opts)?;
    let mut img = Image { out, base, at: 0, meta: Vec::new(), meta_start: 0, block0: None };
    img.seek(0)?;
    let mut content_bytes = 0;
    for node in &layout.nodes {
        content_bytes += write_node(tree, &layout, node, &mut img)?;
    }
    let block0 = img.finish_meta(layout.data_start * BLOCK)?;

    let root_nid = layout.nid_of.get(&tree.root()).copied().unwrap_or(0);
    let mut sb = SuperBlock {
        magic: MAGIC.into(),
        checksum: 0.into(),
        feature_compat: (FEATURE_COMPAT_SB_CHKSUM | FEATURE_COMPAT_MTIME).into(),
        blkszbits: BLOCK_BITS,
        sb_extslots: 0,
        root_nid: u16::try_from(root_nid).map_err(|_| ErofsError::TooLarge("root directory's record"))?.into(),
        inos: (layout.nodes.len() as u64).into(),
        build_time: time_bits(layout.build_time).into(),
        build_time_nsec: 0.into(),
        blocks: u32::try_from(layout.blocks).map_err(|_| ErofsError::TooLarge("image"))?.into(),
        meta_blkaddr: 0.into(),
        xattr_blkaddr: 0.into(),
        uuid: opts.uuid,
        volume_name,
        feature_incompat: 0.into(),
        available_compr_algs: 0.into(),
        extra_devices: 0.into(),
        devt_slotoff: 0.into(),
        reserved: [0; 6],
        packed_nid: 0.into(),
        reserved2: [0; 24],
    };
    // The checksum covers the rest of block 0 from the superblock on, with the field itself zero; the kernel's
    // crc32c(~0, ...) has no final inversion (erofs_superblock_csum_verify).
    let after_sb = usize::try_from(SUPER_OFFSET).unwrap_or(0) + size_of::<SuperBlock>();
    let crc = crc32c::crc32c_append(crc32c::crc32c(sb.as_bytes()), block0.get(after_sb..).unwrap_or_default());
    sb.checksum = (!crc).into();
    img.write_at(SUPER_OFFSET, sb.as_bytes())?;
    let total_bytes = layout.blocks * BLOCK;
    img.seek(total_bytes)?;
    Ok(Stats { inodes: layout.nodes.len() as u64, content_bytes, total_bytes, notes: layout.notes })
}

/// Writes one inode: its data blocks to the data area, its record to the metadata area. Returns the file content
/// bytes written.
fn write_node<W: Write + Seek>(
    tree: &Tree,
    layout: &Layout,
    node: &Node,
    img: &mut Image<'_, W>,
) -> Result<u64, ErofsError> {
    let inode = tree.inode(node.id);
    let (tail, content) = match &inode.kind {
        Kind::File(c) => {
            let mut reader = c.reader(&node.path)?;
            (img.write_data(node, &mut reader)?, node.size)
        }
        Kind::Directory(_) => {
            let bytes = directory(tree, layout, node);
            (img.write_data(node, &mut bytes.as_slice())?, 0)
        }
        Kind::Symlink(target) => (img.write_data(node, &mut target.as_slice())?, 0),
        Kind::CharDevice { .. } | Kind::BlockDevice { .. } | Kind::Fifo => (Vec::new(), 0),
    };
    let layout_bits = if node.inline { LAYOUT_FLAT_INLINE } else { LAYOUT_FLAT_PLAIN } << LAYOUT_SHIFT;
    // Both fit: the type bits and 0o7777 make 16 bits.
    let mode = u16::try_from(inode.st_mode()).unwrap_or(u16::MAX);
    let mut record = if node.extended {
        InodeExtended {
            format: (FORMAT_EXTENDED | layout_bits).into(),
            xattr_icount: node.xattr_icount.into(),
            mode: mode.into(),
            reserved: 0.into(),
            size: node.size.into(),
            u: node.u.into(),
            ino: node.ino.into(),
            uid: inode.meta.uid.into(),
            gid: inode.meta.gid.into(),
            mtime: time_bits(node.mtime).into(),
            mtime_nsec: 0.into(),
            nlink: node.nlink.into(),
            reserved2: [0; 16],
        }
        .as_bytes()
        .to_vec()
    } else {
        // The layout chose a compact inode only when all of these fit.
        let narrow = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        InodeCompact {
            format: layout_bits.into(),
            xattr_icount: node.xattr_icount.into(),
            mode: mode.into(),
            nlink: narrow(node.nlink).into(),
            size: u32::try_from(node.size).unwrap_or(u32::MAX).into(),
            reserved: 0.into(),
            u: node.u.into(),
            ino: node.ino.into(),
            uid: narrow(inode.meta.uid).into(),
            gid: narrow(inode.meta.gid).into(),
            reserved2: 0.into(),
        }
        .as_bytes()
        .to_vec()
    };
    record.extend_from_slice(&node.xattrs);
    record.extend_from_slice(&tail);
    img.put_meta(node.nid * SLOT, &record)?;
    Ok(content)
}

/// A directory's data: its children, `.` and `..`, sorted bytewise.
fn directory(tree: &Tree, layout: &Layout, node: &Node) -> Vec<u8> {
    let nid = |id| layout.nid_of.get(&id).copied().unwrap_or(0);
    let parent = layout.parent.get(&node.id).copied().unwrap_or(node.id);
    let mut entries = vec![
        DirEntry { name: b".", nid: node.nid, file_type: FT_DIR },
        DirEntry { name: b"..", nid: nid(parent), file_type: FT_DIR },
    ];
    for (name, child) in tree.children(node.id) {
        let file_type = match tree.inode(child).kind {
            Kind::Directory(_) => FT_DIR,
            Kind::File(_) => FT_REG_FILE,
            Kind::Symlink(_) => FT_SYMLINK,
            Kind::CharDevice { .. } => FT_CHRDEV,
            Kind::BlockDevice { .. } => FT_BLKDEV,
            Kind::Fifo => FT_FIFO,
        };
        entries.push(DirEntry { name, nid: nid(child), file_type });
    }
    entries.sort_unstable_by(|a, b| a.name.cmp(b.name));
    dir::encode(&entries)
}

/// A time as stored on disk: two's complement, which the kernel reads back as a signed `time64_t`.
fn time_bits(t: i64) -> u64 {
    t as u64
}

/// The metadata area is buffered and flushed in large pieces; data blocks go straight out.
const META_FLUSH: usize = 1 << 20;
/// Files are copied through a buffer this large.
const COPY_BUFFER: usize = 256 * 1024;

/// The output, addressed by image offset. Data and metadata are each written in increasing order, so the writer
/// only seeks when it switches between the two areas.
struct Image<'a, W> {
    out: &'a mut W,
    base: u64,
    /// The image offset `out` is at.
    at: u64,
    /// Metadata not yet written, starting at image offset `meta_start`.
    meta: Vec<u8>,
    meta_start: u64,
    /// Block 0 as written, kept for the superblock checksum.
    block0: Option<Vec<u8>>,
}

impl<W: Write + Seek> Image<'_, W> {
    fn seek(&mut self, pos: u64) -> Result<(), ErofsError> {
        self.out.seek(SeekFrom::Start(self.base + pos)).map_err(ErofsError::Write)?;
        self.at = pos;
        Ok(())
    }

    fn write_at(&mut self, pos: u64, bytes: &[u8]) -> Result<(), ErofsError> {
        if pos != self.at {
            self.seek(pos)?;
        }
        self.out.write_all(bytes).map_err(ErofsError::Write)?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Adds a record at image offset `pos`, at or after the end of the metadata so far.
    fn put_meta(&mut self, pos: u64, bytes: &[u8]) -> Result<(), ErofsError> {
        let rel = usize::try_from(pos - self.meta_start).map_err(|_| ErofsError::TooLarge("metadata area"))?;
        self.meta.resize(rel, 0);
        self.meta.extend_from_slice(bytes);
        if self.meta.len() >= META_FLUSH {
            self.flush_meta()?;
        }
        Ok(())
    }

    fn flush_meta(&mut self) -> Result<(), ErofsError> {
        if self.meta_start == 0 {
            let mut block0 = self.meta.get(..BLOCK_BYTES).unwrap_or(&self.meta).to_vec();
            block0.resize(BLOCK_BYTES, 0);
            self.block0 = Some(block0);
        }
        let meta = std::mem::take(&mut self.meta);
        self.write_at(self.meta_start, &meta)?;
        self.meta_start += meta.len() as u64;
        Ok(())
    }

    /// Pads the metadata area with zeros up to `end` and writes it out, returning block 0.
    fn finish_meta(&mut self, end: u64) -> Result<Vec<u8>, ErofsError> {
        let rel = usize::try_from(end - self.meta_start).map_err(|_| ErofsError::TooLarge("metadata area"))?;
        self.meta.resize(rel, 0);
        self.flush_meta()?;
        Ok(self.block0.take().unwrap_or_default())
    }

    /// Streams a node's data from `src`: its block part to the data area (the last block padded with zeros),
    /// returning the tail to inline.
    fn write_data(&mut self, node: &Node, src: &mut dyn Read) -> Result<Vec<u8>, ErofsError> {
        let read_err = |source| ErofsError::Read { path: node.path.clone(), source };
        let mut pos = u64::from(node.u) * BLOCK;
        let mut left = node.block_bytes;
        let mut buf = vec![0u8; usize::try_from(left.min(COPY_BUFFER as u64)).unwrap_or(COPY_BUFFER)];
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            src.read_exact(&mut buf[..n]).map_err(read_err)?;
            self.write_at(pos, &buf[..n])?;
            pos += n as u64;
            left -= n as u64;
        }
        let pad = usize::try_from(pos.next_multiple_of(BLOCK) - pos).unwrap_or(0);
        if node.block_bytes > 0 && pad > 0 {
            self.write_at(pos, &vec![0u8; pad])?;
        }
        let mut tail = vec![0u8; usize::try_from(node.size - node.block_bytes).unwrap_or(0)];
        src.read_exact(&mut tail).map_err(read_err)?;
        Ok(tail)
    }
}

#[cfg(test)]
mod tests;
