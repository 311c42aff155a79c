//! Reads container images into a [`clay_tree::Tree`]: OCI image layouts (`oci:`), archives of them
//! (`oci-archive:`) and `docker save` archives (`docker-archive:`), per the OCI image-spec v1.1 and Docker Image
//! Manifest V2 Schema 2.
//!
//! Every blob is checked against its digest and size before the image is returned (or, when the caller defers
//! the checks, before it commits anything it made from the image); layers are hashed on background threads
//! while they are merged. Layers are merged in memory (whiteouts,
//! opaque directories, hard links across layers) from byte ranges of the archive or of an unlinked spill file;
//! nothing is ever extracted to, or written on, the host. Hostile entries (`..`, paths through symlinks, hard
//! links to nowhere, PAX sizes that disagree with their header) are refused with the image, layer and entry named.

mod checks;
mod image;
mod layers;
mod platform;
mod schema;
mod store;
pub mod tarentry;
mod tarscan;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use checks::Checks;
pub use clay_digest::Digest;
pub use image::{read_docker_archive, read_layout, read_oci_archive, DockerImage};
pub use platform::{ParsePlatformError, Platform};
pub use tarentry::{tar_entry_inode, EntryError, TarEntry};

/// How to read an image.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The platform to pick from a multi-platform image; `None` means this machine's ([`Platform::host`]).
    pub platform: Option<Platform>,
    /// Shown each file's data while compressed layers are still being decompressed.
    pub lookahead: Option<Arc<dyn Lookahead>>,
    /// Return with the layers' digest checks still running, in [`Image::checks`], for a caller that waits for
    /// them before it trusts what it made from the image. Otherwise they are waited for before returning.
    pub defer_checks: bool,
    /// The layer blobs were checked against their digests as they were stored, by the caller, in a place only it
    /// writes (clay-registry's pulls into a private layout): they are not hashed again. Compressed layers are
    /// still checked against the config's diff IDs.
    pub blobs_verified: bool,
}

/// Something that works on file data ahead of time, while the rest of a compressed layer is still being
/// decompressed on another core (clay wires in clay-squashfs's compressor).
///
/// It sees full blocks of regular files' data, in the order they are decompressed, named by the file and
/// offset that the tree's [`clay_tree::Content::Range`] will later read them from. Whether a file survives the
/// layers above is not known yet: the work is speculative, so `block` must return at once and may drop it.
pub trait Lookahead: Send + Sync + std::fmt::Debug {
    /// The size of the blocks it wants.
    fn block_size(&self) -> u64;
    /// `data` is `block_size` bytes of `file` at `offset`, which will not change.
    fn block(&self, file: &Arc<File>, offset: u64, data: &[u8]);
}

/// An image read into memory: its merged root filesystem and its configuration.
#[derive(Debug)]
pub struct Image {
    pub tree: clay_tree::Tree,
    pub config: ImageConfig,
    /// The digest of the manifest the layers came from (`None` for docker-archive, which stores no manifest).
    pub manifest_digest: Option<Digest>,
    /// The digest of the image configuration blob: the image ID as docker and podman print it.
    pub config_digest: Digest,
    /// The layers applied, lowest first, by the digest of their blob.
    pub layers: Vec<String>,
    /// The layers' digest checks, still running when [`ReadOptions::defer_checks`] was set (else done).
    pub checks: Checks,
}

/// What the image's configuration says about running it (OCI image-spec "Image Configuration", `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Why an image could not be read. Each message is one sentence naming the image and the blob or entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("cannot read `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("`{0}` does not exist")]
    NotFound(PathBuf),
    #[error("`{0}` is a directory; an archive is a file (use oci:DIR for an image layout directory)")]
    ArchiveIsDirectory(PathBuf),
    #[error("`{0}` is not an OCI image layout: it has no `oci-layout` file")]
    NotALayout(PathBuf),
    #[error("archive `{path}` is damaged: {source}")]
    Archive { path: PathBuf, source: io::Error },
    #[error("archive `{path}`: entry `{entry}`: {reason}")]
    ArchiveEntry { path: PathBuf, entry: String, reason: String },
    #[error("cannot decompress {what}: {source}")]
    Decompress { what: String, source: io::Error },
    #[error("image `{image}`: {what} is not valid: {reason}")]
    Invalid { image: String, what: String, reason: String },
    #[error("image `{image}`: {reason}")]
    BadDigest { image: String, reason: clay_digest::BadDigest },
    #[error("image `{image}`: {what} `{digest}` is missing from the image")]
    MissingBlob { image: String, what: String, digest: String },
    #[error("image `{image}`: {what} `{digest}` is {found} bytes, but its descriptor says {expected}")]
    Size { image: String, what: String, digest: String, expected: u64, found: u64 },
    #[error("image `{image}`: {what} `{digest}` does not match its digest (its content hashes to `{found}`)")]
    DigestMismatch { image: String, what: String, digest: String, found: String },
    #[error("image `{image}`: {what} has media type `{media_type}`, which clay cannot read")]
    MediaType { image: String, what: String, media_type: String },
    #[error(
        "image `{image}`: layer `{digest}` is a non-distributable (foreign) layer of type `{media_type}`, whose \
         content is not in the image; clay cannot read it"
    )]
    ForeignLayer { image: String, digest: String, media_type: String },
    #[error(
        "image `{image}`: `{digest}` is a Docker schema 1 manifest, which clay does not read; convert the image \
         with `skopeo copy --format oci`"
    )]
    Schema1 { image: String, digest: String },
    #[error("image `{image}` has no image tagged `{tag}`; it has {available}")]
    NoSuchTag { image: String, tag: String, available: String },
    #[error("image `{image}` holds several images; name one as `{image}:TAG`, one of {available}")]
    AmbiguousTag { image: String, available: String },
    #[error(
        "image `{image}` holds several images; name one as `{image}:REF` or by position as `{image}:@INDEX`: \
         {available}"
    )]
    AmbiguousArchive { image: String, available: String },
    #[error("image `{image}` has no image @{index}: it holds {count}, @0 to @{}", count.saturating_sub(1))]
    NoSuchIndex { image: String, index: usize, count: usize },
    #[error("image `{image}` has no image for {wanted}; it has {available} (choose one with --platform)")]
    NoSuchPlatform { image: String, wanted: String, available: String },
    #[error("image `{image}`: layer `{layer}` is not a valid tar archive: {source}")]
    LayerTar { image: String, layer: String, source: io::Error },
    #[error("image `{image}`, layer `{layer}`: entry `{entry}`: {reason}")]
    Entry { image: String, layer: String, entry: String, reason: String },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]
mod tests;
