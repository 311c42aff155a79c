//! Synthetic images built in memory: layer tarballs written header by header (so hostile shapes can be made),
//! blobs, manifests and indexes, written out as a layout directory, an oci-archive or a docker-archive.

mod hostile;
mod images;
mod merge;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tar::{EntryType, Header};

use super::*;

pub(crate) const MTIME: u64 = 1_700_000_000;

/// A tar stream written header by header; names and link names are raw bytes, never checked.
#[derive(Default)]
pub(crate) struct Tar(Vec<u8>);

impl Tar {
    pub fn raw(&mut self, name: &str, kind: EntryType, data: &[u8], edit: impl FnOnce(&mut Header)) -> &mut Self {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        edit(&mut h);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name, EntryType::Regular, data, |_| {})
    }

    pub fn file_mode(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(name, EntryType::Regular, data, |h| h.set_mode(mode))
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name, EntryType::Directory, b"", |_| {})
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Symlink, b"", |h| h.set_link_name_literal(target).unwrap())
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Link, b"", |h| h.set_link_name_literal(target).unwrap())
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // "%d %s=%s\n", where the length counts itself.
            let body = key.len() + value.len() + 3;
            let mut len = body + body.to_string().len();
            if len.to_string().len() != body.to_string().len() {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.raw("././@PaxHeader", EntryType::XHeader, &data, |_| {})
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comp {
    Plain,
    Gzip,
    Zstd,
}

pub(crate) fn compress(data: &[u8], comp: Comp) -> Vec<u8> {
    match comp {
        Comp::Plain => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

pub(crate) fn sha256(data: &[u8]) -> String {
    Digest::sha256_of(data).to_string()
}

/// Blobs by digest, and helpers that add manifests and indexes to them.
#[derive(Default, Clone)]
pub(crate) struct Blobs(pub BTreeMap<String, Vec<u8>>);

impl Blobs {
    pub fn add(&mut self, data: Vec<u8>) -> (String, u64) {
        let digest = sha256(&data);
        let size = data.len() as u64;
        self.0.insert(digest.clone(), data);
        (digest, size)
    }

    pub fn add_json(&mut self, media_type: &str, value: &Value) -> Value {
        let (digest, size) = self.add(serde_json::to_vec(value).unwrap());
        json!({ "mediaType": media_type, "digest": digest, "size": size })
    }

    /// An image manifest for `layers` (tar bytes and compression) on `platform` (`os/arch[/variant]`).
    pub fn image(&mut self, layers: &[(Vec<u8>, Comp)], platform: &str) -> Value {
        self.image_with(layers, platform, |_, _| {})
    }

    /// [`image`], with a hook to edit the config and manifest documents before they are stored.
    pub fn image_with(
        &mut self,
        layers: &[(Vec<u8>, Comp)],
        platform: &str,
        edit: impl FnOnce(&mut Value, &mut Value),
    ) -> Value {
        let parts: Vec<&str> = platform.split('/').collect();
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (tar, comp) in layers {
            diff_ids.push(sha256(tar));
            let media_type = match comp {
                Comp::Plain => schema::OCI_LAYER,
                Comp::Gzip => schema::OCI_LAYER_GZIP,
                Comp::Zstd => schema::OCI_LAYER_ZSTD,
            };
            let (digest, size) = self.add(compress(tar, *comp));
            layer_descs.push(json!({ "mediaType": media_type, "digest": digest, "size": size }));
        }
        let mut config = json!({
            "os": parts[0], "architecture": parts[1],
            "config": { "Env": ["PATH=/bin"], "Entrypoint": ["/sbin/init"], "Cmd": ["--verbose"],
                        "WorkingDir": "/root", "User": "0:0", "Labels": { "org.example": "yes" } },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        if let Some(v) = parts.get(2) {
            config["variant"] = json!(v);
        }
        let mut manifest = json!({ "schemaVersion": 2, "mediaType": schema::OCI_MANIFEST, "layers": layer_descs });
        edit(&mut config, &mut manifest);
        manifest["config"] = self.add_json(schema::OCI_CONFIG, &config);
        let mut desc = self.add_json(schema::OCI_MANIFEST, &manifest);
        let mut p = json!({ "os": parts[0], "architecture": parts[1] });
        if let Some(v) = parts.get(2) {
            p["variant"] = json!(v);
        }
        desc["platform"] = p;
        desc
    }

    /// An image index over `manifests`, stored as a blob; returns its descriptor.
    pub fn index(&mut self, manifests: Vec<Value>) -> Value {
        let index = json!({ "schemaVersion": 2, "mediaType": schema::OCI_INDEX, "manifests": manifests });
        self.add_json(schema::OCI_INDEX, &index)
    }

    /// The files of a layout whose index.json lists `manifests`, by path.
    pub fn layout_files(&self, manifests: Vec<Value>) -> Vec<(String, Vec<u8>)> {
        let index = json!({ "schemaVersion": 2, "mediaType": schema::OCI_INDEX, "manifests": manifests });
        let mut files = vec![
            ("oci-layout".to_owned(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            ("index.json".to_owned(), serde_json::to_vec(&index).unwrap()),
        ];
        for (digest, data) in &self.0 {
            files.push((format!("blobs/{}", digest.replace(':', "/")), data.clone()));
        }
        files
    }

    pub fn write_layout(&self, dir: &Path, manifests: Vec<Value>) {
        write_files(dir, &self.layout_files(manifests));
    }

    pub fn write_oci_archive(&self, path: &Path, manifests: Vec<Value>) {
        std::fs::write(path, archive(&self.layout_files(manifests))).unwrap();
    }
}

pub(crate) fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, data) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

/// A plain tar of `files`, directories implied.
pub(crate) fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut t = Tar::default();
    for (name, data) in files {
        t.file(name, data);
    }
    t.finish()
}

/// Tags an index.json entry.
pub(crate) fn tagged(mut desc: Value, tag: &str) -> Value {
    desc["annotations"] = json!({ schema::REF_NAME: tag });
    desc
}

pub(crate) fn opts(platform: Option<&str>) -> ReadOptions {
    ReadOptions { platform: platform.map(|p| p.parse().unwrap()), ..ReadOptions::default() }
}

/// Reads a layout directory holding one image made of `layers`.
pub(crate) fn read_layers(layers: &[(Vec<u8>, Comp)]) -> Result<Image, OciError> {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let image = blobs.image(layers, "linux/amd64");
    blobs.write_layout(dir.path(), vec![image]);
    read_layout(dir.path(), None, &opts(None), &mut |w| panic!("unexpected warning: {w}"))
}

/// Every path under `dir`, with sizes, to prove a read wrote nothing.
pub(crate) fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), meta.len()));
        }
    }
    out.sort();
    out
}

pub(crate) fn content(image: &Image, path: &str) -> Vec<u8> {
    let id = image.tree.lookup(path.as_bytes()).unwrap().unwrap_or_else(|| panic!("no {path}"));
    let clay_tree::Kind::File(c) = &image.tree.inode(id).kind else { panic!("{path} is not a file") };
    c.read_all(path).unwrap()
}
