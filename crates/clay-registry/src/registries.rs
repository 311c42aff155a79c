//! registries.conf (containers-registries.conf(5)), as podman, buildah and skopeo read it for `docker://` images.
//!
//! A `[[registry]]` table, chosen by the longest `prefix` that the image's name starts with, can block the image,
//! mark its registry `insecure` (plain HTTP and any certificate allowed), move it to another `location`, and put
//! mirrors before it that a pull tries first. The files are podman's: the one named by `--registries-conf` or
//! `$CONTAINERS_REGISTRIES_CONF`, else `~/.config/containers/registries.conf` if it exists, else
//! `/etc/containers/registries.conf`; then the drop-ins (`*.conf`, in name order) of
//! `/etc/containers/registries.conf.d` (unless the user's file is the one read) and
//! `~/.config/containers/registries.conf.d`. A drop-in's table replaces the one with the same prefix.
//!
//! Short names are not resolved through the file: as with skopeo's `docker://`, `alpine` is
//! `docker.io/library/alpine`, so `unqualified-search-registries`, `short-name-mode` and `[aliases]` are accepted
//! and left unused. Mirrors and locations apply to pulls only, as in podman; `insecure` applies to pushes too.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{RegistryError, Result};
use crate::reference::Reference;

/// The system's file.
const SYSTEM_FILE: &str = "/etc/containers/registries.conf";
/// The system's drop-in directory.
const SYSTEM_DIR: &str = "/etc/containers/registries.conf.d";
/// The user's file, under `$HOME`.
const USER_FILE: &str = ".config/containers/registries.conf";
/// The user's drop-in directory, under `$HOME`.
const USER_DIR: &str = ".config/containers/registries.conf.d";
/// The variable podman reads for another file.
pub const REGISTRIES_CONF_VAR: &str = "CONTAINERS_REGISTRIES_CONF";

/// What registries.conf says about registries, merged from every file read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// The tables by prefix (one per prefix, in prefix order as podman keeps them).
    registries: BTreeMap<String, RegistryTable>,
    /// The files read, in order.
    files: Vec<PathBuf>,
}

/// One `[[registry]]` table, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryTable {
    /// What the image's name starts with: `host[:port][/path]`, or `*.domain` for every subdomain.
    pub prefix: String,
    /// Where images under the prefix really are; empty for a wildcard prefix, whose images stay where they are.
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    /// Mirrors only for references pinned by digest (`mirror-by-digest-only`).
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
    /// The file the table is from.
    pub origin: PathBuf,
}

/// A `[[registry.mirror]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    pub pull_from: MirrorUse,
}

/// A mirror's `pull-from-mirror`: which pulls it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorUse {
    All,
    DigestOnly,
    TagOnly,
}

/// One place to try a pull at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSource {
    /// The image there.
    pub reference: Reference,
    /// Its table or mirror says `insecure = true`.
    pub insecure: bool,
}

/// Where to pull an image from: mirrors to try in turn, then the primary location, which is the image itself unless
/// a table moved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSources {
    pub mirrors: Vec<PullSource>,
    pub primary: PullSource,
}

impl RegistriesConf {
    /// No configuration: every image is pulled from where its name says, with TLS verified.
    pub fn none() -> Self {
        Self::default()
    }

    /// podman's files, with `$HOME` and `$CONTAINERS_REGISTRIES_CONF` from the process environment; `explicit` (the
    /// `--registries-conf` option) comes before the variable.
    pub fn from_env(explicit: Option<&Path>) -> Result<Self> {
        Self::from_vars(explicit, |name| std::env::var_os(name))
    }

    /// podman's files, with `$HOME` and `$CONTAINERS_REGISTRIES_CONF` from `var`.
    pub fn from_vars(explicit: Option<&Path>, var: impl Fn(&str) -> Option<OsString>) -> Result<Self> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let explicit = explicit.map(Path::to_owned).or_else(|| var(REGISTRIES_CONF_VAR));
        let home = var("HOME");
        Self::load(explicit.as_deref(), home.as_deref(), Path::new(SYSTEM_FILE), Path::new(SYSTEM_DIR))
    }

    /// podman's order, with the system's file and drop-in directory given. A file named explicitly must exist;
    /// the others are read if they do.
    pub(crate) fn load(
        explicit: Option<&Path>,
        home: Option<&Path>,
        system_file: &Path,
        system_dir: &Path,
    ) -> Result<Self> {
        let user_file = home.map(|h| h.join(USER_FILE)).filter(|f| f.exists());
        let user_dir = home.map(|h| h.join(USER_DIR));
        let (main, dirs) = match (explicit, user_file) {
            (Some(file), _) => (file.to_owned(), vec![Some(system_dir.to_owned()), user_dir]),
            // The user's file replaces the system's, and its drop-ins too.
            (None, Some(file)) => (file, vec![user_dir]),
            (None, None) => (system_file.to_owned(), vec![Some(system_dir.to_owned()), user_dir]),
        };
        let mut conf = match std::fs::read_to_string(&main) {
            Ok(text) => Self::parse(&text, &main, false)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => Self::none(),
            Err(e) => return Err(unusable(&main, &format!("reading it failed: {e}"))),
        };
        for dir in dirs.into_iter().flatten() {
            for file in drop_ins(&dir)? {
                let text =
                    std::fs::read_to_string(&file).map_err(|e| unusable(&file, &format!("reading it failed: {e}")))?;
                conf.merge(Self::parse(&text, &file, true)?);
            }
        }
        Ok(conf)
    }

    /// The configuration in `text`, the content of the file `origin`. A drop-in must use version 2 of the format.
    pub fn parse(text: &str, origin: &Path, drop_in: bool) -> Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            unusable(origin, &format!("{at}{}", e.message().trim_end()))
        })?;
        let v1 = file.registries.as_ref().is_some_and(V1::is_set);
        let tables = if v1 {
            if drop_in {
                return Err(unusable(origin, "a drop-in must use version 2 of the format ([[registry]] tables)"));
            }
            if !file.registry.is_empty() || file.unqualified_search_registries.is_some() {
                return Err(unusable(
                    origin,
                    "it mixes version 1 ([registries.search], [registries.insecure], [registries.block]) with \
                     version 2 ([[registry]] tables, unqualified-search-registries); use one",
                ));
            }
            file.registries.unwrap_or_default().into_v2()
        } else {
            file.registry
        };
        let mut conf = Self { registries: BTreeMap::new(), files: vec![origin.to_owned()] };
        let mut tables_read: Vec<RegistryTable> = Vec::new();
        for raw in tables {
            let table = raw.check(origin)?;
            // One registry named by several tables (for several prefixes) must be as secure in all of them.
            if let Some(other) = tables_read.iter().find(|o| o.place() == table.place()) {
                let setting = match (other.insecure != table.insecure, other.blocked != table.blocked) {
                    (true, _) => Some("insecure"),
                    (false, true) => Some("blocked"),
                    (false, false) => None,
                };
                if let Some(setting) = setting {
                    let place = table.place();
                    let reason =
                        format!("the registry `{place}` is in several tables with different `{setting}` settings");
                    return Err(unusable(origin, &reason));
                }
            }
            tables_read.push(table);
        }
        for table in tables_read {
            // Of two tables with the same prefix, the first is the one podman uses.
            conf.registries.entry(table.prefix.clone()).or_insert(table);
        }
        Ok(conf)
    }

    /// Adds a later file's tables: each replaces the table with its prefix.
    fn merge(&mut self, later: Self) {
        self.registries.extend(later.registries);
        self.files.extend(later.files);
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The table whose prefix is the longest that `name` (`host[:port]`, `host/path` or a whole reference) starts
    /// with.
    pub fn table_for(&self, name: &str) -> Option<&RegistryTable> {
        let mut best: Option<&RegistryTable> = None;
        for table in self.registries.values() {
            if matched_len(name, &table.prefix).is_some() && best.is_none_or(|b| table.prefix.len() > b.prefix.len()) {
                best = Some(table);
            }
        }
        best
    }

    /// Whether the registry at `host` (`host[:port]`) is marked `insecure`.
    pub fn insecure(&self, host: &str) -> bool {
        self.table_for(host).is_some_and(|t| t.insecure)
    }

    /// Where to pull `reference` from. An image whose table is `blocked` is refused.
    pub fn pull_sources(&self, reference: &Reference) -> Result<PullSources> {
        let Some(table) = self.table_for(&reference.name()) else {
            return Ok(PullSources {
                mirrors: Vec::new(),
                primary: PullSource { reference: reference.clone(), insecure: false },
            });
        };
        if table.blocked {
            return Err(RegistryError::Blocked {
                image: reference.to_string(),
                prefix: table.prefix.clone(),
                origin: table.origin.clone(),
            });
        }
        let by_digest = reference.digest.is_some();
        let mut mirrors = Vec::new();
        for mirror in &table.mirrors {
            let serves = match mirror.pull_from {
                _ if table.mirror_by_digest_only => by_digest,
                MirrorUse::All => true,
                MirrorUse::DigestOnly => by_digest,
                MirrorUse::TagOnly => !by_digest,
            };
            if serves {
                mirrors.push(PullSource {
                    reference: table.moved(reference, &mirror.location)?,
                    insecure: mirror.insecure,
                });
            }
        }
        let primary = PullSource { reference: table.moved(reference, &table.location)?, insecure: table.insecure };
        Ok(PullSources { mirrors, primary })
    }
}

impl RegistryTable {
    /// The registry the table is about: its location, or a wildcard table's prefix.
    fn place(&self) -> &str {
        if self.location.is_empty() {
            &self.prefix
        } else {
            &self.location
        }
    }

    /// `reference` with this table's prefix replaced by `location` (unchanged when `location` is empty: a wildcard
    /// table's own place).
    fn moved(&self, reference: &Reference, location: &str) -> Result<Reference> {
        if location.is_empty() {
            return Ok(reference.clone());
        }
        let written = reference.to_string();
        let moved = match matched_len(&written, &self.prefix) {
            Some(len) => format!("{location}{}", &written[len..]),
            None => written.clone(),
        };
        Reference::parse(&moved).map_err(|e| {
            unusable(&self.origin, &format!("its table for `{}` makes `{written}` into `{moved}`: {e}", self.prefix))
        })
    }
}

/// How much of `name` the prefix covers, if it matches: all of it, or up to a `:`, `/` or `@`. A wildcard prefix
/// `*.domain` matches any host ending in `.domain`.
fn matched_len(name: &str, prefix: &str) -> Option<usize> {
    let end = match prefix.strip_prefix('*') {
        Some(domain) => {
            let at = name.find(domain)?;
            if name[..at].contains('/') {
                return None;
            }
            at + domain.len()
        }
        None => {
            name.strip_prefix(prefix)?;
            prefix.len()
        }
    };
    match name.as_bytes().get(end) {
        None | Some(b':' | b'/' | b'@') => Some(end),
        Some(_) => None,
    }
}

/// The `*.conf` files of a drop-in directory, in name order; none if it does not exist.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unusable(dir, &format!("listing it failed: {e}"))),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| unusable(dir, &format!("listing it failed: {e}")))?.path();
        if path.extension().is_some_and(|e| e == "conf") && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn unusable(path: &Path, reason: &str) -> RegistryError {
    RegistryError::RegistriesConf { path: path.to_owned(), reason: reason.to_owned() }
}

/// A file as written: version 2, with version 1's tables beside it to convert. Keys clay does not use (aliases,
/// search registries, credential helpers) are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    registry: Vec<RawTable>,
    #[serde(default)]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registries: Option<V1>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawTable {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
    #[serde(default)]
    pull_from_mirror: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: String,
}

/// Version 1: lists of registries to search, to reach insecurely and to block.
#[derive(Debug, Default, Deserialize)]
struct V1 {
    #[serde(default)]
    search: V1List,
    #[serde(default)]
    insecure: V1List,
    #[serde(default)]
    block: V1List,
}

#[derive(Debug, Default, Deserialize)]
struct V1List {
    #[serde(default)]
    registries: Vec<String>,
}

impl V1 {
    fn is_set(&self) -> bool {
        [&self.search, &self.insecure, &self.block].iter().any(|l| !l.registries.is_empty())
    }

    /// A table per registry named in `block` or `insecure`, as podman converts them.
    fn into_v2(self) -> Vec<RawTable> {
        let mut tables: Vec<RawTable> = Vec::new();
        let lists = [(self.block.registries, true), (self.insecure.registries, false)];
        for (registries, blocking) in lists {
            for location in registries {
                let at = match tables.iter().position(|t| t.location == location) {
                    Some(at) => at,
                    None => {
                        tables.push(RawTable { location, ..RawTable::default() });
                        tables.len() - 1
                    }
                };
                if blocking {
                    tables[at].blocked = true;
                } else {
                    tables[at].insecure = true;
                }
            }
        }
        tables
    }
}

impl RawTable {
    /// The table, checked as podman checks it.
    fn check(self, origin: &Path) -> Result<RegistryTable> {
        let bad = |reason: String| unusable(origin, &reason);
        let location = trimmed_location(&self.location).map_err(&bad)?;
        let prefix = match trimmed_location(&self.prefix).map_err(&bad)? {
            p if p.is_empty() && location.is_empty() => {
                return Err(bad("a [[registry]] table has neither `prefix` nor `location`".to_owned()))
            }
            p if p.is_empty() => location.clone(),
            p => p,
        };
        if let Some(domain) = prefix.strip_prefix("*.") {
            if domain.is_empty() || prefix.contains(['/', '@', ':']) {
                return Err(bad(format!("the wildcard prefix `{prefix}` must be `*.DOMAIN`, with no port or path")));
            }
        } else if location.is_empty() {
            return Err(bad(format!(
                "the table for `{prefix}` has no `location` (only a `*.DOMAIN` prefix may omit it)"
            )));
        }
        if !self.pull_from_mirror.is_empty() {
            return Err(bad(format!("`pull-from-mirror` belongs in a [[registry.mirror]] table, not in `{prefix}`'s")));
        }
        let mut mirrors = Vec::new();
        for raw in self.mirror {
            let mirror_location = trimmed_location(&raw.location).map_err(&bad)?;
            if mirror_location.is_empty() {
                return Err(bad(format!("a mirror of `{prefix}` has no `location`")));
            }
            let pull_from = match raw.pull_from_mirror.as_str() {
                "" | "all" => MirrorUse::All,
                "digest-only" => MirrorUse::DigestOnly,
                "tag-only" => MirrorUse::TagOnly,
                other => {
                    return Err(bad(format!(
                        "the mirror `{mirror_location}` has `pull-from-mirror = \"{other}\"`; it must be `all`, \
                         `digest-only` or `tag-only`"
                    )))
                }
            };
            if self.mirror_by_digest_only && !raw.pull_from_mirror.is_empty() {
                return Err(bad(format!(
                    "`{prefix}` sets both `mirror-by-digest-only` and its mirror `{mirror_location}`'s \
                     `pull-from-mirror`; keep one"
                )));
            }
            mirrors.push(Mirror { location: mirror_location, insecure: raw.insecure, pull_from });
        }
        Ok(RegistryTable {
            prefix,
            location,
            insecure: self.insecure,
            blocked: self.blocked,
            mirror_by_digest_only: self.mirror_by_digest_only,
            mirrors,
            origin: origin.to_owned(),
        })
    }
}

/// A `location` or `prefix` as podman takes it: trailing `/` removed, no URL scheme. Whether it may be empty is the
/// caller's to check.
fn trimmed_location(value: &str) -> std::result::Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!("`{value}` has a URL scheme; write it without one (and `insecure = true` for plain HTTP)"));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests;
