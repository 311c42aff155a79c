//! The directory tree an image is laid out from: every directory implied by the files' paths, children in a
//! bytewise-ordered map so every walk is deterministic.

use std::collections::BTreeMap;

use crate::IsoError;

/// Linux's NAME_MAX; Rock Ridge NM could carry more, but nothing could create such a name when mounted.
const MAX_NAME: usize = 255;
/// POSIX file type bits for the Rock Ridge PX mode (RRIP 1.12 4.1.1).
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFDIR: u32 = 0o040_000;
/// Directories the paths imply get this mode: rwxr-xr-x.
pub(crate) const DIR_MODE: u32 = S_IFDIR | 0o755;

/// The index of the root in [`Tree::dirs`].
pub(crate) const ROOT: usize = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Dir(usize),
    /// An index into the caller's file slice.
    File(usize),
}

#[derive(Debug)]
pub(crate) struct Dir {
    pub parent: usize,
    pub children: BTreeMap<String, Node>,
}

impl Dir {
    pub(crate) fn subdirs(&self) -> usize {
        self.children.values().filter(|n| matches!(n, Node::Dir(_))).count()
    }
}

#[derive(Debug)]
pub(crate) struct FileMeta {
    pub path: String,
    pub len: u64,
    /// Full POSIX mode for PX: regular file type plus the caller's permission bits.
    pub mode: u32,
}

#[derive(Debug)]
pub(crate) struct Tree {
    pub dirs: Vec<Dir>,
    pub files: Vec<FileMeta>,
    by_path: BTreeMap<String, usize>,
}

impl Tree {
    /// Builds the tree from `(path, len, mode)` per file, creating parents and refusing duplicates, names that
    /// are not plain file names, and files of 4 GiB or more (no multi-extent files: ISO 9660 level 3 is not used).
    pub(crate) fn build<'a>(files: impl IntoIterator<Item = (&'a str, u64, u32)>) -> Result<Tree, IsoError> {
        let root = Dir { parent: ROOT, children: BTreeMap::new() };
        let mut tree = Tree { dirs: vec![root], files: Vec::new(), by_path: BTreeMap::new() };
        for (index, (path, len, mode)) in files.into_iter().enumerate() {
            let parts = split_path(path)?;
            let normal = parts.join("/");
            if len > u64::from(u32::MAX) {
                return Err(IsoError::FileTooLarge { path: normal, len });
            }
            let Some((leaf, parents)) = parts.split_last() else {
                return Err(IsoError::InvalidPath { path: path.to_owned(), reason: "it names no file" });
            };
            let mut dir = ROOT;
            for (depth, part) in parents.iter().enumerate() {
                dir = match tree.dirs[dir].children.get(*part) {
                    Some(Node::Dir(d)) => *d,
                    Some(Node::File(_)) => return Err(IsoError::FileDirectoryConflict(parts[..=depth].join("/"))),
                    None => {
                        let new = tree.dirs.len();
                        tree.dirs.push(Dir { parent: dir, children: BTreeMap::new() });
                        tree.dirs[dir].children.insert((*part).to_owned(), Node::Dir(new));
                        new
                    }
                };
            }
            match tree.dirs[dir].children.get(*leaf) {
                Some(Node::Dir(_)) => return Err(IsoError::FileDirectoryConflict(normal)),
                Some(Node::File(_)) => return Err(IsoError::DuplicatePath(normal)),
                None => {}
            }
            tree.dirs[dir].children.insert((*leaf).to_owned(), Node::File(index));
            tree.by_path.insert(normal.clone(), index);
            tree.files.push(FileMeta { path: normal, len, mode: S_IFREG | (mode & 0o7777) });
        }
        Ok(tree)
    }

    /// The index of the file at `path` (normalized the same way as the files' paths).
    pub(crate) fn find(&self, path: &str) -> Option<usize> {
        let parts = split_path(path).ok()?;
        self.by_path.get(&parts.join("/")).copied()
    }
}

/// Splits a '/'-separated path (a leading '/' is allowed) into plain names.
fn split_path(path: &str) -> Result<Vec<&str>, IsoError> {
    let bad = |reason| IsoError::InvalidPath { path: path.to_owned(), reason };
    let rel = path.strip_prefix('/').unwrap_or(path);
    if rel.is_empty() {
        return Err(bad("it names no file"));
    }
    rel.split('/')
        .map(|part| match part {
            "" => Err(bad("it has an empty component")),
            "." | ".." => Err(bad("`.` and `..` are not file names")),
            p if p.contains('\0') => Err(bad("it contains a NUL byte")),
            p if p.len() > MAX_NAME => Err(bad("a component is longer than 255 bytes")),
            p => Ok(p),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_conflicts_refused() {
        let t = Tree::build([("boot/vmlinuz", 3, 0o644), ("/boot/isolinux/isolinux.bin", 5, 0o100_644)]).unwrap();
        assert_eq!(t.dirs.len(), 3);
        assert_eq!(t.find("boot/isolinux/isolinux.bin"), Some(1));
        assert_eq!(t.files[1].mode, 0o100_644);
        let dup = Tree::build([("a/b", 1, 0o644), ("a//b", 1, 0o644)]);
        assert!(matches!(dup, Err(IsoError::InvalidPath { .. })));
        assert!(matches!(Tree::build([("a/b", 1, 0), ("/a/b", 1, 0)]), Err(IsoError::DuplicatePath(p)) if p == "a/b"));
        assert!(
            matches!(Tree::build([("a", 1, 0), ("a/b", 1, 0)]), Err(IsoError::FileDirectoryConflict(p)) if p == "a")
        );
        assert!(matches!(Tree::build([("a/b", 1, 0), ("a", 1, 0)]), Err(IsoError::FileDirectoryConflict(_))));
        assert!(matches!(Tree::build([("a/../b", 1, 0)]), Err(IsoError::InvalidPath { .. })));
        assert!(matches!(Tree::build([("big", 1 << 32, 0)]), Err(IsoError::FileTooLarge { .. })));
    }
}
