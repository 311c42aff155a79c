//! `SOURCE` as the command line spells it: a directory, or `TRANSPORT:REF` as skopeo spells transports.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::SourceError;

/// Where a root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A directory holding the root filesystem (`dir:PATH` or a plain path).
    Dir(PathBuf),
    /// A root filesystem tarball, plain or compressed with gzip, zstd or xz (`tar:PATH`).
    Tar(PathBuf),
}

/// Transports of the image world that later work will read; named so the error can say "not yet".
const IMAGE_TRANSPORTS: &[&str] = &["oci", "oci-archive", "docker-archive", "docker", "containers-storage"];

impl FromStr for SourceSpec {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let nonempty = |rest: &str| {
            if rest.is_empty() {
                Err(SourceError::Empty(s.to_owned()))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if let Some(rest) = s.strip_prefix("dir:") {
            return Ok(SourceSpec::Dir(nonempty(rest)?));
        }
        if let Some(rest) = s.strip_prefix("tar:") {
            return Ok(SourceSpec::Tar(nonempty(rest)?));
        }
        if let Some((transport, _)) = s.split_once(':') {
            if IMAGE_TRANSPORTS.contains(&transport) {
                return Err(SourceError::Unsupported { spec: s.to_owned(), transport: format!("{transport}:") });
            }
        }
        Ok(plain(Path::new(s)))
    }
}

/// A plain path: a directory, else a file read as a tarball (checked when it is opened).
fn plain(path: &Path) -> SourceSpec {
    if path.is_file() {
        SourceSpec::Tar(path.to_owned())
    } else {
        SourceSpec::Dir(path.to_owned())
    }
}

impl SourceSpec {
    /// A short name for progress messages.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Dir(p) => format!("directory {}", p.display()),
            SourceSpec::Tar(p) => format!("tarball {}", p.display()),
        }
    }
}
