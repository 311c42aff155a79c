//! The directory tree implied by the file paths, its short names, and where each directory and file goes.

use crate::names::{exact_short_name, fold, lfn_entry_count, long_name_problem, Basis};
use crate::ondisk::{DIR_ENTRY_LEN, MAX_DIR_ENTRIES, ROOT_CLUSTER};
use crate::FatError;

/// The largest file FAT can hold: DIR_FileSize is 32 bits.
pub const MAX_FILE_LEN: u64 = u32::MAX as u64;

#[derive(Debug)]
pub struct Tree {
    /// Directories; index 0 is the root, every parent comes before its children.
    pub dirs: Vec<Dir>,
    pub files: Vec<FileNode>,
}

#[derive(Debug)]
pub struct Dir {
    /// `/`-separated path, empty for the root.
    pub path: String,
    /// Index of the parent directory (0 for the root itself).
    pub parent: usize,
    pub children: Vec<Child>,
}

#[derive(Debug)]
pub struct Child {
    pub name: String,
    pub short: [u8; 11],
    /// Whether the name needs long-name entries (it is not an exact uppercase 8.3 name).
    pub long: bool,
    pub node: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Dir(usize),
    File(usize),
}

#[derive(Debug)]
pub struct FileNode {
    /// As given, for error messages.
    pub path: String,
    pub len: u64,
}

/// A run of clusters: the first and how many (0 for an empty file, which has first cluster 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub first: u32,
    pub count: u32,
}

/// Where every directory and file lives, for one cluster size.
#[derive(Debug)]
pub struct Allocation {
    pub dirs: Vec<Run>,
    pub files: Vec<Run>,
    /// Clusters in use, starting at cluster 2.
    pub used: u64,
}

impl Tree {
    /// Builds the tree from `(path, len)` pairs in order: parents are created as needed, in the order first named.
    pub fn build<'a>(files: impl IntoIterator<Item = (&'a str, u64)>) -> Result<Tree, FatError> {
        let mut tree =
            Tree { dirs: vec![Dir { path: String::new(), parent: 0, children: Vec::new() }], files: Vec::new() };
        for (path, len) in files {
            tree.add(path, len)?;
        }
        tree.assign_short_names();
        for dir in &tree.dirs {
            if tree.dir_entry_count(dir, true) > MAX_DIR_ENTRIES {
                return Err(FatError::DirectoryTooLarge { path: dir.path.clone() });
            }
        }
        Ok(tree)
    }

    fn add(&mut self, path: &str, len: u64) -> Result<(), FatError> {
        let invalid = |reason| FatError::InvalidPath { path: path.to_owned(), reason };
        let components: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for c in &components {
            if let Some(reason) = long_name_problem(c) {
                return Err(invalid(reason));
            }
        }
        if len > MAX_FILE_LEN {
            return Err(FatError::FileTooLarge { path: path.to_owned(), len });
        }
        let Some((file_name, parents)) = components.split_last() else { return Err(invalid("it is empty")) };
        let mut dir = 0;
        for (depth, name) in parents.iter().enumerate() {
            dir = match self.find(dir, name) {
                Some(Node::Dir(d)) => d,
                Some(Node::File(_)) => {
                    return Err(FatError::PathConflict { path: components[..=depth].join("/") });
                }
                None => {
                    let index = self.dirs.len();
                    let dir_path = components[..=depth].join("/");
                    self.dirs.push(Dir { path: dir_path, parent: dir, children: Vec::new() });
                    self.push_child(dir, name, Node::Dir(index));
                    index
                }
            };
        }
        match self.find(dir, file_name) {
            Some(Node::File(_)) => return Err(FatError::DuplicatePath { path: path.to_owned() }),
            Some(Node::Dir(_)) => return Err(FatError::PathConflict { path: path.to_owned() }),
            None => {}
        }
        let index = self.files.len();
        self.files.push(FileNode { path: path.to_owned(), len });
        self.push_child(dir, file_name, Node::File(index));
        Ok(())
    }

    fn find(&self, dir: usize, name: &str) -> Option<Node> {
        let key = fold(name);
        self.dirs[dir].children.iter().find(|c| fold(&c.name) == key).map(|c| c.node)
    }

    fn push_child(&mut self, dir: usize, name: &str, node: Node) {
        self.dirs[dir].children.push(Child { name: name.to_owned(), short: [b' '; 11], long: true, node });
    }

    /// Short names, unique per directory: exact 8.3 names first (they cannot change), then the basis name of
    /// each long name, with the smallest free numeric tail where it is lossy or taken (FAT spec §7.4).
    fn assign_short_names(&mut self) {
        for dir in &mut self.dirs {
            let mut taken: Vec<[u8; 11]> = Vec::with_capacity(dir.children.len());
            for child in &mut dir.children {
                if let Some(short) = exact_short_name(&child.name) {
                    child.short = short;
                    child.long = false;
                    taken.push(short);
                }
            }
            for child in dir.children.iter_mut().filter(|c| c.long) {
                let basis = Basis::of(&child.name);
                let short = if !basis.needs_tail && !taken.contains(&basis.plain()) {
                    basis.plain()
                } else {
                    // At most 65,536 entries per directory, so a free tail is always found below that.
                    (1..=u32::MAX).map(|n| basis.with_tail(n)).find(|s| !taken.contains(s)).unwrap_or(basis.plain())
                };
                child.short = short;
                taken.push(short);
            }
        }
    }

    /// 32-byte entries the directory needs: `.` and `..` (not in the root), the volume label (root, if any), and
    /// each child's long-name entries and short entry.
    pub fn dir_entry_count(&self, dir: &Dir, label: bool) -> u64 {
        let is_root = dir.path.is_empty();
        let own = if is_root { u64::from(label) } else { 2 };
        own + dir.children.iter().map(|c| 1 + if c.long { lfn_entry_count(&c.name) as u64 } else { 0 }).sum::<u64>()
    }

    /// Places the root at cluster 2, the other directories after it, then the files in order, each contiguous.
    pub fn allocate(&self, cluster_bytes: u64, label: bool) -> Allocation {
        let mut next = u64::from(ROOT_CLUSTER);
        let mut take = |count: u64| {
            let run = Run {
                first: if count == 0 { 0 } else { u32::try_from(next).unwrap_or(u32::MAX) },
                count: u32::try_from(count).unwrap_or(u32::MAX),
            };
            next = next.saturating_add(count);
            run
        };
        let dirs = self
            .dirs
            .iter()
            .map(|d| take((self.dir_entry_count(d, label) * DIR_ENTRY_LEN).div_ceil(cluster_bytes).max(1)))
            .collect();
        let files = self.files.iter().map(|f| take(f.len.div_ceil(cluster_bytes))).collect();
        Allocation { dirs, files, used: next - u64::from(ROOT_CLUSTER) }
    }
}
