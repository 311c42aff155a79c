//! Pulling an image into an OCI layout: manifest (through an index to one platform's), config and layers, each blob
//! streamed to a file while its digest and size are checked.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;
use std::thread::sleep;

use ureq::http::Method;

use crate::client::{read_small, Req, Session};
use crate::digest::Digest;
use crate::error::{RegistryError, Result};
use crate::layout::Layout;
use crate::manifest::{
    self, oci_media_type, Descriptor, Index, Kind, Manifest, Unusable, ANNOTATION_REF_NAME, DOCKER_MANIFEST,
    MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, OCI_MANIFEST,
};
use crate::platform::{self, Platform};
use crate::reference::Reference;
use crate::registries::PullSource;
use crate::{BlobRole, ProgressState, PullOptions, Pulled};

/// Pulls `reference` into the OCI layout in `layout_dir` (created if needed; blobs already there with the right
/// digest are kept). The manifest lands in index.json named by the reference's tag; a Docker schema 2 manifest is
/// converted to its OCI twin on the way (as `skopeo copy` to `oci:` does), the blobs are stored as they are.
///
/// registries.conf ([`Access::registries`](crate::Access)) may refuse the image, or send the pull elsewhere: its
/// mirrors are tried in turn, and the first that has the image's manifest is pulled from; the primary location is
/// tried last, as podman does.
pub fn pull(reference: &Reference, options: &PullOptions<'_>, layout_dir: &Path) -> Result<Pulled> {
    let want = match &options.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let image = reference.to_string();
    let sources = options.access.registries.pull_sources(reference)?;
    let mut mirror_failures = Vec::new();
    let mut opened = None;
    for mirror in &sources.mirrors {
        match open_at(mirror, true, &sources.primary, options) {
            Ok(found) => {
                opened = Some(found);
                break;
            }
            Err(err) => mirror_failures.push(format!("{}: {}", mirror.reference.name(), error_chain(&err))),
        }
    }
    let Opened { at, session: mut s, top: (top_bytes, top_type, top_kind), top_what } = match opened {
        Some(found) => found,
        None => match open_at(&sources.primary, false, &sources.primary, options) {
            Ok(found) => found,
            Err(err) if mirror_failures.is_empty() => return Err(err),
            Err(err) => {
                let mirrors = mirror_failures.join("; ");
                return Err(RegistryError::MirrorsFailed { image, mirrors, primary: Box::new(err) });
            }
        },
    };
    let layout = Layout::create(layout_dir)?;
    // The digest that pins this pull: the one the reference gave (checked by the fetch), else the registry's.
    let registry_digest = at.digest.clone().unwrap_or_else(|| Digest::sha256_of(&top_bytes));

    let (bytes, media_type, chosen_platform) = match top_kind {
        Kind::Manifest => (top_bytes, top_type, None),
        Kind::Index => {
            let index: Index = serde_json::from_slice(&top_bytes).map_err(|e| bad_manifest(&s, &top_what, e))?;
            let chosen = platform::select(&index.manifests, &want).ok_or_else(|| RegistryError::NoPlatform {
                image: image.clone(),
                wanted: want.to_string(),
                available: platform::available(&index.manifests),
            })?;
            let digest = Digest::parse(&chosen.digest)?;
            let what = format!("manifest {digest} ({}) of {}", want, at.repository);
            let (bytes, media_type, kind) =
                fetch_manifest(&mut s, digest.as_str(), Some(&digest), Some(chosen.size), &what)?;
            if kind != Kind::Manifest {
                return Err(RegistryError::BadManifest {
                    registry: s.registry.clone(),
                    what,
                    reason: "it is an index inside an index".to_owned(),
                });
            }
            (bytes, media_type, chosen.platform.clone())
        }
    };
    let manifest_what = format!("manifest of {image}");
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad_manifest(&s, &manifest_what, e))?;

    let mut downloaded = 0u64;
    downloaded += fetch_blob(&mut s, &layout, &manifest.config, BlobRole::Config, &format!("config of {image}"))?;
    let count = manifest.layers.len();
    for (i, layer) in manifest.layers.iter().enumerate() {
        let what = format!("layer {} of {count} of {image}", i + 1);
        downloaded += fetch_blob(&mut s, &layout, layer, BlobRole::Layer(i), &what)?;
    }

    // The layout gets OCI media types only, so its readers need to know one vocabulary.
    let (layout_bytes, layout_manifest) = if media_type == DOCKER_MANIFEST {
        let mut m = manifest.clone();
        m.media_type = Some(OCI_MANIFEST.to_owned());
        m.config.media_type = oci_media_type(&m.config.media_type).to_owned();
        for l in &mut m.layers {
            l.media_type = oci_media_type(&l.media_type).to_owned();
        }
        let bytes = serde_json::to_vec(&m).map_err(|e| bad_manifest(&s, &manifest_what, e))?;
        (bytes, m)
    } else {
        (bytes, manifest)
    };
    let digest = layout.put_blob(&layout_bytes)?;
    let mut desc = Descriptor {
        media_type: OCI_MANIFEST.to_owned(),
        digest: digest.to_string(),
        size: layout_bytes.len() as u64,
        platform: chosen_platform.clone(),
        artifact_type: layout_manifest.artifact_type.clone(),
        ..Descriptor::default()
    };
    if let Some(tag) = &reference.tag {
        desc.annotations.insert(ANNOTATION_REF_NAME.to_owned(), tag.clone());
    }
    layout.add_to_index(&desc)?;

    Ok(Pulled {
        reference: reference.clone(),
        source: at,
        registry_digest,
        config: layout_manifest.config.clone(),
        layers: layout_manifest.layers.clone(),
        manifest: desc,
        platform: chosen_platform,
        ref_name: reference.tag.clone(),
        bytes_downloaded: downloaded,
    })
}

/// A pull's source that answered: its session, and the manifest (or index) the reference names there.
struct Opened<'a> {
    at: Reference,
    session: Session<'a>,
    top: (Vec<u8>, String, Kind),
    /// What the top manifest is, for messages.
    top_what: String,
}

/// Opens a session with the registry of `source` and fetches the manifest (or index) the reference names there.
/// A mirror that does not answer at once is passed over for the next place, as podman passes it over; once it has
/// answered, its requests are retried as usual. Credentials given directly are for the `primary` location's
/// registry.
fn open_at<'a>(
    source: &PullSource,
    mirror: bool,
    primary: &PullSource,
    options: &'a PullOptions<'_>,
) -> Result<Opened<'a>> {
    let at = &source.reference;
    let mut session = options.access.session(source.insecure, at.registry == primary.reference.registry);
    if mirror {
        session.retry.attempts = 1;
    }
    let mut s = Session::open(at, &session, "pull")?;
    let top_ref = at.manifest_reference();
    let top_what = format!("manifest `{top_ref}` of {}", at.repository);
    let top = fetch_manifest(&mut s, &top_ref, at.digest.as_ref(), None, &top_what)?;
    s.retry = options.access.retry;
    Ok(Opened { at: at.clone(), session: s, top, top_what })
}

/// An error with its causes, as one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        line.push_str(&format!(": {c}"));
        cause = c.source();
    }
    line
}

fn bad_manifest(s: &Session<'_>, what: &str, e: serde_json::Error) -> RegistryError {
    RegistryError::BadManifest { registry: s.registry.clone(), what: what.to_owned(), reason: e.to_string() }
}

/// GETs a manifest or index, bounded in size, checked against `digest`/`size` when known.
fn fetch_manifest(
    s: &mut Session<'_>,
    reference: &str,
    digest: Option<&Digest>,
    size: Option<u64>,
    what: &str,
) -> Result<(Vec<u8>, String, Kind)> {
    let req = Req::new(Method::GET, s.url(&format!("manifests/{reference}")), what).header("accept", MANIFEST_ACCEPT);
    let mut resp = s.send(&req)?;
    if resp.status() != 200 {
        return Err(s.status_error(resp, what));
    }
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = read_small(&mut resp, MAX_MANIFEST_SIZE).map_err(|e| RegistryError::BadManifest {
        registry: s.registry.clone(),
        what: what.to_owned(),
        reason: match e {
            ureq::Error::BodyExceedsLimit(_) => format!("it is larger than {MAX_MANIFEST_SIZE} bytes"),
            other => format!("reading it failed: {other}"),
        },
    })?;
    if let Some(digest) = digest {
        let actual = digest.recompute(&bytes);
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                registry: s.registry.clone(),
                what: what.to_owned(),
                digest: digest.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    if let Some(size) = size.filter(|&n| n != bytes.len() as u64) {
        return Err(RegistryError::SizeMismatch {
            registry: s.registry.clone(),
            what: what.to_owned(),
            digest: Digest::sha256_of(&bytes).to_string(),
            expected: size,
            actual: bytes.len().to_string(),
        });
    }
    let (kind, media_type) = manifest::classify(&bytes, content_type.as_deref()).map_err(|e| match e {
        Unusable::Invalid(reason) => {
            RegistryError::BadManifest { registry: s.registry.clone(), what: what.to_owned(), reason }
        }
        Unusable::Unsupported(media_type) => RegistryError::UnsupportedMediaType {
            registry: s.registry.clone(),
            what: what.to_owned(),
            hint: if media_type.contains("manifest.v1") {
                "Docker schema 1 images are obsolete; push the image again with a current tool".to_owned()
            } else {
                String::new()
            },
            media_type,
        },
    })?;
    Ok((bytes, media_type, kind))
}

/// Why a download attempt stopped.
enum Stop {
    /// The connection broke mid-body: worth another try.
    Interrupted(std::io::Error),
    Fatal(RegistryError),
}

impl From<RegistryError> for Stop {
    fn from(e: RegistryError) -> Self {
        Stop::Fatal(e)
    }
}

/// Downloads one blob into the layout unless it is already there; returns the bytes downloaded.
fn fetch_blob(s: &mut Session<'_>, layout: &Layout, desc: &Descriptor, role: BlobRole, what: &str) -> Result<u64> {
    let digest = Digest::parse(&desc.digest)?;
    let size = desc.size;
    if layout.has_blob(&digest, size)? {
        s.report(digest.as_str(), role, size, size, ProgressState::Cached);
        return Ok(0);
    }
    s.report(digest.as_str(), role, 0, size, ProgressState::Started);
    let partial = layout.partial_path(&digest)?;
    let attempts = s.retry().attempts.max(1);
    let mut attempt = 1;
    let result = loop {
        match download(s, &digest, size, &partial, role, what) {
            Ok(()) => break Ok(()),
            Err(Stop::Interrupted(_)) if attempt < attempts => {
                s.report(digest.as_str(), role, 0, size, ProgressState::Retrying { attempt });
                sleep(s.retry().backoff(attempt));
                attempt += 1;
            }
            Err(Stop::Interrupted(source)) => {
                break Err(RegistryError::Transfer { registry: s.registry.clone(), what: what.to_owned(), source })
            }
            Err(Stop::Fatal(e)) => break Err(e),
        }
    };
    if let Err(e) = result {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    let path = layout.blob_path(&digest);
    fs::rename(&partial, &path).map_err(|e| RegistryError::io("renaming into place", &path, e))?;
    s.report(digest.as_str(), role, size, size, ProgressState::Finished);
    Ok(size)
}

fn download(
    s: &mut Session<'_>,
    digest: &Digest,
    size: u64,
    partial: &Path,
    role: BlobRole,
    what: &str,
) -> std::result::Result<(), Stop> {
    let req = Req::new(Method::GET, s.url(&format!("blobs/{digest}")), what);
    let mut resp = s.send(&req)?;
    if resp.status() != 200 {
        return Err(Stop::Fatal(s.status_error(resp, &format!("blob {digest} ({what})"))));
    }
    let mut file = File::create(partial).map_err(|e| RegistryError::io("creating", partial, e))?;
    let mut reader = resp.body_mut().as_reader();
    let mut hasher = digest.hasher();
    let mut buf = vec![0u8; 1 << 16];
    let (mut done, mut last) = (0u64, 0u64);
    let mismatch = |actual: String| {
        Stop::Fatal(RegistryError::SizeMismatch {
            registry: s.registry.clone(),
            what: what.to_owned(),
            digest: digest.to_string(),
            expected: size,
            actual,
        })
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stop::Interrupted(e)),
        };
        done = done.saturating_add(n as u64);
        if done > size {
            return Err(mismatch(format!("more than {size}")));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| RegistryError::io("writing", partial, e))?;
        if done - last >= crate::client::PROGRESS_STEP {
            last = done;
            s.report(digest.as_str(), role, done, size, ProgressState::Transferring);
        }
    }
    if done != size {
        return Err(mismatch(done.to_string()));
    }
    let actual = hasher.finish();
    if actual != *digest {
        return Err(Stop::Fatal(RegistryError::DigestMismatch {
            registry: s.registry.clone(),
            what: what.to_owned(),
            digest: digest.to_string(),
            actual: actual.to_string(),
        }));
    }
    file.sync_all().map_err(|e| RegistryError::io("writing", partial, e))?;
    Ok(())
}
