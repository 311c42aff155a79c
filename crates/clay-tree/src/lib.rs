//! The in-memory filesystem tree: the one model every source fills and every format writer reads.
//!
//! Directories are ordered maps so iteration is deterministic; every other object lives once in an inode table so
//! hard links share one entry. File content is a [`Content`] handle, never a copy of a large file.

mod content;
mod path;

use std::collections::BTreeMap;

pub use content::{Content, ContentError, ExactReader};
pub use path::{components, PathError};

/// Index of an inode in a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InodeId(usize);

/// Ownership, permissions, time and extended attributes of one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000); never the file type.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time in seconds since the Unix epoch.
    pub mtime: i64,
    /// Extended attributes by full name (`security.capability`, `user.foo`, ...), ordered for determinism.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Metadata {
    /// Root-owned metadata with the given permission bits and time, and no extended attributes.
    pub fn root_owned(mode: u32, mtime: i64) -> Self {
        Metadata { mode: mode & PERMISSION_BITS, uid: 0, gid: 0, mtime, xattrs: BTreeMap::new() }
    }
}

/// Permission bits including setuid, setgid and sticky (`S_ISUID | S_ISGID | S_ISVTX | 0o777`).
pub const PERMISSION_BITS: u32 = 0o7777;

/// What an inode is, with the data that kind carries.
#[derive(Debug, Clone)]
pub enum Kind {
    Directory(BTreeMap<Vec<u8>, InodeId>),
    File(Content),
    Symlink(Vec<u8>),
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

impl Kind {
    /// The `S_IFMT` file type bits of this kind, as stat(2) and cpio spell them.
    pub fn file_type_bits(&self) -> u32 {
        match self {
            Kind::Directory(_) => libc::S_IFDIR,
            Kind::File(_) => libc::S_IFREG,
            Kind::Symlink(_) => libc::S_IFLNK,
            Kind::CharDevice { .. } => libc::S_IFCHR,
            Kind::BlockDevice { .. } => libc::S_IFBLK,
            Kind::Fifo => libc::S_IFIFO,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self, Kind::Directory(_))
    }
}

/// One filesystem object.
#[derive(Debug, Clone)]
pub struct Inode {
    pub meta: Metadata,
    pub kind: Kind,
}

impl Inode {
    pub fn directory(meta: Metadata) -> Self {
        Inode { meta, kind: Kind::Directory(BTreeMap::new()) }
    }

    /// The full `st_mode`: file type bits and permission bits.
    pub fn st_mode(&self) -> u32 {
        self.kind.file_type_bits() | (self.meta.mode & PERMISSION_BITS)
    }
}

/// Errors from changing a tree. Each names the path it is about.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("`{path}` goes through `{through}`, which is not a directory")]
    NotADirectory { path: String, through: String },
    #[error("hard link `{path}` points to `{target}`, which does not exist")]
    LinkTargetMissing { path: String, target: String },
    #[error("hard link `{path}` points to the directory `{target}`; directories cannot be hard-linked")]
    LinkToDirectory { path: String, target: String },
    #[error("the root directory cannot be replaced by a non-directory (entry `{path}`)")]
    RootNotDirectory { path: String },
}

/// One entry of a [`Tree::walk`]: a path (relative, no leading slash; empty for the root) and its inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub inode: InodeId,
}

/// A filesystem tree held in memory.
#[derive(Debug, Clone)]
pub struct Tree {
    inodes: Vec<Inode>,
}

const ROOT: InodeId = InodeId(0);

impl Tree {
    /// A tree holding only a root directory with the given metadata.
    pub fn new(root_meta: Metadata) -> Self {
        Tree { inodes: vec![Inode::directory(root_meta)] }
    }

    pub fn root(&self) -> InodeId {
        ROOT
    }

    pub fn inode(&self, id: InodeId) -> &Inode {
        &self.inodes[id.0]
    }

    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        &mut self.inodes[id.0]
    }

    /// The children of a directory inode; empty for anything else.
    pub fn children(&self, id: InodeId) -> impl Iterator<Item = (&[u8], InodeId)> {
        let map = match &self.inode(id).kind {
            Kind::Directory(map) => Some(map),
            _ => None,
        };
        map.into_iter().flat_map(|m| m.iter().map(|(k, v)| (k.as_slice(), *v)))
    }

    /// Finds the inode at `path` without following symlinks. `""`, `"."` and `"/"` are the root.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<InodeId>, PathError> {
        let mut cur = ROOT;
        for name in components(path)? {
            match &self.inode(cur).kind {
                Kind::Directory(map) => match map.get(name) {
                    Some(&id) => cur = id,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// Finds the inode at `path`, following symlinks as the booted system would, but always inside the tree:
    /// absolute targets and `..` resolve against the tree's root, never the host's. Gives up after 40 links
    /// (Linux's `MAXSYMLINKS`) so link loops end.
    pub fn resolve(&self, path: &[u8]) -> Option<InodeId> {
        const MAX_SYMLINKS: usize = 40;
        let mut pending: Vec<Vec<u8>> = path.split(|b| *b == b'/').rev().map(<[u8]>::to_vec).collect();
        let mut stack = vec![ROOT];
        let mut links = 0;
        while let Some(name) = pending.pop() {
            let cur = *stack.last()?;
            match name.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let Kind::Directory(map) = &self.inode(cur).kind else { return None };
            let next = *map.get(&name)?;
            if let Kind::Symlink(target) = &self.inode(next).kind {
                links += 1;
                if links > MAX_SYMLINKS {
                    return None;
                }
                if target.starts_with(b"/") {
                    stack.truncate(1);
                }
                pending.extend(target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
            } else {
                stack.push(next);
            }
        }
        stack.last().copied()
    }

    /// Adds `inode` at `path`, creating missing parent directories with `parent_meta`.
    ///
    /// An existing non-directory at `path` is replaced. A directory written over an existing directory only
    /// updates the metadata and keeps the children (as tar and layer extraction do); a non-directory written over
    /// a directory replaces it whole. Walking *through* a symlink is refused rather than followed.
    pub fn insert(&mut self, path: &[u8], inode: Inode, parent_meta: &Metadata) -> Result<InodeId, TreeError> {
        let names = components(path)?;
        let Some((last, parents)) = names.split_last() else {
            // The root itself: only its metadata can change.
            if !inode.kind.is_dir() {
                return Err(TreeError::RootNotDirectory { path: lossy(path) });
            }
            self.inodes[ROOT.0].meta = inode.meta;
            return Ok(ROOT);
        };
        let dir = self.make_parents(path, parents, parent_meta)?;
        if let Some(existing) = self.dir_map(dir).get(*last).copied() {
            if inode.kind.is_dir() && self.inode(existing).kind.is_dir() {
                self.inodes[existing.0].meta = inode.meta;
                return Ok(existing);
            }
        }
        let id = self.push(inode);
        self.dir_map_mut(dir).insert(last.to_vec(), id);
        Ok(id)
    }

    /// Makes `path` a second name for the inode at `target` (a hard link).
    pub fn link(&mut self, path: &[u8], target: &[u8], parent_meta: &Metadata) -> Result<InodeId, TreeError> {
        let target_id = self
            .lookup(target)?
            .ok_or_else(|| TreeError::LinkTargetMissing { path: lossy(path), target: lossy(target) })?;
        if self.inode(target_id).kind.is_dir() {
            return Err(TreeError::LinkToDirectory { path: lossy(path), target: lossy(target) });
        }
        let names = components(path)?;
        let Some((last, parents)) = names.split_last() else {
            return Err(TreeError::RootNotDirectory { path: lossy(path) });
        };
        let dir = self.make_parents(path, parents, parent_meta)?;
        self.dir_map_mut(dir).insert(last.to_vec(), target_id);
        Ok(target_id)
    }

    /// Removes the entry at `path` (and everything below it). Returns whether something was removed.
    pub fn remove(&mut self, path: &[u8]) -> Result<bool, PathError> {
        let names = components(path)?;
        let Some((last, parents)) = names.split_last() else {
            return Ok(false);
        };
        let mut cur = ROOT;
        for name in parents {
            match &self.inode(cur).kind {
                Kind::Directory(map) => match map.get(*name) {
                    Some(&id) => cur = id,
                    None => return Ok(false),
                },
                _ => return Ok(false),
            }
        }
        match &mut self.inodes[cur.0].kind {
            Kind::Directory(map) => Ok(map.remove(*last).is_some()),
            _ => Ok(false),
        }
    }

    /// Every reachable entry, root first, ordered bytewise by full path (as `find | LC_ALL=C sort` orders them).
    /// A parent always comes before its children because a path sorts after its own prefix.
    pub fn walk(&self) -> Vec<Entry> {
        let mut out = vec![Entry { path: Vec::new(), inode: ROOT }];
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((prefix, dir)) = stack.pop() {
            for (name, id) in self.children(dir) {
                let mut path = prefix.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                if self.inode(id).kind.is_dir() {
                    stack.push((path.clone(), id));
                }
                out.push(Entry { path, inode: id });
            }
        }
        out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// The number of names each reachable inode has, indexed like the tree's inodes; directories count `.` and
    /// their subdirectories' `..` as stat(2) does.
    pub fn link_counts(&self, entries: &[Entry]) -> BTreeMap<InodeId, u32> {
        let mut counts = BTreeMap::new();
        for e in entries {
            let inode = self.inode(e.inode);
            if let Kind::Directory(map) = &inode.kind {
                let subdirs = map.values().filter(|id| self.inode(**id).kind.is_dir()).count();
                counts.insert(e.inode, 2 + u32::try_from(subdirs).unwrap_or(u32::MAX - 2));
            } else {
                *counts.entry(e.inode).or_insert(0) += 1;
            }
        }
        counts
    }

    fn push(&mut self, inode: Inode) -> InodeId {
        self.inodes.push(inode);
        InodeId(self.inodes.len() - 1)
    }

    fn make_parents(&mut self, path: &[u8], parents: &[&[u8]], meta: &Metadata) -> Result<InodeId, TreeError> {
        let mut cur = ROOT;
        for (depth, name) in parents.iter().enumerate() {
            cur = match self.dir_map(cur).get(*name).copied() {
                Some(id) if self.inode(id).kind.is_dir() => id,
                Some(_) => {
                    return Err(TreeError::NotADirectory {
                        path: lossy(path),
                        through: lossy(&parents[..=depth].join(&b'/')),
                    })
                }
                None => {
                    let id = self.push(Inode::directory(meta.clone()));
                    self.dir_map_mut(cur).insert(name.to_vec(), id);
                    id
                }
            };
        }
        Ok(cur)
    }

    fn dir_map(&self, id: InodeId) -> &BTreeMap<Vec<u8>, InodeId> {
        match &self.inodes[id.0].kind {
            Kind::Directory(map) => map,
            // make_parents only ever hands out directory ids.
            _ => unreachable!("inode {id:?} is not a directory"),
        }
    }

    fn dir_map_mut(&mut self, id: InodeId) -> &mut BTreeMap<Vec<u8>, InodeId> {
        match &mut self.inodes[id.0].kind {
            Kind::Directory(map) => map,
            _ => unreachable!("inode {id:?} is not a directory"),
        }
    }
}

impl Tree {
    /// A readable listing of the tree, one line per entry: path, mode, owner, kind details and xattrs. Hard-linked
    /// names show the first name of their inode. Used by snapshot tests and `clay inspect`.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let mut first_name: BTreeMap<InodeId, String> = BTreeMap::new();
        for e in self.walk() {
            let inode = self.inode(e.inode);
            let path = if e.path.is_empty() { ".".to_owned() } else { lossy(&e.path) };
            let detail = match &inode.kind {
                Kind::Directory(_) => String::new(),
                Kind::File(c) => match first_name.get(&e.inode) {
                    Some(first) => format!(" link={first}"),
                    None => format!(" size={}", c.len()),
                },
                Kind::Symlink(t) => format!(" -> {}", lossy(t)),
                Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => format!(" {major}:{minor}"),
                Kind::Fifo => String::new(),
            };
            first_name.entry(e.inode).or_insert_with(|| path.clone());
            let xattrs: String = inode
                .meta
                .xattrs
                .iter()
                .map(|(k, v)| format!(" {}={}", lossy(k), v.iter().map(|b| format!("{b:02x}")).collect::<String>()))
                .collect();
            out.push_str(&format!(
                "{path} {:o} {}:{} mtime={}{detail}{xattrs}\n",
                inode.st_mode(),
                inode.meta.uid,
                inode.meta.gid,
                inode.meta.mtime
            ));
        }
        out
    }
}

/// A path for messages: invalid UTF-8 shown with replacement characters.
pub fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod tests;
