//! Reading a host directory tree with `lstat`, never following symlinks.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use clay_tree::{Content, Inode, Kind, Metadata, Tree, PERMISSION_BITS};

use crate::{SourceError, Warning};

/// Reads the directory at `root` into a tree: every entry with its mode (incl. setuid/setgid/sticky), owner,
/// mtime, extended attributes (incl. `security.capability`), device numbers and symlink targets; hard links
/// become shared inodes. Sockets cannot be archived and are skipped with a warning.
pub fn read_dir(root: &Path, warn: &mut dyn FnMut(Warning)) -> Result<Tree, SourceError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| SourceError::Io { path, source }
    };
    let st = fs::symlink_metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SourceError::NotFound(root.to_owned()),
        _ => SourceError::Io { path: root.to_owned(), source: e },
    })?;
    if !st.is_dir() {
        return Err(SourceError::NotADirectory(root.to_owned()));
    }
    let mut tree = Tree::new(metadata(root, &st)?);
    // (st_dev, st_ino) of files with several names, to the first tree path seen for them.
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_owned(), Vec::new())];
    let parent_meta = Metadata::root_owned(0o755, 0);

    while let Some((host_dir, tree_dir)) = stack.pop() {
        for dirent in fs::read_dir(&host_dir).map_err(io_err(&host_dir))? {
            let dirent = dirent.map_err(io_err(&host_dir))?;
            let host = dirent.path();
            let st = fs::symlink_metadata(&host).map_err(io_err(&host))?;
            let mut path = tree_dir.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(dirent.file_name().as_bytes());

            let ft = st.file_type();
            if ft.is_socket() {
                warn(Warning(format!("skipping socket `{}`: sockets cannot be stored in an image", host.display())));
                continue;
            }
            if !ft.is_dir() && st.nlink() > 1 {
                if let Some(first) = links.get(&(st.dev(), st.ino())) {
                    tree.link(&path, first, &parent_meta)?;
                    continue;
                }
                links.insert((st.dev(), st.ino()), path.clone());
            }
            let kind = if ft.is_dir() {
                stack.push((host.clone(), path.clone()));
                Kind::Directory(Default::default())
            } else if ft.is_file() {
                Kind::File(Content::Host { path: host.clone(), len: st.len() })
            } else if ft.is_symlink() {
                Kind::Symlink(fs::read_link(&host).map_err(io_err(&host))?.as_os_str().as_bytes().to_vec())
            } else if ft.is_char_device() {
                Kind::CharDevice { major: libc::major(st.rdev()), minor: libc::minor(st.rdev()) }
            } else if ft.is_block_device() {
                Kind::BlockDevice { major: libc::major(st.rdev()), minor: libc::minor(st.rdev()) }
            } else {
                Kind::Fifo
            };
            tree.insert(&path, Inode { meta: metadata(&host, &st)?, kind }, &parent_meta)?;
        }
    }
    Ok(tree)
}

fn metadata(path: &Path, st: &fs::Metadata) -> Result<Metadata, SourceError> {
    let io_err = |source| SourceError::Io { path: path.to_owned(), source };
    let mut xattrs = std::collections::BTreeMap::new();
    // `xattr::list`/`get` use llistxattr/lgetxattr: a symlink's own attributes, never its target's.
    match xattr::list(path) {
        Ok(names) => {
            for name in names {
                if let Some(value) = xattr::get(path, &name).map_err(io_err)? {
                    xattrs.insert(name.as_bytes().to_vec(), value);
                }
            }
        }
        // Filesystems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
        Err(e) => return Err(io_err(e)),
    }
    Ok(Metadata { mode: st.mode() & PERMISSION_BITS, uid: st.uid(), gid: st.gid(), mtime: st.mtime(), xattrs })
}
