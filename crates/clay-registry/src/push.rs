//! Pushing: blobs (HEAD to skip what the registry has, then POST an upload and PUT it whole, per the OCI
//! distribution spec "Pushing a blob monolithically"), manifests, and whole images from an OCI layout or from parts.

use std::collections::BTreeMap;
use std::path::Path;

use ureq::http::Method;

use crate::client::{append_query, Req, ReqBody, Session};
use crate::digest::{digest_file, Digest};
use crate::error::{RegistryError, Result};
use crate::layout::{layout_kind, Layout};
use crate::manifest::{Descriptor, Index, Kind, Manifest, OCI_EMPTY, OCI_EMPTY_CONTENT, OCI_MANIFEST};
use crate::reference::Reference;
use crate::{BlobRole, ProgressState, PushOptions};

/// Where a blob's bytes come from: a file (streamed, never read whole into memory) or memory.
#[derive(Clone, Copy, Debug)]
pub enum BlobSource<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// One blob of an image being assembled.
#[derive(Clone, Debug)]
pub struct BlobPart<'a> {
    pub media_type: String,
    pub source: BlobSource<'a>,
    /// Descriptor annotations, such as [`crate::manifest::ANNOTATION_TITLE`] for an artifact's file name.
    pub annotations: BTreeMap<String, String>,
}

/// An image or artifact given as parts: [`push_image`] uploads them and writes the OCI manifest.
#[derive(Clone, Debug, Default)]
pub struct ImageParts<'a> {
    /// The manifest's `artifactType` (for an artifact whose config is empty).
    pub artifact_type: Option<String>,
    /// The config blob; `None` means the OCI empty descriptor (`{}`, [`OCI_EMPTY`]), as artifacts use.
    pub config: Option<BlobPart<'a>>,
    pub layers: Vec<BlobPart<'a>>,
    pub annotations: BTreeMap<String, String>,
}

/// What [`push_image`] sends.
#[derive(Clone, Debug)]
pub enum PushSource<'a> {
    /// An image in an OCI layout: the index.json entry named `ref_name`, or its only entry. An image index is pushed
    /// with all its manifests.
    Layout {
        dir: &'a Path,
        ref_name: Option<&'a str>,
    },
    Parts(ImageParts<'a>),
}

/// What [`push_image`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    pub reference: Reference,
    /// The manifest (or index) as the registry now has it.
    pub manifest: Descriptor,
}

/// Uploads one blob to `reference`'s repository unless it is already there; returns its descriptor.
pub fn push_blob(
    reference: &Reference,
    options: &PushOptions<'_>,
    media_type: &str,
    blob: BlobSource<'_>,
) -> Result<Descriptor> {
    let mut s = Session::open(reference, &options.push_session(reference), "pull,push")?;
    upload_blob(&mut s, media_type, blob, BlobRole::Blob, BTreeMap::new())
}

/// Stores `bytes` as the manifest named by `reference` (its tag, else its digest); returns the manifest's digest.
pub fn push_manifest(
    reference: &Reference,
    options: &PushOptions<'_>,
    media_type: &str,
    bytes: &[u8],
) -> Result<Digest> {
    let mut s = Session::open(reference, &options.push_session(reference), "pull,push")?;
    put_manifest(&mut s, reference, media_type, bytes)
}

/// Pushes a whole image or artifact and names it `reference`.
pub fn push_image(source: &PushSource<'_>, reference: &Reference, options: &PushOptions<'_>) -> Result<Pushed> {
    let mut s = Session::open(reference, &options.push_session(reference), "pull,push")?;
    let manifest = match source {
        PushSource::Parts(parts) => push_parts(&mut s, reference, parts)?,
        PushSource::Layout { dir, ref_name } => push_layout(&mut s, reference, dir, *ref_name)?,
    };
    Ok(Pushed { reference: reference.clone(), manifest })
}

fn push_parts(s: &mut Session<'_>, reference: &Reference, parts: &ImageParts<'_>) -> Result<Descriptor> {
    let config = match &parts.config {
        Some(c) => upload_blob(s, &c.media_type, c.source, BlobRole::Config, c.annotations.clone())?,
        None => upload_blob(s, OCI_EMPTY, BlobSource::Bytes(OCI_EMPTY_CONTENT), BlobRole::Config, BTreeMap::new())?,
    };
    let mut layers = Vec::with_capacity(parts.layers.len());
    for (i, l) in parts.layers.iter().enumerate() {
        layers.push(upload_blob(s, &l.media_type, l.source, BlobRole::Layer(i), l.annotations.clone())?);
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: parts.artifact_type.clone(),
        config,
        layers,
        subject: None,
        annotations: parts.annotations.clone(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| RegistryError::BadManifest {
        registry: s.registry.clone(),
        what: format!("manifest for {reference}"),
        reason: e.to_string(),
    })?;
    let digest = put_manifest(s, reference, OCI_MANIFEST, &bytes)?;
    Ok(Descriptor {
        media_type: OCI_MANIFEST.to_owned(),
        digest: digest.to_string(),
        size: bytes.len() as u64,
        artifact_type: parts.artifact_type.clone(),
        ..Descriptor::default()
    })
}

fn push_layout(s: &mut Session<'_>, reference: &Reference, dir: &Path, ref_name: Option<&str>) -> Result<Descriptor> {
    let layout = Layout::open(dir)?;
    let top = layout.find_manifest(ref_name)?;
    let bytes = layout.read_small_blob(&top)?;
    let (kind, media_type) = layout_kind(dir, &bytes, &top)?;
    if kind == Kind::Index {
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadLayout {
            dir: dir.to_owned(),
            reason: format!("its index is invalid: {e}"),
        })?;
        for child in &index.manifests {
            let child_bytes = layout.read_small_blob(child)?;
            let (child_kind, child_type) = layout_kind(dir, &child_bytes, child)?;
            if child_kind != Kind::Manifest {
                return Err(RegistryError::BadLayout {
                    dir: dir.to_owned(),
                    reason: format!("the index entry {} is itself an index", child.digest),
                });
            }
            push_manifest_blobs(s, &layout, &child_bytes)?;
            let by_digest = Reference { tag: None, digest: Some(Digest::parse(&child.digest)?), ..reference.clone() };
            put_manifest(s, &by_digest, &child_type, &child_bytes)?;
        }
    } else {
        push_manifest_blobs(s, &layout, &bytes)?;
    }
    let digest = put_manifest(s, reference, &media_type, &bytes)?;
    Ok(Descriptor { media_type, digest: digest.to_string(), size: bytes.len() as u64, ..Descriptor::default() })
}

fn push_manifest_blobs(s: &mut Session<'_>, layout: &Layout, bytes: &[u8]) -> Result<()> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| RegistryError::BadLayout {
        dir: layout.dir.clone(),
        reason: format!("a manifest is invalid: {e}"),
    })?;
    let blobs = std::iter::once((&manifest.config, BlobRole::Config))
        .chain(manifest.layers.iter().enumerate().map(|(i, l)| (l, BlobRole::Layer(i))));
    for (desc, role) in blobs {
        let digest = Digest::parse(&desc.digest)?;
        let path = layout.blob_path(&digest);
        let blob = BlobSource::File(&path);
        // Check before sending: a layout file that is not what its name says must not reach the registry.
        let (actual, size) = measure(blob)?;
        if actual != digest || size != desc.size {
            return Err(RegistryError::LayoutBlobMismatch { dir: layout.dir.clone(), digest: desc.digest.clone() });
        }
        upload_measured(s, &desc.media_type, blob, (digest, size), role, BTreeMap::new())?;
    }
    Ok(())
}

fn measure(blob: BlobSource<'_>) -> Result<(Digest, u64)> {
    match blob {
        BlobSource::File(path) => digest_file(path),
        BlobSource::Bytes(bytes) => Ok((Digest::sha256_of(bytes), bytes.len() as u64)),
    }
}

fn upload_blob(
    s: &mut Session<'_>,
    media_type: &str,
    blob: BlobSource<'_>,
    role: BlobRole,
    annotations: BTreeMap<String, String>,
) -> Result<Descriptor> {
    let measured = measure(blob)?;
    upload_measured(s, media_type, blob, measured, role, annotations)
}

/// Uploads a blob whose digest and size are already known (HEAD first, then POST and a monolithic PUT).
fn upload_measured(
    s: &mut Session<'_>,
    media_type: &str,
    blob: BlobSource<'_>,
    (digest, size): (Digest, u64),
    role: BlobRole,
    annotations: BTreeMap<String, String>,
) -> Result<Descriptor> {
    let desc = Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_string(),
        size,
        annotations,
        ..Descriptor::default()
    };
    let what = format!("blob {digest} of {}", s.repository);

    let resp = s.send(&Req::new(Method::HEAD, s.url(&format!("blobs/{digest}")), what.clone()))?;
    match resp.status().as_u16() {
        200 => {
            s.report(digest.as_str(), role, size, size, ProgressState::Cached);
            return Ok(desc);
        }
        404 => {}
        _ => return Err(s.status_error(resp, &what)),
    }
    s.report(digest.as_str(), role, 0, size, ProgressState::Started);

    let start = Req::new(Method::POST, s.url("blobs/uploads/"), format!("an upload to {}", s.repository))
        .header("content-length", "0");
    let resp = s.send(&start)?;
    if resp.status() != 202 {
        return Err(s.status_error(resp, &format!("an upload to {}", s.repository)));
    }
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| RegistryError::BadLocation { registry: s.registry.clone(), location: String::new() })?;
    let url = append_query(&s.resolve(&location)?, &BTreeMap::from([("digest", digest.to_string())]));
    let body = match blob {
        BlobSource::File(path) => ReqBody::File { path, len: size, digest: digest.as_str(), role },
        BlobSource::Bytes(bytes) => ReqBody::Bytes(bytes),
    };
    let put = Req::new(Method::PUT, url, what.clone()).header("content-type", "application/octet-stream").body(body);
    let resp = s.send(&put)?;
    if resp.status() != 201 {
        return Err(s.status_error(resp, &what));
    }
    s.report(digest.as_str(), role, size, size, ProgressState::Finished);
    Ok(desc)
}

fn put_manifest(s: &mut Session<'_>, reference: &Reference, media_type: &str, bytes: &[u8]) -> Result<Digest> {
    let digest = Digest::sha256_of(bytes);
    let name = match (&reference.tag, &reference.digest) {
        (Some(tag), _) => tag.clone(),
        (None, Some(d)) if *d == digest => d.to_string(),
        (None, Some(d)) => {
            return Err(RegistryError::ManifestDigestMismatch {
                registry: s.registry.clone(),
                image: reference.to_string(),
                expected: d.to_string(),
                actual: digest.to_string(),
            })
        }
        (None, None) => digest.to_string(),
    };
    let what = format!("manifest `{name}` of {}", s.repository);
    let req = Req::new(Method::PUT, s.url(&format!("manifests/{name}")), what.clone())
        .header("content-type", media_type)
        .body(ReqBody::Bytes(bytes));
    let resp = s.send(&req)?;
    if resp.status() != 201 && resp.status() != 200 {
        return Err(s.status_error(resp, &what));
    }
    let stored = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(stored) = stored.filter(|d| *d != digest.as_str()) {
        return Err(RegistryError::ManifestDigestMismatch {
            registry: s.registry.clone(),
            image: reference.to_string(),
            expected: digest.to_string(),
            actual: stored,
        });
    }
    Ok(digest)
}
