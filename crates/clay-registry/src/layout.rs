//! The OCI image layout on disk (OCI image spec image-layout.md): `oci-layout`, `index.json` and
//! `blobs/<algorithm>/<hex>`. Blobs arrive in hidden temporary files and are renamed into place once verified, so a
//! blob file that exists is always whole.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::{file_matches, Digest};
use crate::error::{RegistryError, Result};
use crate::manifest::{Descriptor, Index, Kind, ANNOTATION_REF_NAME, MAX_MANIFEST_SIZE, OCI_INDEX};

/// The content of `oci-layout`.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub const INDEX_FILE: &str = "index.json";

#[derive(Debug)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// Creates (or reuses) a layout in `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        // The algorithm of the manifests written here; another's directory is made when a blob needs it.
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| RegistryError::io("creating", &blobs, e))?;
        let layout = Self { dir: dir.to_owned() };
        layout.write_atomically(&dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT)?;
        Ok(layout)
    }

    /// Opens an existing layout for reading.
    pub fn open(dir: &Path) -> Result<Self> {
        let marker = dir.join(OCI_LAYOUT_FILE);
        if !marker.is_file() {
            return Err(RegistryError::BadLayout {
                dir: dir.to_owned(),
                reason: format!("it has no {OCI_LAYOUT_FILE} file"),
            });
        }
        Ok(Self { dir: dir.to_owned() })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.algorithm()).join(digest.hex())
    }

    /// Where a blob is downloaded before it is verified (its algorithm's directory is made if need be).
    pub fn partial_path(&self, digest: &Digest) -> Result<PathBuf> {
        let dir = self.dir.join("blobs").join(digest.algorithm());
        fs::create_dir_all(&dir).map_err(|e| RegistryError::io("creating", &dir, e))?;
        Ok(dir.join(format!(".{}.partial", digest.hex())))
    }

    pub fn has_blob(&self, digest: &Digest, size: u64) -> Result<bool> {
        file_matches(&self.blob_path(digest), digest, size)
    }

    /// Stores a small blob (a manifest) held in memory; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(bytes);
        let size = bytes.len() as u64;
        if !self.has_blob(&digest, size)? {
            self.write_atomically(&self.blob_path(&digest), bytes)?;
        }
        Ok(digest)
    }

    /// Reads a small blob (a manifest or config), checking its digest and size.
    pub fn read_small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let digest = Digest::parse(&desc.digest)?;
        let mismatch = || RegistryError::LayoutBlobMismatch { dir: self.dir.clone(), digest: desc.digest.clone() };
        if desc.size > MAX_MANIFEST_SIZE {
            return Err(RegistryError::BadLayout {
                dir: self.dir.clone(),
                reason: format!("the manifest {} is larger than {MAX_MANIFEST_SIZE} bytes", desc.digest),
            });
        }
        let path = self.blob_path(&digest);
        let bytes = fs::read(&path).map_err(|e| RegistryError::io("reading", &path, e))?;
        if bytes.len() as u64 != desc.size || digest.recompute(&bytes) != digest {
            return Err(mismatch());
        }
        Ok(bytes)
    }

    pub fn read_index(&self) -> Result<Option<Index>> {
        let path = self.dir.join(INDEX_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::io("reading", &path, e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| RegistryError::BadLayout {
            dir: self.dir.clone(),
            reason: format!("its {INDEX_FILE} is not an image index ({e})"),
        })
    }

    /// Adds `desc` to index.json, replacing an entry with the same ref name (or, without one, the same digest).
    pub fn add_to_index(&self, desc: &Descriptor) -> Result<()> {
        let mut index = self.read_index()?.unwrap_or_else(|| Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            ..Index::default()
        });
        let name = desc.annotations.get(ANNOTATION_REF_NAME);
        index.manifests.retain(|m| match name {
            Some(n) => m.annotations.get(ANNOTATION_REF_NAME) != Some(n),
            None => m.digest != desc.digest || m.annotations.contains_key(ANNOTATION_REF_NAME),
        });
        index.manifests.push(desc.clone());
        let json = serde_json::to_vec_pretty(&index).map_err(|e| RegistryError::BadLayout {
            dir: self.dir.clone(),
            reason: format!("its index could not be serialised ({e})"),
        })?;
        self.write_atomically(&self.dir.join(INDEX_FILE), &json)
    }

    /// The index.json entry named `ref_name`, or the only entry when `ref_name` is `None`.
    pub fn find_manifest(&self, ref_name: Option<&str>) -> Result<Descriptor> {
        let bad = |reason: String| RegistryError::BadLayout { dir: self.dir.clone(), reason };
        let index = self.read_index()?.ok_or_else(|| bad(format!("it has no {INDEX_FILE}")))?;
        match ref_name {
            Some(name) => index
                .manifests
                .into_iter()
                .find(|m| m.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(name))
                .ok_or_else(|| bad(format!("its {INDEX_FILE} names no image `{name}`"))),
            None => {
                let count = index.manifests.len();
                let mut it = index.manifests.into_iter();
                match (it.next(), count) {
                    (Some(only), 1) => Ok(only),
                    _ => Err(bad(format!("its {INDEX_FILE} has {count} images; name one"))),
                }
            }
        }
    }

    pub fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let mut f = File::create(&tmp).map_err(|e| RegistryError::io("creating", &tmp, e))?;
        f.write_all(bytes).map_err(|e| RegistryError::io("writing", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| RegistryError::io("renaming into place", path, e))
    }
}

/// The kind of a manifest stored in a layout, from its bytes and descriptor.
pub(crate) fn layout_kind(dir: &Path, bytes: &[u8], desc: &Descriptor) -> Result<(Kind, String)> {
    let hint = (!desc.media_type.is_empty()).then_some(desc.media_type.as_str());
    crate::manifest::classify(bytes, hint).map_err(|e| RegistryError::BadLayout {
        dir: dir.to_owned(),
        reason: match e {
            crate::manifest::Unusable::Invalid(r) => format!("the manifest {} is invalid: {r}", desc.digest),
            crate::manifest::Unusable::Unsupported(m) => {
                format!("the manifest {} has the unsupported media type `{m}`", desc.digest)
            }
        },
    })
}
