//! Inode numbers and space: every tree inode gets one number (hard links share it), in path order after the
//! reserved ones and lost+found, and an upper bound of the blocks the tree needs, for sizing.

use std::collections::BTreeMap;

use clay_tree::{lossy, InodeId, Kind, Tree};

use crate::dir::DirBuilder;
use crate::extent::tree_blocks_bound;
use crate::ondisk::{BLOCK, FIRST_INO, ROOT_INO};
use crate::xattr;

/// lost+found's size as mke2fs makes it: 16 KiB, so e2fsck can reconnect files without allocating.
pub(crate) const LOST_FOUND_BLOCKS: usize = 4;
pub(crate) const LOST_FOUND: &[u8] = b"lost+found";

/// One inode to write.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Tree { id: InodeId, path: String },
    LostFound,
}

#[derive(Debug)]
pub(crate) struct Plan {
    /// Inodes in number order, from the root.
    pub items: Vec<(u32, Item)>,
    pub inos: BTreeMap<InodeId, u32>,
    /// Each directory's parent (the root is its own).
    pub parents: BTreeMap<InodeId, u32>,
    pub links: BTreeMap<InodeId, u32>,
    /// Whether we add lost+found (the tree has none of its own).
    pub lost_found: bool,
    pub last_ino: u32,
    /// A directory met under a second name, which ext4 cannot represent.
    pub linked_dir: Option<String>,
}

impl Plan {
    pub fn new(tree: &Tree) -> Plan {
        let entries = tree.walk();
        let root = tree.root();
        let lost_found = !tree.children(root).any(|(name, _)| name == LOST_FOUND);
        let mut inos = BTreeMap::from([(root, ROOT_INO)]);
        let mut items = vec![(ROOT_INO, Item::Tree { id: root, path: "/".to_owned() })];
        let mut next = FIRST_INO;
        if lost_found {
            items.push((next, Item::LostFound));
            next += 1;
        }
        let mut linked_dir = None;
        for e in entries.iter().skip(1) {
            if inos.contains_key(&e.inode) {
                if tree.inode(e.inode).kind.is_dir() && linked_dir.is_none() {
                    linked_dir = Some(format!("/{}", lossy(&e.path)));
                }
                continue;
            }
            inos.insert(e.inode, next);
            items.push((next, Item::Tree { id: e.inode, path: format!("/{}", lossy(&e.path)) }));
            next += 1;
        }
        let mut parents = BTreeMap::from([(root, ROOT_INO)]);
        for (ino, item) in &items {
            if let Item::Tree { id, .. } = item {
                for (_, child) in tree.children(*id) {
                    if tree.inode(child).kind.is_dir() {
                        parents.entry(child).or_insert(*ino);
                    }
                }
            }
        }
        let links = tree.link_counts(&entries);
        Plan { items, inos, parents, links, lost_found, last_ino: next - 1, linked_dir }
    }

    /// An upper bound of the data blocks the tree takes (directories, file data without holes, extent tree
    /// blocks, slow symlinks, attribute blocks, lost+found); not the journal.
    pub fn blocks_bound(&self, tree: &Tree) -> u64 {
        let mut total = if self.lost_found { LOST_FOUND_BLOCKS as u64 } else { 0 };
        for (_, item) in &self.items {
            let Item::Tree { id, path } = item else { continue };
            let inode = tree.inode(*id);
            let data = match &inode.kind {
                Kind::Directory(_) => {
                    let mut d = DirBuilder::new(0, 0);
                    if *id == tree.root() && self.lost_found {
                        d.push(LOST_FOUND, 0, 0);
                    }
                    for (name, _) in tree.children(*id) {
                        d.push(&name[..name.len().min(255)], 0, 0);
                    }
                    d.block_count() as u64
                }
                Kind::File(c) => c.len().div_ceil(BLOCK),
                Kind::Symlink(t) if t.len() >= 60 => 1,
                _ => 0,
            };
            let xattr_block = xattr::encode(path, &inode.meta.xattrs)
                .and_then(|a| xattr::place(path, a))
                .map_or(1, |p| u64::from(p.needs_block()));
            total += data + tree_blocks_bound(data) + xattr_block;
        }
        total
    }
}
