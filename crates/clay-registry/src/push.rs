//! Pushing: blobs (HEAD to skip what the registry has, then POST an upload and PUT it whole, or, when it is larger
//! than the chunk size, PATCH it in chunks that resume after a failure, per the OCI distribution spec), manifests,
//! and whole images from an OCI layout or from parts.

use std::collections::BTreeMap;
use std::path::Path;

use std::thread::sleep;

use ureq::http::{Method, Response};
use ureq::Body;

use crate::client::{append_query, transient_status, Req, ReqBody, Session};
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

/// Uploads a blob whose digest and size are already known: HEAD first, to skip what the registry has; then, up to
/// the session's chunk size, one PUT; beyond it, chunks that resume where the registry says it stopped.
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
    let upload = Upload { blob, digest: &digest, size, role, what };
    if size <= s.upload_chunk {
        upload.whole(s)?;
    } else {
        upload.chunked(s)?;
    }
    s.report(digest.as_str(), role, size, size, ProgressState::Finished);
    Ok(desc)
}

/// One blob on its way to the registry.
struct Upload<'b> {
    blob: BlobSource<'b>,
    digest: &'b Digest,
    size: u64,
    role: BlobRole,
    /// "blob sha256:… of REPOSITORY", for messages.
    what: String,
}

impl Upload<'_> {
    /// Bytes `offset..offset + len` of the blob as a request body.
    fn part(&self, offset: u64, len: u64) -> ReqBody<'_> {
        match self.blob {
            BlobSource::File(path) => {
                ReqBody::File { path, offset, len, total: self.size, digest: self.digest.as_str(), role: self.role }
            }
            BlobSource::Bytes(bytes) => {
                let at = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len());
                ReqBody::Bytes(bytes.get(at(offset)..at(offset.saturating_add(len))).unwrap_or_default())
            }
        }
    }

    /// The blob in one PUT (the OCI distribution spec, "Pushing a blob monolithically"). A PUT cut off halfway may
    /// leave its first part in the upload, so each try starts a new upload rather than sending the PUT again.
    fn whole(&self, s: &mut Session<'_>) -> Result<()> {
        let attempts = s.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let (location, _) = start_upload(s)?;
            let url = append_query(&location, &BTreeMap::from([("digest", self.digest.to_string())]));
            let put = Req::new(Method::PUT, url, self.what.clone())
                .header("content-type", "application/octet-stream")
                .body(self.part(0, self.size))
                .once();
            let failure = match s.send(&put) {
                Ok(resp) if resp.status() == 201 => return Ok(()),
                Ok(resp) if transient_status(resp.status().as_u16()) => s.status_error(resp, &self.what),
                Ok(resp) => return Err(s.status_error(resp, &self.what)),
                Err(e @ RegistryError::Unreachable { .. }) => e,
                Err(e) => return Err(e),
            };
            if attempt >= attempts {
                return Err(gave_up(failure, attempt));
            }
            self.retrying(s, 0, attempt);
            attempt += 1;
        }
    }

    /// The blob in PATCH requests of at most the chunk size, each saying its `Content-Range`, then an empty PUT
    /// that names the digest (the OCI distribution spec, "Pushing a blob in chunks"). When a chunk fails, the
    /// upload's status (a GET of its location) says how much the registry holds, and sending goes on from there;
    /// when the registry has given the upload up, a new one starts.
    fn chunked(&self, s: &mut Session<'_>) -> Result<()> {
        let (mut location, min_chunk) = start_upload(s)?;
        let chunk = s.upload_chunk.max(min_chunk).max(1);
        let attempts = s.retry.attempts.max(1);
        // Failures in a row without getting further than ever before: a registry that takes a few chunks and then
        // gives the upload up each time cannot keep the push going forever.
        let mut failures = 0;
        let mut furthest = 0;
        let mut offset = 0;
        while offset < self.size {
            let len = chunk.min(self.size - offset);
            let patch = Req::new(Method::PATCH, location.clone(), self.what.clone())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{offset}-{}", offset + len - 1))
                .body(self.part(offset, len))
                .once();
            let failure = match s.send(&patch) {
                Ok(resp) if resp.status() == 202 => {
                    let range = header(&resp, "range");
                    let held = range.as_deref().map_or(Some(offset + len), held_bytes);
                    match held.filter(|h| *h <= offset + len) {
                        Some(held) if held > offset => {
                            location = next_location(s, &resp, location)?;
                            offset = held;
                            if held > furthest {
                                furthest = held;
                                failures = 0;
                            }
                            continue;
                        }
                        _ => RegistryError::BadUploadRange {
                            registry: s.registry.clone(),
                            what: self.what.clone(),
                            range: range.unwrap_or_default(),
                            sent: offset + len,
                        },
                    }
                }
                Ok(resp) if resp.status() == 416 || transient_status(resp.status().as_u16()) => {
                    s.status_error(resp, &self.what)
                }
                Ok(resp) => return Err(s.status_error(resp, &self.what)),
                Err(e @ RegistryError::Unreachable { .. }) => e,
                Err(e) => return Err(e),
            };
            failures += 1;
            if failures >= attempts {
                return Err(gave_up(failure, failures));
            }
            self.retrying(s, offset, failures);
            (location, offset) = match self.status(s, location)? {
                Some(resumed) => resumed,
                // The registry gave the upload up: the reference registry does once an upload holds other than what
                // its last answer said, as after a chunk cut off halfway. Start again.
                None => (start_upload(s)?.0, 0),
            };
        }
        let url = append_query(&location, &BTreeMap::from([("digest", self.digest.to_string())]));
        let put = Req::new(Method::PUT, url, self.what.clone()).header("content-length", "0");
        let resp = s.send(&put)?;
        match resp.status().as_u16() {
            201 => Ok(()),
            // A PUT tried again after its first try was taken but its answer lost: the upload is gone, the blob there.
            404 if self.registry_has(s)? => Ok(()),
            _ => Err(s.status_error(resp, &self.what)),
        }
    }

    fn registry_has(&self, s: &mut Session<'_>) -> Result<bool> {
        let head = Req::new(Method::HEAD, s.url(&format!("blobs/{}", self.digest)), self.what.clone());
        Ok(s.send(&head)?.status() == 200)
    }

    /// Says a try failed and waits before the next.
    fn retrying(&self, s: &Session<'_>, offset: u64, attempt: u32) {
        s.report(self.digest.as_str(), self.role, offset, self.size, ProgressState::Retrying { attempt });
        sleep(s.retry.backoff(attempt));
    }

    /// Where the upload now stands: its next location, and how many bytes the registry holds; `None` when the
    /// registry no longer knows it or calls it invalid.
    fn status(&self, s: &mut Session<'_>, location: String) -> Result<Option<(String, u64)>> {
        let resp = s.send(&Req::new(Method::GET, location.clone(), self.what.clone()))?;
        match resp.status().as_u16() {
            204 => {}
            400 | 404 => return Ok(None),
            _ => return Err(s.status_error(resp, &self.what)),
        }
        let range = header(&resp, "range");
        let held = match range.as_deref() {
            None => Some(0),
            Some(r) => held_bytes(r).filter(|h| *h <= self.size),
        };
        let Some(held) = held else {
            let range = range.unwrap_or_default();
            let (registry, what) = (s.registry.clone(), self.what.clone());
            return Err(RegistryError::BadUploadRange { registry, what, range, sent: self.size });
        };
        Ok(Some((next_location(s, &resp, location)?, held)))
    }
}

/// Starts an upload (POST): its absolute location, and the smallest chunk the registry takes
/// (`OCI-Chunk-Min-Length`, 0 when it names none).
fn start_upload(s: &mut Session<'_>) -> Result<(String, u64)> {
    let what = format!("an upload to {}", s.repository);
    let start = Req::new(Method::POST, s.url("blobs/uploads/"), what.clone()).header("content-length", "0");
    let resp = s.send(&start)?;
    if resp.status() != 202 {
        return Err(s.status_error(resp, &what));
    }
    let min_chunk = header(&resp, "oci-chunk-min-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let location = header(&resp, "location")
        .ok_or_else(|| RegistryError::BadLocation { registry: s.registry.clone(), location: String::new() })?;
    Ok((s.resolve(&location)?, min_chunk))
}

/// The `Location` an upload answer names for the next request, or the current one when it names none.
fn next_location(s: &Session<'_>, resp: &Response<Body>, current: String) -> Result<String> {
    match header(resp, "location") {
        Some(location) => s.resolve(&location),
        None => Ok(current),
    }
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The bytes an upload's `Range: 0-END` says the registry holds. END is inclusive, but the reference registry
/// answers `0-0` for an empty upload too, so that means none.
fn held_bytes(range: &str) -> Option<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let end: u64 = range.strip_prefix("0-")?.parse().ok()?;
    Some(if end == 0 { 0 } else { end + 1 })
}

/// A transient failure that outlasted its tries, counted as what they were.
fn gave_up(failure: RegistryError, attempts: u32) -> RegistryError {
    match failure {
        RegistryError::Unreachable { registry, url, source, .. } => {
            RegistryError::Unreachable { registry, url, attempts, source }
        }
        other => other,
    }
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
