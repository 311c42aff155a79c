//! The JSON documents of an image, reduced to the fields we read: OCI image-spec v1.1 (index, manifest, config,
//! descriptor), Docker Image Manifest V2 Schema 2 (manifest list, manifest), and `docker save`'s manifest.json.
//!
//! Why not the `oci-spec` crate: it models the OCI documents only (not docker-archive's manifest.json), its
//! builders and getters pull in several proc-macro crates, and we need about fifteen fields. Plain serde structs
//! with unknown fields ignored read both OCI and Docker spellings (their field names are the same).

use std::collections::BTreeMap;

use serde::Deserialize;

/// OCI image-spec media types ("Media Types").
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Non-distributable ("foreign") layers: their content lives elsewhere (OCI image-spec "Non-distributable
/// layers", deprecated; Docker's foreign layers for Windows base images).
pub const FOREIGN_LAYER_PREFIXES: &[&str] =
    &["application/vnd.oci.image.layer.nondistributable.", "application/vnd.docker.image.rootfs.foreign."];

/// Docker Image Manifest V2, Schema 2 media types.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Schema 1 (signed and unsigned), which stores no config and is long deprecated.
pub const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

pub const INDEX_TYPES: &[&str] = &[OCI_INDEX, DOCKER_LIST];
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];
pub const CONFIG_TYPES: &[&str] = &[OCI_CONFIG, DOCKER_CONFIG];
pub const LAYER_TYPES: &[&str] = &[OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER];

/// The annotation naming an image in a layout's index.json (OCI image-spec "Pre-Defined Annotation Keys").
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `imageLayoutVersion` of the `oci-layout` file (OCI image-spec "Image Layout").
pub const LAYOUT_VERSION: &str = "1.0.0";

/// A descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlatformJson {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// Just enough of any manifest-like document to tell which kind it is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Versioned {
    #[serde(default)]
    pub schema_version: Option<i64>,
    #[serde(default)]
    pub media_type: Option<String>,
}

/// An image index, a manifest list, or a layout's index.json.
#[derive(Debug, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The `oci-layout` file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    pub image_layout_version: String,
}

/// An image configuration (OCI image-spec "Image Configuration"; Docker's has the same fields).
#[derive(Debug, Default, Deserialize)]
pub struct ConfigJson {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One image of `docker save`'s manifest.json.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveImage {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(default)]
    pub layers: Vec<String>,
    /// Foreign layers, by diff ID, with their descriptors.
    #[serde(default)]
    pub layer_sources: BTreeMap<String, Descriptor>,
}
