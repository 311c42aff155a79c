//! The inode, directory, id, export and xattr tables (squashfs.rst, "Inodes", "Directories", "Lookup tables",
//! "Xattr table").
//!
//! Inodes are written children first (a post-order walk) so a directory's listing can name its children's
//! positions and the directory's inode can then name its listing's. Inode numbers follow that order, so the root
//! is the last inode. A hard-linked inode is written once, where its first name is met.

use std::collections::{BTreeMap, BTreeSet};

use clay_tree::{lossy, Entry, InodeId, Kind, Metadata, Tree};
use zerocopy::IntoBytes;

use crate::compress::BlockCompressor;
use crate::data::DataSection;
use crate::metadata::MetaWriter;
use crate::ondisk::*;
use crate::{Options, SquashfsError};

/// The metadata tables, finished and compressed, with what the superblock needs to know about them.
pub(crate) struct Tables {
    pub inode_table: Vec<u8>,
    pub dir_table: Vec<u8>,
    pub root_ref: u64,
    /// Inode references by inode number minus one (the export table).
    pub export: Vec<u64>,
    pub ids: Vec<u32>,
    /// The xattr name/value table and one record per distinct set of xattrs.
    pub xattr_kv: Vec<u8>,
    pub xattr_ids: Vec<XattrId>,
    pub notes: Vec<String>,
}

struct Builder<'a> {
    tree: &'a Tree,
    opts: &'a Options,
    comp: &'a mut BlockCompressor,
    block_size: u64,
    names: BTreeMap<InodeId, &'a [u8]>,
    numbers: BTreeMap<InodeId, u32>,
    refs: Vec<u64>,
    ids: BTreeMap<u32, u16>,
    nlinks: BTreeMap<InodeId, u32>,
    inodes: MetaWriter,
    dirs: MetaWriter,
    xattr_kv: MetaWriter,
    xattr_sets: BTreeMap<Vec<u8>, u32>,
    xattr_ids: Vec<XattrId>,
    notes: Vec<String>,
}

pub(crate) fn build(
    tree: &Tree,
    entries: &[Entry],
    data: &DataSection,
    opts: &Options,
    block_log: u16,
    comp: &mut BlockCompressor,
) -> Result<Tables, SquashfsError> {
    let mut names = BTreeMap::new();
    for e in entries {
        names.entry(e.inode).or_insert(e.path.as_slice());
    }
    let (order, parents) = post_order(tree);
    let numbers: BTreeMap<InodeId, u32> = order
        .iter()
        .enumerate()
        .map(|(i, id)| Ok((*id, u32::try_from(i + 1).map_err(|_| SquashfsError::TooLarge("inode table"))?)))
        .collect::<Result<_, SquashfsError>>()?;
    let id_values: BTreeSet<u32> =
        order.iter().flat_map(|id| [tree.inode(*id).meta.uid, tree.inode(*id).meta.gid]).collect();
    let ids = id_values
        .iter()
        .enumerate()
        .map(|(i, v)| Ok((*v, u16::try_from(i).map_err(|_| SquashfsError::TooManyIds(id_values.len()))?)))
        .collect::<Result<BTreeMap<u32, u16>, SquashfsError>>()?;
    let mut b = Builder {
        tree,
        opts,
        comp,
        block_size: 1 << block_log,
        names,
        numbers,
        refs: Vec::with_capacity(order.len()),
        ids,
        nlinks: tree.link_counts(entries),
        inodes: MetaWriter::new(),
        dirs: MetaWriter::new(),
        xattr_kv: MetaWriter::new(),
        xattr_sets: BTreeMap::new(),
        xattr_ids: Vec::new(),
        notes: Vec::new(),
    };
    let root_parent = u32::try_from(order.len() + 1).map_err(|_| SquashfsError::TooLarge("inode table"))?;
    for id in &order {
        let parent = parents.get(id).and_then(|p| b.numbers.get(p).copied()).unwrap_or(root_parent);
        let r = b.inode(*id, parent, data)?;
        b.refs.push(r);
    }
    let root_ref = b.refs.last().copied().unwrap_or(0);
    let Builder { inodes, dirs, xattr_kv, xattr_ids, notes, refs, ids, comp, .. } = b;
    Ok(Tables {
        inode_table: inodes.finish(comp).map_err(SquashfsError::Compress)?.0,
        dir_table: dirs.finish(comp).map_err(SquashfsError::Compress)?.0,
        root_ref,
        export: refs,
        ids: ids.keys().copied().collect(),
        xattr_kv: xattr_kv.finish(comp).map_err(SquashfsError::Compress)?.0,
        xattr_ids,
        notes,
    })
}

/// Every reachable inode once, children before their directory, siblings in name order; and each directory's
/// parent.
fn post_order(tree: &Tree) -> (Vec<InodeId>, BTreeMap<InodeId, InodeId>) {
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    let mut parents = BTreeMap::new();
    let kids = |id: InodeId| tree.children(id).map(|(_, c)| c).collect::<Vec<_>>();
    let mut stack = vec![(tree.root(), kids(tree.root()), 0usize)];
    seen.insert(tree.root());
    while let Some((dir, children, next)) = stack.last_mut() {
        let Some(child) = children.get(*next).copied() else {
            order.push(*dir);
            stack.pop();
            continue;
        };
        *next += 1;
        if !seen.insert(child) {
            continue;
        }
        if tree.inode(child).kind.is_dir() {
            parents.insert(child, *dir);
            stack.push((child, kids(child), 0));
        } else {
            order.push(child);
        }
    }
    (order, parents)
}

impl Builder<'_> {
    fn path(&self, id: InodeId) -> String {
        self.names.get(&id).map_or_else(|| "/".to_owned(), |p| format!("/{}", lossy(p)))
    }

    /// Writes one inode (and a directory's listing); returns its reference.
    fn inode(&mut self, id: InodeId, parent: u32, data: &DataSection) -> Result<u64, SquashfsError> {
        let inode = self.tree.inode(id);
        let xattr = self.xattrs(id, &inode.meta)?;
        let nlink = self.nlinks.get(&id).copied().unwrap_or(1);
        let mut body: Vec<u8> = Vec::new();
        let basic = match &inode.kind {
            Kind::Directory(_) => {
                let (block, offset) = self.dirs.position();
                let listing = self.listing(id)?;
                let file_size = listing.len() as u64 + DIR_SIZE_BIAS;
                self.dirs.write(&listing, self.comp).map_err(SquashfsError::Compress)?;
                let start_block = u32::try_from(block).map_err(|_| SquashfsError::TooLarge("directory table"))?;
                match (u16::try_from(file_size), xattr) {
                    (Ok(size), INVALID_XATTR) => {
                        body.extend_from_slice(
                            DirInode {
                                start_block: start_block.into(),
                                nlink: nlink.into(),
                                file_size: size.into(),
                                offset: offset.into(),
                                parent_inode: parent.into(),
                            }
                            .as_bytes(),
                        );
                        TYPE_DIR
                    }
                    _ => {
                        let file_size = u32::try_from(file_size)
                            .map_err(|_| SquashfsError::DirectoryTooLarge { path: self.path(id) })?;
                        body.extend_from_slice(
                            ExtDirInode {
                                nlink: nlink.into(),
                                file_size: file_size.into(),
                                start_block: start_block.into(),
                                parent_inode: parent.into(),
                                i_count: 0.into(),
                                offset: offset.into(),
                                xattr: xattr.into(),
                            }
                            .as_bytes(),
                        );
                        TYPE_DIR + EXTENDED_OFFSET
                    }
                }
            }
            Kind::File(content) => {
                let empty = crate::data::FileData::default();
                let d = data.files.get(&id).unwrap_or(&empty);
                let size = content.len();
                let (fragment, frag_offset) = d.fragment.unwrap_or((INVALID_FRAGMENT, 0));
                let small = (u32::try_from(size), u32::try_from(d.start));
                let t = match small {
                    (Ok(size32), Ok(start32)) if nlink <= 1 && xattr == INVALID_XATTR && d.holes == 0 => {
                        body.extend_from_slice(
                            FileInode {
                                start_block: start32.into(),
                                fragment: fragment.into(),
                                offset: frag_offset.into(),
                                file_size: size32.into(),
                            }
                            .as_bytes(),
                        );
                        TYPE_FILE
                    }
                    _ => {
                        body.extend_from_slice(
                            ExtFileInode {
                                start_block: d.start.into(),
                                file_size: size.into(),
                                sparse: (d.holes * self.block_size).into(),
                                nlink: nlink.into(),
                                fragment: fragment.into(),
                                offset: frag_offset.into(),
                                xattr: xattr.into(),
                            }
                            .as_bytes(),
                        );
                        TYPE_FILE + EXTENDED_OFFSET
                    }
                };
                for word in &d.blocks {
                    body.extend_from_slice(&word.to_le_bytes());
                }
                t
            }
            Kind::Symlink(target) => {
                let len = u32::try_from(target.len()).map_err(|_| SquashfsError::TooLarge("symlink target"))?;
                body.extend_from_slice(SymlinkInode { nlink: nlink.into(), symlink_size: len.into() }.as_bytes());
                body.extend_from_slice(target);
                self.with_xattr(&mut body, TYPE_SYMLINK, xattr)
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                if *major > 0xfff || *minor > 0xf_ffff {
                    return Err(SquashfsError::DeviceNumber { path: self.path(id), major: *major, minor: *minor });
                }
                let rdev = encode_dev(*major, *minor);
                body.extend_from_slice(DevInode { nlink: nlink.into(), rdev: rdev.into() }.as_bytes());
                let t =
                    if matches!(inode.kind, Kind::CharDevice { .. }) { TYPE_CHAR_DEVICE } else { TYPE_BLOCK_DEVICE };
                self.with_xattr(&mut body, t, xattr)
            }
            Kind::Fifo => {
                body.extend_from_slice(&nlink.to_le_bytes());
                self.with_xattr(&mut body, TYPE_FIFO, xattr)
            }
        };
        let mtime = self.opts.clamp_mtime.map_or(inode.meta.mtime, |c| inode.meta.mtime.min(c));
        let base = BaseInode {
            inode_type: basic.into(),
            // Permission bits only: the type is in `inode_type` (mksquashfs's SQUASHFS_MODE).
            mode: u16::try_from(inode.meta.mode & clay_tree::PERMISSION_BITS).unwrap_or(0).into(),
            uid: self.id_index(inode.meta.uid).into(),
            guid: self.id_index(inode.meta.gid).into(),
            mtime: u32::try_from(mtime.clamp(0, i64::from(u32::MAX))).unwrap_or(0).into(),
            inode_number: self.numbers.get(&id).copied().unwrap_or(0).into(),
        };
        let (block, offset) = self.inodes.position();
        self.inodes.write(base.as_bytes(), self.comp).map_err(SquashfsError::Compress)?;
        self.inodes.write(&body, self.comp).map_err(SquashfsError::Compress)?;
        Ok(meta_ref(block, offset))
    }

    /// Symlinks, devices and FIFOs take the extended type, with a trailing xattr index, only when they have
    /// xattrs.
    fn with_xattr(&self, body: &mut Vec<u8>, basic: u16, xattr: u32) -> u16 {
        if xattr == INVALID_XATTR {
            basic
        } else {
            body.extend_from_slice(&xattr.to_le_bytes());
            basic + EXTENDED_OFFSET
        }
    }

    fn id_index(&self, id: u32) -> u16 {
        self.ids.get(&id).copied().unwrap_or(0)
    }

    /// A directory's listing: runs of entries under headers, each run sharing one inode-table block and
    /// numbers within ±32767 of the run's first.
    fn listing(&self, dir: InodeId) -> Result<Vec<u8>, SquashfsError> {
        struct Child<'n> {
            name: &'n [u8],
            r: u64,
            number: u32,
            kind: u16,
        }
        let mut children = Vec::new();
        for (name, id) in self.tree.children(dir) {
            if name.len() > NAME_MAX {
                return Err(SquashfsError::NameTooLong { path: format!("{}/{}", self.path(dir), lossy(name)) });
            }
            let number = self.numbers.get(&id).copied().unwrap_or(0);
            let r = usize::try_from(number).ok().and_then(|n| self.refs.get(n.wrapping_sub(1))).copied().unwrap_or(0);
            let kind = match &self.tree.inode(id).kind {
                Kind::Directory(_) => TYPE_DIR,
                Kind::File(_) => TYPE_FILE,
                Kind::Symlink(_) => TYPE_SYMLINK,
                Kind::BlockDevice { .. } => TYPE_BLOCK_DEVICE,
                Kind::CharDevice { .. } => TYPE_CHAR_DEVICE,
                Kind::Fifo => TYPE_FIFO,
            };
            children.push(Child { name, r, number, kind });
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < children.len() {
            let first = &children[i];
            let block = first.r >> 16;
            let base = i64::from(first.number);
            let run = children[i..]
                .iter()
                .take(DIR_MAX_ENTRIES)
                .take_while(|c| c.r >> 16 == block && i16::try_from(i64::from(c.number) - base).is_ok())
                .count();
            let start_block = u32::try_from(block).map_err(|_| SquashfsError::TooLarge("inode table"))?;
            let count = u32::try_from(run - 1).unwrap_or(0);
            out.extend_from_slice(
                DirHeader { count: count.into(), start_block: start_block.into(), inode_number: first.number.into() }
                    .as_bytes(),
            );
            for c in &children[i..i + run] {
                let entry = DirEntry {
                    offset: u16::try_from(c.r & 0xffff).unwrap_or(0).into(),
                    inode_number: i16::try_from(i64::from(c.number) - base).unwrap_or(0).into(),
                    entry_type: c.kind.into(),
                    size: u16::try_from(c.name.len() - 1).unwrap_or(0).into(),
                };
                out.extend_from_slice(entry.as_bytes());
                out.extend_from_slice(c.name);
            }
            i += run;
        }
        Ok(out)
    }

    /// The xattr id of an inode's attributes, writing the set on first use; `INVALID_XATTR` when it has none.
    fn xattrs(&mut self, id: InodeId, meta: &Metadata) -> Result<u32, SquashfsError> {
        let mut kv = Vec::new();
        let mut count = 0u32;
        for (name, value) in &meta.xattrs {
            let Some((prefix, kind)) = XATTR_PREFIXES.iter().find(|(p, _)| name.starts_with(p)) else {
                self.notes.push(format!(
                    "`{}`: extended attribute `{}` left out; squashfs stores only user., trusted. and security. ones",
                    self.path(id),
                    lossy(name)
                ));
                continue;
            };
            let short = &name[prefix.len()..];
            let too_large = || SquashfsError::XattrTooLarge { path: self.path(id), name: lossy(name) };
            let size = u16::try_from(short.len()).map_err(|_| too_large())?;
            let vsize = u32::try_from(value.len()).map_err(|_| too_large())?;
            kv.extend_from_slice(XattrEntry { xattr_type: (*kind).into(), size: size.into() }.as_bytes());
            kv.extend_from_slice(short);
            kv.extend_from_slice(&vsize.to_le_bytes());
            kv.extend_from_slice(value);
            count += 1;
        }
        if count == 0 {
            return Ok(INVALID_XATTR);
        }
        if let Some(index) = self.xattr_sets.get(&kv) {
            return Ok(*index);
        }
        let index = u32::try_from(self.xattr_ids.len()).map_err(|_| SquashfsError::TooLarge("xattr table"))?;
        let (block, offset) = self.xattr_kv.position();
        self.xattr_kv.write(&kv, self.comp).map_err(SquashfsError::Compress)?;
        let size = u32::try_from(kv.len()).map_err(|_| SquashfsError::TooLarge("xattr table"))?;
        self.xattr_ids.push(XattrId { xattr: meta_ref(block, offset).into(), count: count.into(), size: size.into() });
        self.xattr_sets.insert(kv, index);
        Ok(index)
    }
}
