//! Reads a root filesystem into a [`Tree`]: a host directory or a root filesystem tarball.
//!
//! Readers never write to the host and never follow symlinks on it: a directory is walked with `lstat`, a
//! tarball is parsed in place (or from an unlinked spill file when compressed) and merged in memory.

mod dir;
mod spec;
mod tarball;

use std::io;
use std::path::PathBuf;

pub use dir::read_dir;
pub use spec::SourceSpec;
pub use tarball::read_tar;

/// Why a source could not be read. Messages name the file or entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("`{0}` does not exist")]
    NotFound(PathBuf),
    #[error("`{0}` is a directory, not a tarball; pass it without `tar:`")]
    TarIsDirectory(PathBuf),
    #[error("`{0}` is not a directory")]
    NotADirectory(PathBuf),
    #[error("tarball `{archive}`: entry `{entry}`: {reason}")]
    Entry { archive: PathBuf, entry: String, reason: String },
    #[error("tarball `{archive}` is damaged: {source}")]
    Tar { archive: PathBuf, source: io::Error },
    #[error("cannot decompress `{archive}`: {source}")]
    Decompress { archive: PathBuf, source: io::Error },
    #[error("`{spec}`: the {transport} transport is not supported yet; use a directory or tar:FILE")]
    Unsupported { spec: String, transport: String },
    #[error("`{0}`: a source needs a path after the transport, e.g. tar:rootfs.tar")]
    Empty(String),
    #[error(transparent)]
    Tree(#[from] clay_tree::TreeError),
}

/// Something skipped or changed while reading, worth one line to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

/// Reads the source named by `spec` into a tree.
pub fn read(spec: &SourceSpec, warn: &mut dyn FnMut(Warning)) -> Result<clay_tree::Tree, SourceError> {
    match spec {
        SourceSpec::Dir(path) => read_dir(path, warn),
        SourceSpec::Tar(path) => read_tar(path, warn),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
