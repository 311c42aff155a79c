//! Resolves the kernel modules the init needs into the exact module files to load, dependencies first,
//! decompressed, so the init only has to call `finit_module` on each in turn.
//!
//! Everything is read from the image's own `/lib/modules/<release>` (or `/usr/lib/modules/<release>`), as
//! modprobe would on the booted system: `modules.builtin` for modules compiled into the kernel, `modules.dep`
//! when depmod has run, otherwise each module's own `.modinfo` (`depends=`), which is all a distribution's kernel
//! package ships (Debian's runs depmod at install time). `softdep=` pre and post modules are loaded around their
//! module when present. Names that are no module's file name are looked up as aliases (`crc32c`, `fs-ext4`),
//! from `modules.alias` or, without it, from every module's modinfo, then from `modules.builtin.modinfo`.
//! Module names compare with `-` and `_` equal, as the kernel's own names do.

mod elf;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use clay_tree::{lossy, Content, ContentError, InodeId, Kind, Tree};

pub use elf::{modinfo, ElfError};

/// Where module directories live, in the order they are tried; `/lib` is often a symlink to `usr/lib`.
const MODULE_ROOTS: &[&str] = &["lib/modules", "usr/lib/modules"];

/// The largest module we accept, decompressed; the biggest in-tree modules are a few tens of MiB.
pub const MAX_MODULE_SIZE: u64 = 512 << 20;

/// Module file names, with the compression each implies.
const EXTENSIONS: &[(&str, Compression)] = &[
    (".ko", Compression::None),
    (".ko.xz", Compression::Xz),
    (".ko.zst", Compression::Zstd),
    (".ko.gz", Compression::Gzip),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Xz,
    Zstd,
    Gzip,
}

/// One module the init wants. A required one that cannot be found is an error; an optional one is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want<'a> {
    /// A module name (`dm-verity` and `dm_verity` are the same module) or an alias (`fs-ext4`).
    pub name: &'a str,
    pub required: bool,
}

impl<'a> Want<'a> {
    pub fn required(name: &'a str) -> Self {
        Want { name, required: true }
    }

    pub fn optional(name: &'a str) -> Self {
        Want { name, required: false }
    }
}

/// A module file to load.
#[derive(Clone, PartialEq, Eq)]
pub struct Module {
    /// The module's name as the kernel knows it, with `_` for `-` (`dm_verity`).
    pub name: String,
    /// The file's path in the tree, with a leading slash (`/lib/modules/<release>/kernel/.../dm-verity.ko.xz`).
    pub path: String,
    /// The decompressed ELF object, ready for `finit_module`.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What the wanted modules come to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Module files in load order: every module after the modules it depends on, then in the order wanted.
    pub load: Vec<Module>,
    /// Wanted modules and soft dependencies compiled into the kernel (normalized names): nothing to load.
    pub builtin: Vec<String>,
    /// Optional modules and soft dependencies that are neither built in nor present, as they were named.
    pub missing_optional: Vec<String>,
}

/// Why the wanted modules cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error(
        "the kernel {release} has no module `{module}`: the image has no /lib/modules/{release} directory; install \
         the kernel's modules package in the image"
    )]
    NoModuleDir { release: String, module: String },
    #[error(
        "the kernel {release} has no module `{module}`: it is neither built in (modules.builtin) nor in {dir}; \
         install the kernel's modules package in the image"
    )]
    Missing { release: String, module: String, dir: String },
    #[error(
        "the module `{module}` ({path}) depends on `{dependency}`, which is neither built in (modules.builtin) nor in \
         {dir}; reinstall the kernel's modules package in the image"
    )]
    MissingDependency { module: String, path: String, dependency: String, dir: String },
    #[error("cannot decompress the module {path}: {source}")]
    Decompress { path: String, source: io::Error },
    #[error("the module {path} is larger than {MAX_MODULE_SIZE} bytes")]
    TooLarge { path: String },
    #[error("{path} is not a kernel module: {source}")]
    NotAModule { path: String, source: ElfError },
    #[error(transparent)]
    Read(#[from] ContentError),
}

/// The `-`/`_`-insensitive form of a module name or alias, as the kernel and modprobe compare them.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Resolves `wanted` against the modules of kernel `release` in `tree`.
pub fn resolve(tree: &Tree, release: &str, wanted: &[Want<'_>]) -> Result<Resolution, KmodError> {
    let Some(dir) = ModuleDir::find(tree, release)? else {
        let mut res = Resolution::default();
        for want in wanted {
            if want.required {
                return Err(KmodError::NoModuleDir { release: release.to_owned(), module: want.name.to_owned() });
            }
            push_unique(&mut res.missing_optional, want.name);
        }
        return Ok(res);
    };
    let mut r = Resolver { release, dir, seen: BTreeSet::new(), loaded: BTreeMap::new(), res: Resolution::default() };
    for want in wanted {
        r.run(Task::Lookup { name: want.name.to_owned(), required: want.required, by: None })?;
    }
    Ok(r.res)
}

/// The facts of one `/lib/modules/<release>` directory that resolution needs.
struct ModuleDir {
    /// The directory's path in the tree, with a leading slash, for module paths and messages.
    path: String,
    /// Module files by normalized name: (path relative to the directory, content, compression).
    files: BTreeMap<String, (String, Content, Compression)>,
    builtin: BTreeSet<String>,
    /// Normalized alias to module name, from `modules.builtin.modinfo`.
    builtin_aliases: BTreeMap<String, BTreeSet<String>>,
    /// Module path (relative) to the paths `modules.dep` lists for it; `None` without `modules.dep`.
    deps: Option<BTreeMap<String, Vec<String>>>,
    /// Normalized alias to module names, read from `modules.alias` or gathered on first use.
    aliases: Option<BTreeMap<String, BTreeSet<String>>>,
}

impl ModuleDir {
    fn find(tree: &Tree, release: &str) -> Result<Option<ModuleDir>, KmodError> {
        if release.is_empty() || release == "." || release == ".." || release.contains('/') {
            return Ok(None);
        }
        let Some((path, id)) = MODULE_ROOTS.iter().find_map(|root| {
            let path = format!("{root}/{release}");
            let id = tree.resolve(path.as_bytes())?;
            tree.inode(id).kind.is_dir().then(|| (format!("/{path}"), id))
        }) else {
            return Ok(None);
        };
        // A text file of the directory; absent (or not a file) is `None`, unreadable an error.
        let text = |name: &str| -> Result<Option<String>, ContentError> {
            let file = format!("{path}/{name}");
            match tree.resolve(file.as_bytes()).map(|id| &tree.inode(id).kind) {
                Some(Kind::File(c)) => Ok(Some(lossy(&c.read_all(&file)?))),
                _ => Ok(None),
            }
        };
        let builtin = text("modules.builtin")?
            .unwrap_or_default()
            .lines()
            .filter_map(|l| module_name(l.trim()).map(|(name, _)| name))
            .collect();
        let mut builtin_aliases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for entry in text("modules.builtin.modinfo")?.unwrap_or_default().split('\0') {
            if let Some((module, alias)) = entry.split_once(".alias=") {
                builtin_aliases.entry(normalize(alias)).or_default().insert(normalize(module));
            }
        }
        let deps = text("modules.dep")?.map(|dep| {
            let mut map = BTreeMap::new();
            for line in dep.lines() {
                if let Some((module, list)) = line.split_once(':') {
                    let list = list.split_whitespace().map(|p| relative(&path, p).to_owned()).collect();
                    map.insert(relative(&path, module.trim()).to_owned(), list);
                }
            }
            map
        });
        let aliases = text("modules.alias")?.map(|text| {
            let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for line in text.lines() {
                let mut words = line.split_whitespace();
                if let (Some("alias"), Some(alias), Some(module)) = (words.next(), words.next(), words.next()) {
                    map.entry(normalize(alias)).or_default().insert(normalize(module));
                }
            }
            map
        });
        let mut files = BTreeMap::new();
        collect_files(tree, id, &path, &mut files);
        Ok(Some(ModuleDir { path, files, builtin, builtin_aliases, deps, aliases }))
    }
}

/// A path of `modules.dep` relative to the module directory (old depmods wrote absolute paths).
fn relative<'a>(dir: &str, path: &'a str) -> &'a str {
    for root in MODULE_ROOTS {
        let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(root)) else { continue };
        if let Some(rest) = rest.strip_prefix('/').and_then(|r| r.split_once('/')).map(|(_, r)| r) {
            return rest;
        }
    }
    path.strip_prefix(dir).and_then(|p| p.strip_prefix('/')).unwrap_or(path)
}

/// The normalized module name and compression of a module file name or path, `None` for other files.
fn module_name(path: &str) -> Option<(String, Compression)> {
    let file = path.rsplit('/').next().unwrap_or(path);
    EXTENSIONS.iter().find_map(|(ext, compression)| {
        let stem = file.strip_suffix(ext)?;
        (!stem.is_empty()).then(|| (normalize(stem), *compression))
    })
}

/// Indexes every module file below `dir`. Symlinked directories (`build`, `source`) are not entered; a symlinked
/// module file counts with its target's content. When a name occurs twice, depmod's order decides: `updates/`
/// first, then the bytewise first path.
fn collect_files(
    tree: &Tree,
    dir: InodeId,
    dir_path: &str,
    files: &mut BTreeMap<String, (String, Content, Compression)>,
) {
    let rank = |rel: &str| (!rel.starts_with("updates/"), rel.to_owned());
    let mut stack = vec![(String::new(), dir)];
    while let Some((prefix, id)) = stack.pop() {
        for (name, child) in tree.children(id) {
            let rel = format!("{prefix}{}", lossy(name));
            let content = match &tree.inode(child).kind {
                Kind::Directory(_) => {
                    stack.push((format!("{rel}/"), child));
                    continue;
                }
                Kind::File(c) => c.clone(),
                Kind::Symlink(_) if module_name(&rel).is_some() => {
                    match tree.resolve(format!("{dir_path}/{rel}").as_bytes()).map(|t| &tree.inode(t).kind) {
                        Some(Kind::File(c)) => c.clone(),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            let Some((module, compression)) = module_name(&rel) else { continue };
            let better = files.get(&module).is_none_or(|(old, _, _)| rank(&rel) < rank(old));
            if better {
                files.insert(module, (rel, content, compression));
            }
        }
    }
}

/// A step of the depth-first walk, kept on an explicit stack so no input can exhaust the call stack.
enum Task {
    /// Find a name (module or alias) and enter what it names; `by` is the module that depends on it.
    Lookup { name: String, required: bool, by: Option<String> },
    /// Read a present module and schedule its dependencies, itself, then its post soft dependencies.
    Enter(String),
    /// Every dependency is in the load list: add the module.
    Emit(String),
}

/// What a name stands for.
enum Found {
    Builtin(String),
    Modules(Vec<String>),
    Missing,
}

/// A module read from the tree, with the names of its dependencies and its pre and post soft dependencies.
struct Loaded {
    module: Module,
    deps: Vec<String>,
    pre: Vec<String>,
    post: Vec<String>,
}

struct Resolver<'a> {
    release: &'a str,
    dir: ModuleDir,
    /// Modules entered so far, emitted or not.
    seen: BTreeSet<String>,
    /// Modules entered but not yet emitted.
    loaded: BTreeMap<String, Module>,
    res: Resolution,
}

impl Resolver<'_> {
    fn run(&mut self, first: Task) -> Result<(), KmodError> {
        let mut stack = vec![first];
        while let Some(task) = stack.pop() {
            match task {
                Task::Lookup { name, required, by } => match self.find(&name) {
                    Found::Builtin(module) => push_unique(&mut self.res.builtin, &module),
                    Found::Modules(modules) => stack.extend(modules.into_iter().rev().map(Task::Enter)),
                    Found::Missing if !required => push_unique(&mut self.res.missing_optional, &name),
                    Found::Missing => return Err(self.missing(name, by)),
                },
                Task::Enter(name) => {
                    if !self.seen.insert(name.clone()) {
                        // Already loaded, or a dependency cycle: the kernel could not load a cycle anyway.
                        continue;
                    }
                    let Loaded { module, deps, pre, post } = self.read(&name)?;
                    self.loaded.insert(name.clone(), module);
                    let soft = |name: String| Task::Lookup { name, required: false, by: None };
                    let hard = |dep: String| Task::Lookup { name: dep, required: true, by: Some(name.clone()) };
                    // Pushed in reverse: pre soft dependencies, dependencies, the module, post soft dependencies.
                    stack.extend(post.into_iter().rev().map(soft));
                    stack.push(Task::Emit(name.clone()));
                    stack.extend(deps.into_iter().rev().map(hard));
                    stack.extend(pre.into_iter().rev().map(soft));
                }
                Task::Emit(name) => {
                    if let Some(module) = self.loaded.remove(&name) {
                        self.res.load.push(module);
                    }
                }
            }
        }
        Ok(())
    }

    fn find(&mut self, name: &str) -> Found {
        let key = normalize(name);
        if self.dir.builtin.contains(&key) {
            return Found::Builtin(key);
        }
        if self.dir.files.contains_key(&key) {
            return Found::Modules(vec![key]);
        }
        let files = &self.dir.files;
        let aliases = self.dir.aliases.get_or_insert_with(|| scan_aliases(files));
        let modules: Vec<String> =
            aliases.get(&key).into_iter().flatten().filter(|m| files.contains_key(*m)).cloned().collect();
        if !modules.is_empty() {
            return Found::Modules(modules);
        }
        match self.dir.builtin_aliases.get(&key).and_then(|m| m.first()) {
            Some(module) => Found::Builtin(module.clone()),
            None => Found::Missing,
        }
    }

    fn missing(&self, name: String, by: Option<String>) -> KmodError {
        let dir = self.dir.path.clone();
        match by {
            None => KmodError::Missing { release: self.release.to_owned(), module: name, dir },
            Some(module) => {
                let path = match self.loaded.get(&module) {
                    Some(m) => m.path.clone(),
                    None => dir.clone(),
                };
                KmodError::MissingDependency { module, path, dependency: name, dir }
            }
        }
    }

    /// Reads a present module and the names it depends on.
    fn read(&self, name: &str) -> Result<Loaded, KmodError> {
        let Some((rel, content, compression)) = self.dir.files.get(name) else {
            // find() only hands out names of present files.
            return Err(self.missing(name.to_owned(), None));
        };
        let path = format!("{}/{rel}", self.dir.path);
        let bytes = decompress(content, *compression, &path)?;
        let info = modinfo(&bytes).map_err(|source| KmodError::NotAModule { path: path.clone(), source })?;
        let deps = match self.dir.deps.as_ref().and_then(|d| d.get(rel)) {
            // modprobe loads the listed modules last to first.
            Some(list) => list.iter().rev().filter_map(|p| module_name(p)).map(|(n, _)| n).collect(),
            None => info
                .iter()
                .filter(|(k, _)| k == "depends")
                .flat_map(|(_, v)| v.split(','))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        // `softdep=pre: a b post: c`; a module may carry several.
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        for (_, value) in info.iter().filter(|(k, _)| k == "softdep") {
            let mut after = None;
            for word in value.split_whitespace() {
                match (word, after) {
                    ("pre:", _) => after = Some(false),
                    ("post:", _) => after = Some(true),
                    (_, Some(false)) => pre.push(word.to_owned()),
                    (_, Some(true)) => post.push(word.to_owned()),
                    (_, None) => {}
                }
            }
        }
        Ok(Loaded { module: Module { name: name.to_owned(), path, bytes }, deps, pre, post })
    }
}

/// Aliases of every module, from each module's modinfo, for kernels whose package ships no `modules.alias`.
/// Wildcard aliases (device ids) are left out: only exact names are looked up. Unreadable modules are skipped
/// here; they fail with their own error if they are ever loaded.
fn scan_aliases(files: &BTreeMap<String, (String, Content, Compression)>) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, (rel, content, compression)) in files {
        let Ok(bytes) = decompress(content, *compression, rel) else { continue };
        let Ok(info) = modinfo(&bytes) else { continue };
        for (_, alias) in info.into_iter().filter(|(k, _)| k == "alias") {
            if !alias.contains(['*', '?', '[']) {
                map.entry(normalize(&alias)).or_default().insert(name.clone());
            }
        }
    }
    map
}

/// The bytes of a module file, decompressed, at most [`MAX_MODULE_SIZE`].
fn decompress(content: &Content, compression: Compression, path: &str) -> Result<Vec<u8>, KmodError> {
    let reader = content.reader(path)?;
    let mut inner: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(reader),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(reader)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|source| KmodError::Decompress { path: path.to_owned(), source })?,
        ),
    };
    let mut bytes = Vec::new();
    inner.by_ref().take(MAX_MODULE_SIZE + 1).read_to_end(&mut bytes).map_err(|source| match compression {
        Compression::None => KmodError::Read(ContentError::Read { path: path.to_owned(), source }),
        _ => KmodError::Decompress { path: path.to_owned(), source },
    })?;
    if bytes.len() as u64 > MAX_MODULE_SIZE {
        return Err(KmodError::TooLarge { path: path.to_owned() });
    }
    Ok(bytes)
}

fn push_unique(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_owned());
    }
}

#[cfg(test)]
mod tests;
