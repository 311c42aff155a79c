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
    /// An OCI image layout directory, and the image's `org.opencontainers.image.ref.name` (`oci:PATH[:TAG]`).
    Oci { path: PathBuf, tag: Option<String> },
    /// A tar archive of an OCI image layout (`oci-archive:PATH[:TAG]`).
    OciArchive { path: PathBuf, tag: Option<String> },
    /// A `docker save` / `podman save --format docker-archive` archive (`docker-archive:PATH[:REF|:@INDEX]`),
    /// and which of its images to read when it holds several.
    DockerArchive { path: PathBuf, image: Option<ArchiveImage> },
    /// An image in a registry (`docker://REF`, e.g. `docker://docker.io/library/debian:bookworm`).
    Registry { reference: String },
}

/// One image of a docker archive that holds several, as skopeo names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveImage {
    /// `@INDEX`: the image at this position of the archive's `manifest.json`, counted from 0.
    Index(usize),
    /// `REF`: the image tagged so (`debian:bookworm` matches `docker.io/library/debian:bookworm`), as written.
    Reference(String),
}

impl ArchiveImage {
    /// Reads `@INDEX` or a tagged reference (a digest cannot name an image in an archive, whose `manifest.json`
    /// records tags only).
    fn parse(spec: &str, s: &str) -> Result<ArchiveImage, SourceError> {
        let bad = |reason: String| SourceError::ArchiveImage { spec: spec.to_owned(), reason };
        if s.is_empty() {
            return Err(bad(
                "nothing follows the last `:`; name an image as `:REF` or `:@INDEX`, or drop the `:`".into()
            ));
        }
        if let Some(index) = s.strip_prefix('@') {
            if index.bytes().all(|b| b.is_ascii_digit()) {
                return index
                    .parse()
                    .map(ArchiveImage::Index)
                    .map_err(|_| bad(format!("`@{index}` is not a position in the archive")));
            }
            return Err(bad(format!(
                "`@{index}` is neither a position (@0, @1, ...) nor a reference; images in an archive are named by \
                 tag, not by digest"
            )));
        }
        let reference = clay_registry::Reference::parse(s).map_err(|e| bad(e.to_string()))?;
        if reference.digest.is_some() {
            return Err(bad(format!("`{s}` names a digest; images in an archive are named by tag or as @INDEX")));
        }
        Ok(ArchiveImage::Reference(s.to_owned()))
    }
}

impl std::fmt::Display for ArchiveImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveImage::Index(i) => write!(f, "@{i}"),
            ArchiveImage::Reference(r) => f.write_str(r),
        }
    }
}

/// Transports of the image world that later work will read; named so the error can say "not yet".
const IMAGE_TRANSPORTS: &[&str] = &["docker", "containers-storage"];

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
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, tag) = split_tag(rest, Path::is_dir);
            return Ok(SourceSpec::Oci { path: nonempty(path)?, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, tag) = split_tag(rest, Path::is_file);
            return Ok(SourceSpec::OciArchive { path: nonempty(path)?, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let trailing_colon = rest.strip_suffix(':').filter(|path| Path::new(path).is_file());
            let (path, image) =
                match trailing_colon.map(|path| (path, Some(""))).or_else(|| split_existing(rest, Path::is_file)) {
                    Some(split) => split,
                    // Nothing exists (the error will say so): skopeo's reading, the path ends at the first `:`.
                    None => match rest.split_once(':') {
                        Some((path, image)) if !path.is_empty() => (path, Some(image)),
                        _ => (rest, None),
                    },
                };
            let image = image.map(|i| ArchiveImage::parse(s, i)).transpose()?;
            return Ok(SourceSpec::DockerArchive { path: nonempty(path)?, image });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            if rest.is_empty() {
                return Err(SourceError::Empty(s.to_owned()));
            }
            return Ok(SourceSpec::Registry { reference: rest.to_owned() });
        }
        if let Some((transport, _)) = s.split_once(':') {
            if IMAGE_TRANSPORTS.contains(&transport) {
                return Err(SourceError::Unsupported { spec: s.to_owned(), transport: format!("{transport}:") });
            }
        }
        Ok(plain(Path::new(s)))
    }
}

/// Splits `PATH[:TAG]`. Paths may contain `:`, so the split is where the path part names something that exists
/// (`exists`: a directory for `oci:`, a file for `oci-archive:`), the longest such path first. When nothing
/// exists (the error will say so), the last `:` starts the tag if what follows is a valid tag, as skopeo reads
/// `oci:` references.
fn split_tag(rest: &str, exists: fn(&Path) -> bool) -> (&str, Option<String>) {
    if let Some((path, tag)) = split_existing(rest, exists) {
        return (path, tag.map(str::to_owned));
    }
    match rest.rsplit_once(':') {
        Some((path, tag)) if is_tag(tag) => (path, Some(tag.to_owned())),
        _ => (rest, None),
    }
}

/// Splits `PATH[:WHAT]` where the path part names something that exists, the longest such path first; `None`
/// when nothing does.
fn split_existing(rest: &str, exists: fn(&Path) -> bool) -> Option<(&str, Option<&str>)> {
    if exists(Path::new(rest)) {
        return Some((rest, None));
    }
    let colons = rest.char_indices().filter(|(_, c)| *c == ':').map(|(i, _)| i).rev();
    for i in colons {
        let (path, what) = (&rest[..i], &rest[i + 1..]);
        if !path.is_empty() && !what.is_empty() && exists(Path::new(path)) {
            return Some((path, Some(what)));
        }
    }
    None
}

/// A Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (distribution/reference).
fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok && tag.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
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
            SourceSpec::Oci { path, tag } => format!("OCI image layout {}{}", path.display(), tag_suffix(tag)),
            SourceSpec::OciArchive { path, tag } => format!("OCI archive {}{}", path.display(), tag_suffix(tag)),
            SourceSpec::DockerArchive { path, image: None } => format!("docker archive {}", path.display()),
            SourceSpec::DockerArchive { path, image: Some(image) } => {
                format!("docker archive {}, image {image}", path.display())
            }
            SourceSpec::Registry { reference } => format!("image docker://{reference}"),
        }
    }
}

fn tag_suffix(tag: &Option<String>) -> String {
    tag.as_ref().map(|t| format!(" (image {t})")).unwrap_or_default()
}
