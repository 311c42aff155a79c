//! The JSON documents a registry serves: descriptors, image manifests and image indexes (OCI image spec
//! descriptor.md, manifest.md, image-index.md) and their Docker schema 2 twins (which the OCI ones were copied from).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (a multi-platform index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (signed or not): obsolete, refused.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI layers.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// Docker layers.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// The empty descriptor's media type and content (OCI image spec manifest.md "Guidance for an Empty Descriptor"): the
/// config of an artifact that has none.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_EMPTY_CONTENT: &[u8] = b"{}";
/// The annotation naming a manifest in an OCI layout's index.json (image-layout.md, annotations.md).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation naming a file in an artifact (as oras writes it).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// The `Accept` header of a manifest request: every manifest and index kind we can read.
pub const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests and indexes are small; containers/image refuses ones above 4 MiB and so do we.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// A pointer to content: media type, digest, size and optional extras.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// An image manifest (OCI or Docker schema 2: the same shape).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or manifest list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Just enough of any manifest to tell its kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// What a manifest document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Index,
    Manifest,
}

/// The media type of a manifest document: its own `mediaType` field, else the `Content-Type` it came with, else
/// (both absent, as OCI allows) guessed from its shape. Returns the kind too, or why it is unusable.
pub fn classify(bytes: &[u8], content_type: Option<&str>) -> Result<(Kind, String), Unusable> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| Unusable::Invalid(format!("it is not JSON: {e}")))?;
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_owned());
    let media_type = probe
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .or(content_type.filter(|c| c.starts_with("application/vnd.")))
        .unwrap_or_else(|| if probe.manifests.is_some() { OCI_INDEX } else { OCI_MANIFEST }.to_owned());
    match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Ok((Kind::Index, media_type)),
        OCI_MANIFEST | DOCKER_MANIFEST => {
            if probe.schema_version != Some(2) {
                return Err(Unusable::Invalid(format!("its schemaVersion is {:?}, not 2", probe.schema_version)));
            }
            if probe.config.is_none() {
                return Err(Unusable::Invalid("it has no config".to_owned()));
            }
            Ok((Kind::Manifest, media_type))
        }
        _ => Err(Unusable::Unsupported(media_type)),
    }
}

/// Why [`classify`] refused a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Malformed, with the reason.
    Invalid(String),
    /// Well-formed but of this media type, which we cannot use (Docker schema 1, an unknown kind).
    Unsupported(String),
}

/// The OCI media type for a Docker one (what `skopeo copy` to an `oci:` layout converts); others unchanged.
pub fn oci_media_type(media_type: &str) -> &str {
    match media_type {
        DOCKER_MANIFEST => OCI_MANIFEST,
        DOCKER_MANIFEST_LIST => OCI_INDEX,
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER_TAR => OCI_LAYER_TAR,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        DOCKER_LAYER_FOREIGN_GZIP => OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        other => other,
    }
}
