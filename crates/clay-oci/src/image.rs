//! From a layout's index.json (or `docker save`'s manifest.json) to a manifest, a config and a list of verified
//! layers: tag and platform selection, media type checks, digest and size checks.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::checks::Checks;
use crate::layers::{LayerBlob, Merge};
use crate::platform::Platform;
use crate::schema::{self, ConfigJson, Descriptor, DockerArchiveImage, Index, Layout, Manifest, Versioned};
use crate::store::{Blob, Store};
use crate::{Image, ImageConfig, Lookahead, OciError, ReadOptions};
use clay_digest::Digest;

/// The largest index, manifest or config we read into memory. Real ones are kilobytes; a config with a long
/// history a few megabytes.
const MAX_JSON: u64 = 32 << 20;
/// How deeply indexes may nest (an index of indexes ...) before we call it a loop.
const MAX_NESTING: usize = 8;

/// Reads the image tagged `tag` (the `org.opencontainers.image.ref.name` annotation) from the OCI image layout in
/// directory `dir`; without a tag the layout must hold one image. The registry client writes images into a
/// temporary layout and reads them with this.
pub fn read_layout(
    dir: &Path,
    tag: Option<&str>,
    options: &ReadOptions,
    warn: &mut dyn FnMut(String),
) -> Result<Image, OciError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(OciError::NotALayout(dir.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OciError::NotFound(dir.to_owned())),
        Err(source) => return Err(OciError::Io { path: dir.to_owned(), source }),
    }
    let store = Store::Dir(dir.to_owned());
    let name = with_tag(&format!("oci:{}", dir.display()), tag);
    Reader::new(&store, name, options, warn).layout(dir, tag)
}

/// Reads the image tagged `tag` from a tar archive of an OCI image layout (`podman save --format oci-archive`),
/// in place: blobs are byte ranges of the archive (or of one spill file when the archive is compressed).
pub fn read_oci_archive(
    path: &Path,
    tag: Option<&str>,
    options: &ReadOptions,
    warn: &mut dyn FnMut(String),
) -> Result<Image, OciError> {
    let store = Store::archive(path)?;
    let name = with_tag(&format!("oci-archive:{}", path.display()), tag);
    Reader::new(&store, name, options, warn).layout(path, tag)
}

/// Reads a `docker save` / `podman save --format docker-archive` archive, in place: its only image, or the one
/// `which` picks when it holds several (`docker save a b`). Both the legacy layout (`<id>/layer.tar`,
/// `<hex>.json`) and the OCI-style one (`blobs/sha256/<hex>`) are read; layers are checked against the config's
/// diff IDs, and blobs named by digest against their names.
pub fn read_docker_archive(
    path: &Path,
    which: Option<DockerImage<'_>>,
    options: &ReadOptions,
    warn: &mut dyn FnMut(String),
) -> Result<Image, OciError> {
    let store = Store::archive(path)?;
    let base = format!("docker-archive:{}", path.display());
    let name = match which {
        None => base,
        Some(DockerImage::Index(i)) => format!("{base}:@{i}"),
        Some(DockerImage::Tagged { name, .. }) => format!("{base}:{name}"),
    };
    Reader::new(&store, name, options, warn).docker_archive(which)
}

/// Which image of a docker archive that holds several to read: skopeo's `docker-archive:PATH:REF` and
/// `docker-archive:PATH:@INDEX`.
#[derive(Clone, Copy)]
pub enum DockerImage<'a> {
    /// The image at this position of the archive's `manifest.json`, counted from 0.
    Index(usize),
    /// The image one of whose `RepoTags` `matches` accepts. References are normalised by the caller
    /// (`debian` is `docker.io/library/debian:latest`); `name` is the reference as the user wrote it.
    Tagged { name: &'a str, matches: &'a dyn Fn(&str) -> bool },
}

impl std::fmt::Debug for DockerImage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerImage::Index(i) => write!(f, "Index({i})"),
            DockerImage::Tagged { name, .. } => write!(f, "Tagged({name:?})"),
        }
    }
}

fn with_tag(base: &str, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{base}:{t}"),
        None => base.to_owned(),
    }
}

struct Reader<'a> {
    store: &'a Store,
    image: String,
    platform: Platform,
    lookahead: Option<Arc<dyn Lookahead>>,
    defer_checks: bool,
    blobs_verified: bool,
    warn: &'a mut dyn FnMut(String),
}

impl<'a> Reader<'a> {
    fn new(store: &'a Store, image: String, options: &ReadOptions, warn: &'a mut dyn FnMut(String)) -> Self {
        let platform = options.platform.clone().unwrap_or_else(Platform::host);
        let (lookahead, defer_checks) = (options.lookahead.clone(), options.defer_checks);
        Reader { store, image, platform, lookahead, defer_checks, blobs_verified: options.blobs_verified, warn }
    }

    fn invalid(&self, what: impl Into<String>, reason: impl Into<String>) -> OciError {
        OciError::Invalid { image: self.image.clone(), what: what.into(), reason: reason.into() }
    }

    fn digest(&self, text: &str) -> Result<Digest, OciError> {
        Digest::parse(text).map_err(|reason| OciError::BadDigest { image: self.image.clone(), reason })
    }

    fn parse<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, OciError> {
        serde_json::from_slice(bytes).map_err(|e| self.invalid(what, e.to_string()))
    }

    /// A small file that is not content-addressed (oci-layout, index.json, manifest.json).
    fn small_file(&self, name: &str) -> Result<Option<Vec<u8>>, OciError> {
        let Some(blob) = self.store.open(name)? else { return Ok(None) };
        if blob.len > MAX_JSON {
            return Err(self.invalid(name, format!("it is {} bytes, more than any real one", blob.len)));
        }
        let mut bytes = Vec::new();
        blob.section().read_to_end(&mut bytes).map_err(|e| self.invalid(name, e.to_string()))?;
        Ok(Some(bytes))
    }

    /// The blob `digest` (with `size`, when known), read into memory and verified.
    fn json_blob(&self, what: &str, digest: &Digest, size: Option<u64>) -> Result<Vec<u8>, OciError> {
        let blob = self.find_blob(what, digest)?;
        self.check_size(what, digest, &blob, size)?;
        if blob.len > MAX_JSON {
            return Err(self.invalid(format!("{what} `{digest}`"), format!("it is {} bytes, too large", blob.len)));
        }
        let mut bytes = Vec::new();
        blob.section()
            .read_to_end(&mut bytes)
            .map_err(|e| self.invalid(format!("{what} `{digest}`"), e.to_string()))?;
        let mut hasher = digest.hasher();
        hasher.update(&bytes);
        let found = hasher.finish();
        if &found != digest {
            return Err(OciError::DigestMismatch {
                image: self.image.clone(),
                what: what.to_owned(),
                digest: digest.to_string(),
                found: found.to_string(),
            });
        }
        Ok(bytes)
    }

    fn find_blob(&self, what: &str, digest: &Digest) -> Result<Blob, OciError> {
        self.store.blob(digest)?.ok_or_else(|| OciError::MissingBlob {
            image: self.image.clone(),
            what: what.to_owned(),
            digest: digest.to_string(),
        })
    }

    fn check_size(&self, what: &str, digest: &Digest, blob: &Blob, size: Option<u64>) -> Result<(), OciError> {
        match size {
            Some(expected) if expected != blob.len => Err(OciError::Size {
                image: self.image.clone(),
                what: what.to_owned(),
                digest: digest.to_string(),
                expected,
                found: blob.len,
            }),
            _ => Ok(()),
        }
    }

    fn layout(mut self, location: &Path, tag: Option<&str>) -> Result<Image, OciError> {
        let layout = self.small_file("oci-layout")?.ok_or_else(|| OciError::NotALayout(location.to_owned()))?;
        let layout: Layout = self.parse("oci-layout", &layout)?;
        if layout.image_layout_version != schema::LAYOUT_VERSION {
            return Err(self.invalid(
                "oci-layout",
                format!(
                    "its imageLayoutVersion is `{}`, not `{}`",
                    layout.image_layout_version,
                    schema::LAYOUT_VERSION
                ),
            ));
        }
        let index = self.small_file("index.json")?.ok_or_else(|| self.invalid("index.json", "it is missing"))?;
        let index: Index = self.parse("index.json", &index)?;
        let candidates = self.by_tag(&index.manifests, tag)?;
        let (manifest_digest, manifest) = self.manifest(candidates)?;
        let config_digest = self.digest(&manifest.config.digest)?;
        let config = self.config(&manifest.config)?;
        let diff_ids = self.diff_ids(&config, manifest.layers.len())?;
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
            let digest = self.digest(&desc.digest)?;
            let media_type = desc.media_type.as_deref().unwrap_or_default();
            if schema::FOREIGN_LAYER_PREFIXES.iter().any(|p| media_type.starts_with(p)) {
                return Err(OciError::ForeignLayer {
                    image: self.image.clone(),
                    digest: digest.to_string(),
                    media_type: media_type.to_owned(),
                });
            }
            if !schema::LAYER_TYPES.contains(&media_type) {
                return Err(OciError::MediaType {
                    image: self.image.clone(),
                    what: format!("layer `{digest}`"),
                    media_type: media_type.to_owned(),
                });
            }
            let blob = self.find_blob("layer", &digest)?;
            layers.push(LayerBlob {
                name: digest.to_string(),
                blob,
                digest: Some(digest),
                size: Some(desc.size),
                diff_id: Some(diff_id),
                verified: self.blobs_verified,
            });
        }
        let mut image = self.merge(config_digest, config, layers)?;
        image.manifest_digest = Some(manifest_digest);
        Ok(image)
    }

    /// The index entries named `tag`; without a tag, the only entry, or every entry when none is tagged (an
    /// index of one image's platforms).
    fn by_tag<'d>(&self, manifests: &'d [Descriptor], tag: Option<&str>) -> Result<Vec<&'d Descriptor>, OciError> {
        let tags: Vec<&str> =
            manifests.iter().filter_map(|d| d.annotations.get(schema::REF_NAME)).map(String::as_str).collect();
        let available = || {
            if tags.is_empty() {
                "no tagged images".to_owned()
            } else {
                tags.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
            }
        };
        match tag {
            Some(tag) => {
                let found: Vec<&Descriptor> = manifests
                    .iter()
                    .filter(|d| d.annotations.get(schema::REF_NAME).map(String::as_str) == Some(tag))
                    .collect();
                if found.is_empty() {
                    return Err(OciError::NoSuchTag {
                        image: self.image.clone(),
                        tag: tag.to_owned(),
                        available: available(),
                    });
                }
                Ok(found)
            }
            None if manifests.is_empty() => Err(self.invalid("index.json", "it lists no images")),
            None if manifests.len() == 1 || tags.is_empty() => Ok(manifests.iter().collect()),
            None => Err(OciError::AmbiguousTag { image: self.image.clone(), available: available() }),
        }
    }

    /// Follows indexes down to one manifest for our platform; returns its digest and content.
    fn manifest(&mut self, candidates: Vec<&Descriptor>) -> Result<(Digest, Manifest), OciError> {
        let mut desc = match candidates.as_slice() {
            [one] => (*one).clone(),
            several => self.pick_platform(several.iter().copied())?,
        };
        for _ in 0..MAX_NESTING {
            let digest = self.digest(&desc.digest)?;
            let Some(media_type) = desc.media_type.clone() else {
                return Err(self.invalid(format!("the descriptor of `{digest}`"), "it has no mediaType"));
            };
            if schema::DOCKER_SCHEMA1.contains(&media_type.as_str()) {
                return Err(OciError::Schema1 { image: self.image.clone(), digest: digest.to_string() });
            }
            let is_index = schema::INDEX_TYPES.contains(&media_type.as_str());
            if !is_index && !schema::MANIFEST_TYPES.contains(&media_type.as_str()) {
                return Err(OciError::MediaType {
                    image: self.image.clone(),
                    what: format!("manifest `{digest}`"),
                    media_type,
                });
            }
            let what = if is_index { "image index" } else { "manifest" };
            let bytes = self.json_blob(what, &digest, Some(desc.size))?;
            let what = format!("{what} `{digest}`");
            let versioned: Versioned = self.parse(&what, &bytes)?;
            if versioned.schema_version == Some(1) {
                return Err(OciError::Schema1 { image: self.image.clone(), digest: digest.to_string() });
            }
            if let Some(own) = versioned.media_type.filter(|own| *own != media_type) {
                return Err(
                    self.invalid(what, format!("its mediaType `{own}` differs from its descriptor's `{media_type}`"))
                );
            }
            if is_index {
                let index: Index = self.parse(&what, &bytes)?;
                desc = self.pick_platform(index.manifests.iter())?;
            } else {
                return Ok((digest, self.parse(&what, &bytes)?));
            }
        }
        Err(self.invalid("the image index", format!("indexes nest more than {MAX_NESTING} deep")))
    }

    fn pick_platform<'d>(
        &self,
        manifests: impl Iterator<Item = &'d Descriptor> + Clone,
    ) -> Result<Descriptor, OciError> {
        let wanted = &self.platform;
        let found = manifests.clone().find(|d| {
            d.platform.as_ref().is_some_and(|p| wanted.matches(&p.os, &p.architecture, p.variant.as_deref()))
        });
        if let Some(d) = found {
            return Ok(d.clone());
        }
        // One entry that names no platform (an index of one nested index, say) is taken; a single image's
        // config is still checked against the platform.
        let mut unnamed = manifests.clone().filter(|d| d.platform.is_none());
        if let (Some(only), None) = (unnamed.next(), unnamed.next()) {
            if manifests.clone().count() == 1 {
                return Ok(only.clone());
            }
        }
        let mut available: Vec<String> = manifests
            .filter_map(|d| d.platform.as_ref())
            // Attestation manifests (buildx) carry the platform unknown/unknown; they are not images.
            .filter(|p| p.os != "unknown")
            .map(|p| Platform::describe(&p.os, &p.architecture, p.variant.as_deref()))
            .collect();
        available.dedup();
        let available =
            if available.is_empty() { "only images without a platform".to_owned() } else { available.join(", ") };
        Err(OciError::NoSuchPlatform { image: self.image.clone(), wanted: wanted.to_string(), available })
    }

    fn config(&self, desc: &Descriptor) -> Result<ConfigJson, OciError> {
        let digest = self.digest(&desc.digest)?;
        let media_type = desc.media_type.as_deref().unwrap_or_default();
        if !schema::CONFIG_TYPES.contains(&media_type) {
            return Err(OciError::MediaType {
                image: self.image.clone(),
                what: format!("config `{digest}`"),
                media_type: media_type.to_owned(),
            });
        }
        let bytes = self.json_blob("config", &digest, Some(desc.size))?;
        self.config_from(&digest, &bytes)
    }

    fn config_from(&self, digest: &Digest, bytes: &[u8]) -> Result<ConfigJson, OciError> {
        let config: ConfigJson = self.parse(&format!("config `{digest}`"), bytes)?;
        // A single-platform image names its platform only here; it must still be the one asked for.
        if let (Some(os), Some(arch)) = (&config.os, &config.architecture) {
            let wanted = &self.platform;
            if !wanted.matches(os, arch, config.variant.as_deref()) {
                let available = Platform::describe(os, arch, config.variant.as_deref());
                return Err(OciError::NoSuchPlatform {
                    image: self.image.clone(),
                    wanted: wanted.to_string(),
                    available,
                });
            }
        }
        Ok(config)
    }

    /// The entry of `manifest.json` that `which` names, or its only one.
    fn docker_entry<'i>(
        &self,
        images: &'i [DockerArchiveImage],
        which: Option<DockerImage<'_>>,
    ) -> Result<&'i DockerArchiveImage, OciError> {
        if images.is_empty() {
            return Err(self.invalid("manifest.json", "it lists no images"));
        }
        // Every image by its tags and position: `localhost/a:latest` (@0), @1 for one without tags.
        let available = || {
            let listed: Vec<String> = images
                .iter()
                .enumerate()
                .map(|(i, image)| match image.repo_tags.as_deref().unwrap_or_default() {
                    [] => format!("@{i} (untagged)"),
                    tags => format!("{} (@{i})", tags.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")),
                })
                .collect();
            listed.join(", ")
        };
        match which {
            None => match images {
                [one] => Ok(one),
                _ => Err(OciError::AmbiguousArchive { image: self.image.clone(), available: available() }),
            },
            Some(DockerImage::Index(i)) => images.get(i).ok_or_else(|| OciError::NoSuchIndex {
                image: self.image.clone(),
                index: i,
                count: images.len(),
            }),
            Some(DockerImage::Tagged { name, matches }) => {
                let tagged = |image: &&DockerArchiveImage| image.repo_tags.iter().flatten().any(|t| matches(t));
                let mut found = images.iter().filter(tagged);
                match (found.next(), found.next()) {
                    (Some(one), None) => Ok(one),
                    (None, _) => Err(OciError::NoSuchTag {
                        image: self.image.clone(),
                        tag: name.to_owned(),
                        available: available(),
                    }),
                    (Some(_), Some(_)) => Err(self.invalid(
                        "manifest.json",
                        format!("several of its images are tagged `{name}`; choose one as @INDEX: {}", available()),
                    )),
                }
            }
        }
    }

    fn diff_ids(&self, config: &ConfigJson, layers: usize) -> Result<Vec<Digest>, OciError> {
        let ids = config.rootfs.as_ref().map(|r| r.diff_ids.as_slice()).unwrap_or_default();
        if ids.len() != layers {
            return Err(
                self.invalid("the config", format!("it lists {} layer diff IDs for {layers} layers", ids.len()))
            );
        }
        ids.iter().map(|d| self.digest(d)).collect()
    }

    fn docker_archive(mut self, which: Option<DockerImage<'_>>) -> Result<Image, OciError> {
        let manifest = self
            .small_file("manifest.json")?
            .ok_or_else(|| self.invalid("manifest.json", "it is missing, so this is not a docker save archive"))?;
        let images: Vec<DockerArchiveImage> = self.parse("manifest.json", &manifest)?;
        let entry = self.docker_entry(&images, which)?;
        let config_digest = named_digest(&entry.config)
            .ok_or_else(|| self.invalid(format!("config `{}`", entry.config), "its name is not a digest"))?;
        let config_bytes = self.archive_file(&entry.config)?;
        let mut hasher = config_digest.hasher();
        hasher.update(&config_bytes);
        let found = hasher.finish();
        if found != config_digest {
            return Err(OciError::DigestMismatch {
                image: self.image.clone(),
                what: "config".into(),
                digest: entry.config.clone(),
                found: found.to_string(),
            });
        }
        let config = self.config_from(&config_digest, &config_bytes)?;
        let diff_ids = self.diff_ids(&config, entry.layers.len())?;
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
            if let Some(source) = entry.layer_sources.get(&diff_id.to_string()) {
                return Err(OciError::ForeignLayer {
                    image: self.image.clone(),
                    digest: diff_id.to_string(),
                    media_type: source.media_type.clone().unwrap_or_default(),
                });
            }
            let blob = self.store.open(path)?.ok_or_else(|| OciError::MissingBlob {
                image: self.image.clone(),
                what: "layer".into(),
                digest: path.clone(),
            })?;
            // Only `blobs/<alg>/<hex>` names are digests of the stored bytes; `<id>/layer.tar` is an ID.
            let digest = if path.starts_with("blobs/") { named_digest(path) } else { None };
            let verified = self.blobs_verified;
            layers.push(LayerBlob { name: path.clone(), blob, digest, size: None, diff_id: Some(diff_id), verified });
        }
        self.merge(config_digest, config, layers)
    }

    fn archive_file(&self, name: &str) -> Result<Vec<u8>, OciError> {
        self.small_file(name)?.ok_or_else(|| OciError::MissingBlob {
            image: self.image.clone(),
            what: "config".into(),
            digest: name.to_owned(),
        })
    }

    fn merge(&mut self, config_digest: Digest, config: ConfigJson, layers: Vec<LayerBlob>) -> Result<Image, OciError> {
        let mut merge = Merge::new();
        let mut names = Vec::new();
        let mut checks = Checks::default();
        for layer in &layers {
            // Each layer is merged while its digests are still being checked; any error then defers to theirs.
            let merged = layer
                .tar(&self.image, self.lookahead.as_deref(), &mut checks)
                .and_then(|tar| merge.apply(&self.image, &layer.name, &tar, self.warn));
            if let Err(e) = merged {
                return Err(checks.explain(e));
            }
            names.push(layer.name.clone());
        }
        if !self.defer_checks {
            std::mem::take(&mut checks).wait()?;
        }
        let container = config.config.unwrap_or_default();
        let image_config = ImageConfig {
            os: config.os,
            architecture: config.architecture,
            variant: config.variant,
            env: container.env.unwrap_or_default(),
            entrypoint: container.entrypoint,
            cmd: container.cmd,
            working_dir: container.working_dir.filter(|w| !w.is_empty()),
            user: container.user.filter(|u| !u.is_empty()),
            labels: container.labels.unwrap_or_default(),
        };
        Ok(Image {
            tree: merge.finish(),
            config: image_config,
            manifest_digest: None,
            config_digest,
            layers: names,
            checks,
        })
    }
}

/// The digest a docker-archive file name carries: `blobs/<alg>/<hex>` or `<hex>.json` (sha256).
fn named_digest(name: &str) -> Option<Digest> {
    if let Some(rest) = name.strip_prefix("blobs/") {
        let (alg, hex) = rest.split_once('/')?;
        return Digest::parse(&format!("{alg}:{hex}")).ok();
    }
    let hex = name.strip_suffix(".json")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}
