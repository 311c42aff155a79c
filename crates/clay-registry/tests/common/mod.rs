//! Test harness: a real registry (Debian's `docker-registry`) on a loopback port with htpasswd auth, OCI layouts
//! built with the tar crate, skopeo as the oracle, and a tiny scripted HTTP server for misbehaving registries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clay_registry::Digest;
use serde_json::json;

// Each test binary uses part of the harness.
#[allow(unused_imports)]
pub use clay_testkit::registry::{free_port, Registry, Tls, PASSWORD, USER};

/// Runs skopeo (with `--insecure-policy`, so no policy.json is needed) and returns stdout; panics with stderr.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo is missing: apt-get install skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A tar of `files` (path, mode, content) with fixed owners and times.
pub fn tar_of(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_size(content.len() as u64);
        h.set_mode(*mode);
        h.set_uid(107);
        h.set_gid(107);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *content).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// Pseudo-random bytes (a fixed LCG: deterministic, incompressible enough).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// An OCI image config for these uncompressed layer tars.
pub fn image_config(tars: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = tars.iter().map(|t| Digest::sha256_of(t).to_string()).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap()
}

/// What [`write_layout`] made.
pub struct TestImage {
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
}

/// Writes an OCI layout in `dir` with one image named `tag`: an uncompressed layer and a gzip one.
pub fn write_layout(dir: &Path, tag: &str) -> TestImage {
    let tar1 = tar_of(&[("etc/os-release", 0o644, b"ID=clay\n"), ("bin/hello", 0o755, b"#!/bin/sh\necho hi\n")]);
    let tar2 = tar_of(&[("var/data.bin", 0o600, &noise(300_000, 7))]);
    let layer1 = tar1.clone();
    let layer2 = gzip(&tar2);
    let config = image_config(&[&tar1, &tar2]);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::sha256_of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d.to_string()
    };
    let config_digest = put(&config);
    let l1 = put(&layer1);
    let l2 = put(&layer2);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [
            { "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l1, "size": layer1.len() },
            { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l2, "size": layer2.len() },
        ],
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    TestImage { manifest_digest, config_digest, layer_digests: vec![l1, l2] }
}

/// Checks that every file under `blobs/sha256` of a layout hashes to its name; returns how many there are.
pub fn check_blob_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "a temporary file was left behind: {name}");
        let (digest, _) = clay_registry::digest_file(&entry.path()).unwrap();
        assert_eq!(digest.hex(), name, "blob {name} does not match its name");
        n += 1;
    }
    n
}

/// One request as the scripted server saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// The body, when it is at most [`MAX_KEPT_BODY`] bytes.
    pub body: Vec<u8>,
}

/// Request bodies up to this size are kept in [`SeenRequest::body`].
pub const MAX_KEPT_BODY: u64 = 64 << 10;

/// What the scripted server answers; status 0 closes the connection without an answer.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self { status, headers: Vec::new(), body: body.into() }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A one-connection-at-a-time HTTP/1.1 server on loopback that answers each request with `handler` and closes the
/// connection. Anything it cannot parse (a TLS hello) gets the connection closed. Stops on drop.
pub struct MockServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl MockServer {
    pub fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Box<Handler> = Box::new(handler);
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => serve(stream, &*handler, &seen),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self { port, stop, thread: Some(thread), seen }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<SeenRequest>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next()) else { return };
    if !version.starts_with("HTTP/1.") {
        return;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    // Small bodies (forms, manifests) are kept for the handler; blobs are read and dropped.
    let mut body = Vec::new();
    if let Some(len) = headers.get("content-length").and_then(|l| l.parse::<u64>().ok()) {
        if len <= MAX_KEPT_BODY {
            let _ = (&mut reader).take(len).read_to_end(&mut body);
        } else {
            let _ = std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink());
        }
    }
    let req = SeenRequest { method: method.to_owned(), path: path.to_owned(), headers, body };
    seen.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    if reply.status == 0 {
        // A connection cut off before any answer.
        return;
    }
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    let mut has_length = false;
    for (k, v) in &reply.headers {
        has_length |= k.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    out.push_str("\r\n");
    let mut stream = reader.into_inner();
    let _ = stream.write_all(out.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(&reply.body);
    }
    let _ = stream.flush();
}
