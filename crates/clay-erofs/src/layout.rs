//! Where everything goes: the metadata area (inodes, their xattrs and inline tails) starts right after the
//! superblock in block 0, as mkfs.erofs places it (root nid 36); the data blocks of files, directories and long
//! symlinks follow it, in the same order as their inodes.
//!
//! An inode's record (inode, xattrs, and the tail of its data when inlined) never crosses a block boundary unless
//! it is larger than a block: the kernel refuses inline data that crosses one (`erofs_map_blocks_flatmode`).

use std::collections::BTreeMap;

use clay_tree::{lossy, Entry, InodeId, Kind, Tree};

use crate::dir;
use crate::ondisk::*;
use crate::xattr;
use crate::{ErofsError, Options};

/// One inode of the image.
#[derive(Debug)]
pub struct Node {
    pub id: InodeId,
    /// Its first path, for messages.
    pub path: String,
    /// Its number: offset from the metadata start in 32-byte slots.
    pub nid: u64,
    pub ino: u32,
    pub extended: bool,
    pub xattrs: Vec<u8>,
    pub xattr_icount: u16,
    pub size: u64,
    pub nlink: u32,
    pub mtime: i64,
    /// Whether the last partial block of data follows the inode and xattrs (FLAT_INLINE).
    pub inline: bool,
    /// The first data block, or the device number for devices (`i_u`).
    pub u: u32,
    /// The number of bytes kept in data blocks (the rest is inline).
    pub block_bytes: u64,
}

impl Node {
    pub fn inode_size(&self) -> u64 {
        if self.extended {
            size_of::<InodeExtended>() as u64
        } else {
            size_of::<InodeCompact>() as u64
        }
    }
}

#[derive(Debug)]
pub struct Layout {
    /// In image order, the root first.
    pub nodes: Vec<Node>,
    pub nid_of: BTreeMap<InodeId, u64>,
    /// Each directory's parent (the root is its own).
    pub parent: BTreeMap<InodeId, InodeId>,
    /// The first block after the metadata area.
    pub data_start: u64,
    /// Blocks in the image.
    pub blocks: u64,
    pub build_time: i64,
    pub notes: Vec<String>,
}

pub fn plan(tree: &Tree, entries: &[Entry], opts: &Options) -> Result<Layout, ErofsError> {
    let build_time = opts.clamp_mtime.unwrap_or(0);
    let links = tree.link_counts(entries);
    let mut notes = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut nid_of = BTreeMap::new();
    let mut parent = BTreeMap::new();
    parent.insert(tree.root(), tree.root());
    let mut pos = SUPER_OFFSET + size_of::<SuperBlock>() as u64;
    for e in entries {
        if nid_of.contains_key(&e.inode) {
            continue;
        }
        let path = if e.path.is_empty() { "/".to_owned() } else { lossy(&e.path) };
        let inode = tree.inode(e.inode);
        let size = match &inode.kind {
            Kind::Directory(_) => {
                let mut names: Vec<&[u8]> = vec![b".", b".."];
                for (name, child) in tree.children(e.inode) {
                    if name.len() > NAME_MAX {
                        return Err(ErofsError::NameTooLong { path: child_path(&e.path, name) });
                    }
                    if tree.inode(child).kind.is_dir() {
                        parent.insert(child, e.inode);
                    }
                    names.push(name);
                }
                // Sorted as `directory()` sorts them: this size must match the data written later.
                names.sort_unstable();
                let lens: Vec<usize> = names.iter().map(|n| n.len()).collect();
                dir::split(&lens).1
            }
            Kind::File(c) => c.len(),
            Kind::Symlink(target) => target.len() as u64,
            Kind::CharDevice { .. } | Kind::BlockDevice { .. } | Kind::Fifo => 0,
        };
        let mtime = opts.clamp_mtime.map_or(inode.meta.mtime, |c| inode.meta.mtime.min(c));
        let nlink = links.get(&e.inode).copied().unwrap_or(1);
        let extended = inode.meta.uid > u32::from(u16::MAX)
            || inode.meta.gid > u32::from(u16::MAX)
            || nlink > u32::from(u16::MAX)
            || size > u64::from(u32::MAX)
            || mtime != build_time;
        let (xattrs, xattr_icount) = xattr::ibody(&inode.meta, &path, &mut notes)?;
        let u = match inode.kind {
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                encode_dev(major, minor).ok_or(ErofsError::DeviceNumber { path: path.clone(), major, minor })?
            }
            _ => 0,
        };
        let ino = u32::try_from(nodes.len()).map_err(|_| ErofsError::TooLarge("number of inodes"))?;
        let mut node = Node {
            id: e.inode,
            path,
            nid: 0,
            ino,
            extended,
            xattrs,
            xattr_icount,
            size,
            nlink,
            mtime,
            inline: false,
            u,
            block_bytes: 0,
        };
        let head = node.inode_size() + node.xattrs.len() as u64;
        let has_data = matches!(inode.kind, Kind::Directory(_) | Kind::File(_) | Kind::Symlink(_));
        let tail = if has_data { size % BLOCK } else { 0 };
        let (start, inline) = place(pos, head, tail);
        node.nid = start / SLOT;
        node.inline = inline;
        node.block_bytes = if inline { size - tail } else { size };
        pos = (start + head + if inline { tail } else { 0 }).next_multiple_of(SLOT);
        nid_of.insert(e.inode, node.nid);
        nodes.push(node);
    }
    let data_start = pos.div_ceil(BLOCK);
    let mut next = data_start;
    for node in &mut nodes {
        let kind = &tree.inode(node.id).kind;
        if !matches!(kind, Kind::Directory(_) | Kind::File(_) | Kind::Symlink(_)) {
            continue;
        }
        let blocks = node.block_bytes.div_ceil(BLOCK);
        node.u = if blocks > 0 {
            u32::try_from(next).map_err(|_| ErofsError::TooLarge("image"))?
        } else if node.inline {
            NULL_ADDR
        } else {
            0
        };
        next += blocks;
    }
    // raw_blkaddr and the superblock's block count are 32-bit.
    u32::try_from(next).map_err(|_| ErofsError::TooLarge("image"))?;
    Ok(Layout { nodes, nid_of, parent, data_start, blocks: next, build_time, notes })
}

/// Where a record of `head` bytes (inode and xattrs) and an optional inline `tail` starts if the metadata so far
/// ends at `pos`, and whether the tail is inlined.
fn place(pos: u64, head: u64, tail: u64) -> (u64, bool) {
    let room = BLOCK - pos % BLOCK;
    if tail > 0 && head + tail <= BLOCK {
        if head + tail <= room {
            return (pos, true);
        }
        // Moving to the next block wastes `room` bytes; a data block of its own wastes `BLOCK - tail`.
        if room <= BLOCK - tail {
            return (pos.next_multiple_of(BLOCK), true);
        }
    }
    if head > room {
        (pos.next_multiple_of(BLOCK), false)
    } else {
        (pos, false)
    }
}

/// The kernel's `new_encode_dev`: a 12-bit major and a 20-bit minor.
fn encode_dev(major: u32, minor: u32) -> Option<u32> {
    if major > 0xfff || minor > 0xf_ffff {
        return None;
    }
    Some((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

fn child_path(dir: &[u8], name: &[u8]) -> String {
    if dir.is_empty() {
        lossy(name)
    } else {
        format!("{}/{}", lossy(dir), lossy(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_never_cross_a_block_with_inline_data() {
        assert_eq!(place(1152, 32, 100), (1152, true));
        assert_eq!(place(4000, 32, 100), (4096, true));
        // Little room left but a tail that nearly fills a block: a data block of its own.
        assert_eq!(place(1152, 32, 4000), (1152, false));
        assert_eq!(place(4064, 64, 0), (4096, false));
        assert_eq!(place(4032, 64, 0), (4032, false));
    }

    #[test]
    fn device_numbers_are_encoded_as_the_kernel_decodes_them() {
        assert_eq!(encode_dev(1, 3), Some(0x103));
        assert_eq!(encode_dev(259, 300_000), Some((300_000 & 0xff) | (259 << 8) | ((300_000 & !0xff) << 12)));
        assert_eq!(encode_dev(4096, 0), None);
    }
}
