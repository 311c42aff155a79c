//! Reads a root filesystem into a [`Tree`]: a host directory, a root filesystem tarball, or a container image
//! (an OCI layout, an oci-archive or a docker-archive, read by clay-oci).
//!
//! Readers never write to the host and never follow symlinks on it: a directory is walked with `lstat`, a
//! tarball is parsed in place (or from an unlinked spill file when compressed) and merged in memory.

mod dir;
mod spec;
mod tarball;

use std::io;
use std::path::PathBuf;

pub use clay_oci::{Checks, ImageConfig, Lookahead, Platform};
pub use dir::read_dir;
pub use spec::{ArchiveImage, SourceSpec};
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
    #[error("`{spec}`: {reason}")]
    ArchiveImage { spec: String, reason: String },
    #[error("`{0}`: a source needs a path after the transport, e.g. tar:rootfs.tar")]
    Empty(String),
    #[error(transparent)]
    Tree(#[from] clay_tree::TreeError),
    #[error(transparent)]
    Image(#[from] clay_oci::OciError),
    #[error(transparent)]
    Platform(#[from] clay_oci::ParsePlatformError),
    #[error(transparent)]
    Registry(#[from] clay_registry::RegistryError),
    #[error("cannot make a private directory for the pulled image: {0}")]
    PullDir(io::Error),
}

/// Something skipped or changed while reading, worth one line to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

/// How to read a source.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The platform (`OS/ARCH[/VARIANT]`) to pick from a multi-platform image; `None` means this machine's.
    /// Checked for every source, used by images only.
    pub platform: Option<String>,
    /// How to reach the registry of a `docker://` source (its `progress` is replaced by the one given to
    /// [`read_source_with_progress`]).
    pub registry: clay_registry::Access<'static>,
    /// Where a `docker://` source's blobs are kept while it is read: a private directory of its own is made in this
    /// one, and removed when the read ends (the caller removes this one if the process is cut short). `None`: the
    /// system's temporary directory.
    pub scratch_dir: Option<PathBuf>,
    /// Shown file data while an image's compressed layers are decompressed (see [`Lookahead`]).
    pub lookahead: Option<std::sync::Arc<dyn Lookahead>>,
    /// Return with an image's layer digests still being checked, in [`Source::checks`]; the caller must wait for
    /// them before it trusts (commits) anything made from the tree. Otherwise they are done before returning.
    pub defer_checks: bool,
}

/// A source read into memory.
#[derive(Debug)]
pub struct Source {
    pub tree: clay_tree::Tree,
    /// The image's configuration (environment, entrypoint, ...) when the source is a container image.
    pub config: Option<ImageConfig>,
    /// Layer digest checks still running (only with [`ReadOptions::defer_checks`]).
    pub checks: Checks,
    /// Where a registry's image really came from, when registries.conf sent the pull elsewhere (a mirror, or a
    /// location the name's prefix was moved to).
    pub pulled_from: Option<String>,
}

/// Reads the source named by `spec` into a tree, for this machine's platform.
pub fn read(spec: &SourceSpec, warn: &mut dyn FnMut(Warning)) -> Result<clay_tree::Tree, SourceError> {
    read_with(spec, &ReadOptions::default(), warn)
}

/// Reads the source named by `spec` into a tree.
pub fn read_with(
    spec: &SourceSpec,
    options: &ReadOptions,
    warn: &mut dyn FnMut(Warning),
) -> Result<clay_tree::Tree, SourceError> {
    Ok(read_source(spec, options, warn)?.tree)
}

/// Reads the source named by `spec`: its tree, and its configuration when it is a container image.
pub fn read_source(
    spec: &SourceSpec,
    options: &ReadOptions,
    warn: &mut dyn FnMut(Warning),
) -> Result<Source, SourceError> {
    read_source_with_progress(spec, options, warn, None)
}

/// [`read_source`], reporting each blob of a `docker://` pull to `progress` (for progress bars).
pub fn read_source_with_progress(
    spec: &SourceSpec,
    options: &ReadOptions,
    warn: &mut dyn FnMut(Warning),
    progress: Option<&dyn Fn(clay_registry::ProgressEvent)>,
) -> Result<Source, SourceError> {
    let platform = options.platform.as_deref().map(str::parse::<Platform>).transpose()?;
    let oci_options = clay_oci::ReadOptions {
        platform,
        lookahead: options.lookahead.clone(),
        defer_checks: options.defer_checks,
        ..clay_oci::ReadOptions::default()
    };
    let mut oci_warn = |w: String| warn(Warning(w));
    let mut pulled_from = None;
    let image = match spec {
        SourceSpec::Dir(path) => {
            return Ok(Source {
                tree: read_dir(path, warn)?,
                config: None,
                checks: Checks::default(),
                pulled_from: None,
            })
        }
        SourceSpec::Tar(path) => {
            return Ok(Source {
                tree: read_tar(path, warn)?,
                config: None,
                checks: Checks::default(),
                pulled_from: None,
            })
        }
        SourceSpec::Oci { path, tag } => clay_oci::read_layout(path, tag.as_deref(), &oci_options, &mut oci_warn)?,
        SourceSpec::OciArchive { path, tag } => {
            clay_oci::read_oci_archive(path, tag.as_deref(), &oci_options, &mut oci_warn)?
        }
        SourceSpec::DockerArchive { path, image } => {
            read_docker_archive(path, image.as_ref(), &oci_options, &mut oci_warn)?
        }
        SourceSpec::Registry { reference } => {
            // The blobs land, verified, in a private directory as an OCI layout, which is then read like any
            // other: layers are never unpacked on the host. The tree keeps open handles (spill files, blob
            // ranges), so the directory can go once it is read.
            let reference = clay_registry::Reference::parse(reference)?;
            let layout = match &options.scratch_dir {
                Some(dir) => tempfile::tempdir_in(dir),
                None => tempfile::tempdir(),
            }
            .map_err(SourceError::PullDir)?;
            let pull = clay_registry::PullOptions {
                platform: options.platform.clone(),
                access: clay_registry::Access { progress, ..options.registry.clone() },
            };
            let pulled = clay_registry::pull(&reference, &pull, layout.path())?;
            pulled_from = Some(pulled.source.to_string()).filter(|_| pulled.source != pulled.reference);
            // The pull hashed every blob as it arrived; only the diff IDs are left to check.
            let verified = clay_oci::ReadOptions { blobs_verified: true, ..oci_options };
            clay_oci::read_layout(layout.path(), None, &verified, &mut oci_warn)?
        }
    };
    Ok(Source { tree: image.tree, config: Some(image.config), checks: image.checks, pulled_from })
}

/// Reads `docker-archive:PATH[:REF|:@INDEX]`. A reference is compared normalised, as skopeo compares it
/// (`debian` is `docker.io/library/debian:latest`). A short name that matches nothing is tried once more as podman
/// names the images it builds, `localhost/NAME`, with a warning.
fn read_docker_archive(
    path: &std::path::Path,
    image: Option<&ArchiveImage>,
    options: &clay_oci::ReadOptions,
    warn: &mut dyn FnMut(String),
) -> Result<clay_oci::Image, SourceError> {
    use clay_oci::DockerImage;
    use clay_registry::Reference;
    let name = match image {
        None => return Ok(clay_oci::read_docker_archive(path, None, options, warn)?),
        Some(ArchiveImage::Index(i)) => {
            return Ok(clay_oci::read_docker_archive(path, Some(DockerImage::Index(*i)), options, warn)?)
        }
        Some(ArchiveImage::Reference(name)) => name,
    };
    let wanted = Reference::parse(name)?;
    let matches = |tag: &str| Reference::parse(tag).is_ok_and(|t| t == wanted);
    let err =
        match clay_oci::read_docker_archive(path, Some(DockerImage::Tagged { name, matches: &matches }), options, warn)
        {
            Err(err @ clay_oci::OciError::NoSuchTag { .. }) if !Reference::names_registry(name) => err,
            other => return Ok(other?),
        };
    let Ok(local) = Reference::parse(&format!("localhost/{name}")) else { return Err(err.into()) };
    let matches_local = |tag: &str| Reference::parse(tag).is_ok_and(|t| t == local);
    let which = DockerImage::Tagged { name, matches: &matches_local };
    match clay_oci::read_docker_archive(path, Some(which), options, warn) {
        Ok(image) => {
            warn(format!(
                "`{name}` means `{wanted}`, which the archive does not hold; read `{local}`, as podman names its own \
                 images"
            ));
            Ok(image)
        }
        Err(clay_oci::OciError::NoSuchTag { .. }) => Err(err.into()),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
