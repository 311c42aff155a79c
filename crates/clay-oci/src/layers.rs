//! Merging layers into one tree in memory (OCI image-spec "Image Layer Filesystem Changeset"): each layer's
//! entries over the ones below, whiteouts deleting lower entries, opaque directories hiding them.
//!
//! Whiteouts only ever apply to lower layers, wherever they sit in their own layer: a layer is read whole, its
//! whiteouts applied first, then its entries in archive order. The tree refuses `..` and never walks through a
//! symlink, so no entry can land outside the root or somewhere a symlink points.

use std::collections::BTreeSet;

use clay_tree::{components, lossy, Inode, Kind, Metadata, Tree, TreeError};

use crate::checks::Checks;
use crate::store::{compressed, spill, Blob};
use crate::tarentry::{tar_entry_inode, TarEntry};
use crate::{Lookahead, OciError};
use clay_digest::Digest;

/// The prefix of a whiteout file's name (image-spec "Whiteouts").
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name marking its directory opaque.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// aufs's own metadata names (`.wh..wh.plnk`, `.wh..wh.aufs`): not whiteouts, not content.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// One layer blob to apply, with what it must hash to.
#[derive(Debug)]
pub(crate) struct LayerBlob {
    /// How messages name the layer: its digest, or its path in a docker archive.
    pub name: String,
    pub blob: Blob,
    /// The digest of the stored (possibly compressed) bytes, when known.
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    /// The digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Option<Digest>,
    /// The stored bytes were checked against `digest` when they were stored ([`crate::ReadOptions`]).
    pub verified: bool,
}

impl LayerBlob {
    /// The uncompressed tar (the blob itself when it is plain, else an unlinked spill file), with the checks of
    /// its digests queued on `checks`: the stored bytes against the layer digest (unless they were verified as
    /// they were stored), the tar against the diff ID.
    /// Only the size is checked before this returns. While a layer is decompressed, `lookahead` sees its files'
    /// data. Errors are returned as they are; the caller lets `checks` explain them.
    pub fn tar(&self, image: &str, lookahead: Option<&dyn Lookahead>, checks: &mut Checks) -> Result<Blob, OciError> {
        let read_err =
            |source| OciError::Decompress { what: format!("layer `{}` of image `{image}`", self.name), source };
        if let (Some(expected), Some(digest)) = (self.size, &self.digest) {
            if expected != self.blob.len {
                return Err(OciError::Size {
                    image: image.to_owned(),
                    what: "layer".into(),
                    digest: digest.to_string(),
                    expected,
                    found: self.blob.len,
                });
            }
        }
        if let (Some(digest), false) = (&self.digest, self.verified) {
            checks.push(&self.blob, digest, image, "layer", digest.to_string());
        }
        let magic = self.blob.magic().map_err(read_err)?;
        let tar = if compressed(&magic) {
            spill(&magic, self.blob.section(), lookahead).map_err(read_err)?
        } else if self.diff_id == self.digest {
            // Plain, and the diff ID is the digest already being checked.
            return Ok(self.blob.clone());
        } else {
            self.blob.clone()
        };
        if let Some(diff_id) = &self.diff_id {
            checks.push(&tar, diff_id, image, "uncompressed layer", format!("{} ({diff_id})", self.name));
        }
        Ok(tar)
    }
}

/// What one layer entry does.
#[derive(Debug)]
enum Action {
    Put(Inode),
    Link(Vec<u8>),
    /// Delete this path of the lower layers.
    Whiteout,
    /// Delete every lower entry inside this directory.
    Opaque,
}

#[derive(Debug)]
struct Item {
    /// The normalized path (no leading `/` or `./`); for whiteouts, the path they delete.
    path: Vec<u8>,
    /// The name as the archive spells it, for messages.
    name: String,
    action: Action,
}

/// The tree being built, layer by layer.
#[derive(Debug)]
pub(crate) struct Merge {
    tree: Tree,
    parent_meta: Metadata,
    /// Paths deleted by whiteouts so far, to explain a hard link to one of them.
    whited_out: BTreeSet<Vec<u8>>,
}

impl Merge {
    pub fn new() -> Self {
        let parent_meta = Metadata::root_owned(0o755, 0);
        Merge { tree: Tree::new(parent_meta.clone()), parent_meta, whited_out: BTreeSet::new() }
    }

    pub fn finish(self) -> Tree {
        self.tree
    }

    /// Applies the uncompressed layer `tar` (already verified) over the tree.
    pub fn apply(
        &mut self,
        image: &str,
        layer: &str,
        tar: &Blob,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), OciError> {
        let items = read_items(image, layer, tar, warn)?;
        let entry_err = |name: &str, reason: String| OciError::Entry {
            image: image.to_owned(),
            layer: layer.to_owned(),
            entry: name.to_owned(),
            reason,
        };
        for item in &items {
            match &item.action {
                Action::Whiteout => {
                    self.tree.remove(&item.path).map_err(|e| entry_err(&item.name, e.to_string()))?;
                    self.whited_out.insert(item.path.clone());
                }
                Action::Opaque => {
                    let Ok(Some(dir)) = self.tree.lookup(&item.path) else { continue };
                    let children: Vec<Vec<u8>> = self.tree.children(dir).map(|(name, _)| name.to_vec()).collect();
                    for child in children {
                        let path = join(&item.path, &child);
                        self.tree.remove(&path).map_err(|e| entry_err(&item.name, e.to_string()))?;
                        self.whited_out.insert(path);
                    }
                }
                Action::Put(_) | Action::Link(_) => {}
            }
        }
        for item in items {
            match item.action {
                Action::Put(inode) => {
                    if let Err(e) = self.tree.insert(&item.path, inode, &self.parent_meta) {
                        return Err(entry_err(&item.name, self.explain(e)));
                    }
                }
                Action::Link(ref target) => {
                    if let Err(e) = self.tree.link(&item.path, target, &self.parent_meta) {
                        return Err(entry_err(&item.name, self.explain(e)));
                    }
                }
                Action::Whiteout | Action::Opaque => {}
            }
        }
        Ok(())
    }

    /// A tree error as a sentence, saying more where the tree alone cannot.
    fn explain(&self, e: TreeError) -> String {
        match &e {
            TreeError::NotADirectory { path, through } => {
                let is_symlink = matches!(
                    self.tree.lookup(through.as_bytes()),
                    Ok(Some(id)) if matches!(self.tree.inode(id).kind, Kind::Symlink(_))
                );
                if is_symlink {
                    return format!(
                        "`{path}` goes through the symlink `{through}`; layers are never merged through symlinks"
                    );
                }
            }
            TreeError::LinkTargetMissing { path, target } if self.deleted(target.as_bytes()) => {
                return format!("hard link `{path}` points to `{target}`, which a whiteout deleted");
            }
            _ => {}
        }
        e.to_string()
    }

    /// Whether `path` or a directory above it was deleted by a whiteout.
    fn deleted(&self, path: &[u8]) -> bool {
        let Ok(names) = components(path) else { return false };
        (1..=names.len()).any(|n| self.whited_out.contains(&names[..n].join(&b'/')))
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// Reads every entry of one layer, classifying whiteouts; contents stay ranges of `tar`'s file.
fn read_items(image: &str, layer: &str, tar: &Blob, warn: &mut dyn FnMut(String)) -> Result<Vec<Item>, OciError> {
    let tar_err = |source| OciError::LayerTar { image: image.to_owned(), layer: layer.to_owned(), source };
    let mut archive = tar::Archive::new(tar.section());
    let mut items = Vec::new();
    for entry in archive.entries_with_seek().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry.path_bytes().into_owned();
        let name = lossy(&raw);
        let entry_err = |reason: String| OciError::Entry {
            image: image.to_owned(),
            layer: layer.to_owned(),
            entry: name.clone(),
            reason,
        };
        let converted = tar_entry_inode(&mut entry, &tar.file, tar.offset).map_err(|e| entry_err(e.0))?;
        let names = components(&raw).map_err(|e| entry_err(e.to_string()))?;
        let (parent, base) = match names.split_last() {
            Some((base, parent)) => (parent.join(&b'/'), *base),
            None => (Vec::new(), &b""[..]),
        };
        let action = if base == OPAQUE {
            Some((parent, Action::Opaque))
        } else if base.starts_with(AUFS_META_PREFIX) {
            warn(format!("image `{image}`, layer `{layer}`: skipping aufs metadata `{name}`"));
            None
        } else if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(entry_err(format!("`{}` is a whiteout of no valid name, which is invalid", lossy(base))));
            }
            Some((join(&parent, target), Action::Whiteout))
        } else {
            let path = names.join(&b'/');
            match converted {
                TarEntry::Inode(inode) => Some((path, Action::Put(inode))),
                TarEntry::HardLink(target) => {
                    let target = components(&target).map_err(|e| entry_err(format!("hard link target: {e}")))?;
                    Some((path, Action::Link(target.join(&b'/'))))
                }
                TarEntry::Unsupported(what) => {
                    warn(format!("image `{image}`, layer `{layer}`: skipping entry `{name}` of {what}"));
                    None
                }
            }
        };
        if let Some((path, action)) = action {
            items.push(Item { path, name, action });
        }
    }
    Ok(items)
}
