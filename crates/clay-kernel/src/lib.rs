//! Finds the kernel to boot inside a root filesystem tree, its release, and early microcode images.
//!
//! Distributions put kernels in a handful of places (the [`SEARCHED`] table); a container image usually holds one
//! kernel, sometimes under two names (Arch and Fedora keep a copy in `/boot` and in `/usr/lib/modules/<release>`),
//! which count once. The release is read from the kernel's own x86 boot header when it has one
//! (Documentation/arch/x86/boot.rst, `kernel_version`), then matched against `/lib/modules`.

mod bzimage;

use clay_tree::{lossy, Content, ContentError, InodeId, Kind, Tree};

pub use bzimage::bzimage_release;

/// Where kernels are looked for, as shown to users when none or several are found.
pub const SEARCHED: &[&str] =
    &["/boot/vmlinuz-*", "/boot/vmlinuz", "/usr/lib/modules/*/vmlinuz", "/lib/modules/*/vmlinuz", "/boot/bzImage*"];

/// Module directories, in the order a usrmerged or split-usr system may have them.
const MODULE_DIRS: &[&str] = &["usr/lib/modules", "lib/modules"];

/// A kernel found in the tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Path inside the tree, with a leading slash.
    pub path: String,
    pub content: Content,
    /// The release (`uname -r`), when it could be determined.
    pub release: Option<String>,
    /// `/lib/modules/<release>` (or `/usr/lib/modules/...`) exists in the tree.
    pub has_modules: bool,
}

/// Why no single kernel could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("no kernel found in the image; searched {searched}; install a kernel package in the image or pass --kernel PATH", searched = SEARCHED.join(", "))]
    NotFound,
    #[error("found {} kernels ({}); pick one with --kernel PATH", .0.len(), .0.join(", "))]
    Several(Vec<String>),
    #[error("--kernel {0}: no such file in the image")]
    Missing(String),
    #[error("--kernel {0}: not a regular file in the image")]
    NotAFile(String),
    #[error(transparent)]
    Read(#[from] ContentError),
    #[error(transparent)]
    Path(#[from] clay_tree::PathError),
}

/// Finds the one kernel of the image, or the one named by `--kernel`.
pub fn find_kernel(tree: &Tree, requested: Option<&str>) -> Result<Kernel, KernelError> {
    let candidates = match requested {
        Some(path) => {
            let id = tree.lookup(path.as_bytes())?.ok_or_else(|| KernelError::Missing(path.to_owned()))?;
            match &tree.inode(id).kind {
                Kind::File(c) => vec![(absolute(path.trim_start_matches('/')), c.clone())],
                _ => return Err(KernelError::NotAFile(path.to_owned())),
            }
        }
        None => candidates(tree)?,
    };
    let mut unique: Vec<(String, Content, Vec<u8>)> = Vec::new();
    for (path, content) in candidates {
        let bytes = content.read_all(&path)?;
        if !unique.iter().any(|(_, _, b)| *b == bytes) {
            unique.push((path, content, bytes));
        }
    }
    let (path, content, bytes) = match unique.len() {
        0 => return Err(KernelError::NotFound),
        1 => unique.remove(0),
        _ => return Err(KernelError::Several(unique.into_iter().map(|(p, _, _)| p).collect())),
    };
    let modules = module_releases(tree);
    let release = release_for(&path, &bytes, &modules);
    let has_modules = release.as_ref().is_some_and(|r| modules.contains(r));
    Ok(Kernel { path, content, release, has_modules })
}

/// Every regular file in the places of [`SEARCHED`], with symlinks (`/boot/vmlinuz -> vmlinuz-6.1...`) left out:
/// they only name a kernel that is also found under its real name.
fn candidates(tree: &Tree) -> Result<Vec<(String, Content)>, KernelError> {
    let mut found = Vec::new();
    let mut push = |path: String, id: InodeId| {
        if let Kind::File(c) = &tree.inode(id).kind {
            found.push((path, c.clone()));
        }
    };
    if let Some(boot) = tree.lookup(b"boot")? {
        for (name, id) in tree.children(boot) {
            let name = lossy(name);
            let kernel_name = name == "vmlinuz" || name.starts_with("vmlinuz-") || name.starts_with("bzImage");
            let leftover = name.ends_with(".old") || name.ends_with(".bak") || name.contains("-rescue-");
            if kernel_name && !leftover {
                push(format!("/boot/{name}"), id);
            }
        }
    }
    for dir in MODULE_DIRS {
        for (release, release_dir) in module_dirs(tree, dir) {
            if let Some(id) = tree.children(release_dir).find(|(n, _)| *n == b"vmlinuz").map(|(_, id)| id) {
                push(format!("/{dir}/{release}/vmlinuz"), id);
            }
        }
    }
    Ok(found)
}

/// Releases with a module directory, from both `/usr/lib/modules` and `/lib/modules`, deduplicated.
pub fn module_releases(tree: &Tree) -> Vec<String> {
    let mut releases: Vec<String> =
        MODULE_DIRS.iter().flat_map(|d| module_dirs(tree, d)).map(|(release, _)| release).collect();
    releases.sort();
    releases.dedup();
    releases
}

/// Subdirectories of a module directory; a symlinked `/lib` (usrmerge) is not followed, `/usr/lib` covers it.
fn module_dirs(tree: &Tree, dir: &str) -> Vec<(String, InodeId)> {
    let Ok(Some(id)) = tree.lookup(dir.as_bytes()) else { return Vec::new() };
    tree.children(id).filter(|(_, child)| tree.inode(*child).kind.is_dir()).map(|(n, c)| (lossy(n), c)).collect()
}

/// The release of a kernel: from its boot header, else from its path, else the only module directory.
fn release_for(path: &str, bytes: &[u8], modules: &[String]) -> Option<String> {
    if let Some(r) = bzimage_release(bytes) {
        return Some(r);
    }
    for dir in MODULE_DIRS {
        if let Some(rest) = path.strip_prefix(&format!("/{dir}/")) {
            return rest.split('/').next().map(str::to_owned);
        }
    }
    if let Some(suffix) = path.strip_prefix("/boot/vmlinuz-") {
        if modules.iter().any(|m| m == suffix) {
            return Some(suffix.to_owned());
        }
    }
    match modules {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// Early microcode archives in `/boot` (Arch's `intel-ucode.img`/`amd-ucode.img`, `early_ucode.cpio`): uncompressed
/// cpio archives holding `kernel/x86/microcode/*`, which must come first in the initramfs, uncompressed.
pub fn microcode_images(tree: &Tree) -> Vec<(String, Content)> {
    let Ok(Some(boot)) = tree.lookup(b"boot") else { return Vec::new() };
    tree.children(boot)
        .filter_map(|(name, id)| {
            let name = lossy(name);
            let is_ucode = name.contains("ucode") && (name.ends_with(".img") || name.ends_with(".cpio"));
            match (&tree.inode(id).kind, is_ucode) {
                (Kind::File(c), true) => Some((format!("/boot/{name}"), c.clone())),
                _ => None,
            }
        })
        .collect()
}

fn absolute(path: &str) -> String {
    format!("/{path}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
