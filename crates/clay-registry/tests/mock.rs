//! Against a scripted registry on loopback: corrupt and oversized blobs, the Bearer token flow, transient errors,
//! multi-platform indexes, hostile answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clay_registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use clay_registry::*;
use common::*;
use serde_json::json;

/// Plain HTTP, no auth files or certificate directories, quick retries.
fn access<'a>() -> Access<'a> {
    Access {
        tls_verify: Some(false),
        auth_files: AuthFiles::none(),
        cert_dirs: CertDirs::none(),
        retry: RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        ..Access::default()
    }
}

/// Pulls linux/amd64 with `access`.
fn pull_with(access: Access<'_>) -> PullOptions<'_> {
    PullOptions { platform: Some("linux/amd64".into()), access }
}

fn options<'a>() -> PullOptions<'a> {
    pull_with(access())
}

/// A manifest for a config and one layer, with the layer's descriptor as given.
fn manifest_for(config: &[u8], layer_digest: &str, layer_size: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::sha256_of(config).as_str(), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size }],
    }))
    .unwrap()
}

/// The answer to `path` of a registry holding one image in `repo`: `/v2/`, the manifest `v1`, and the blobs in
/// `blobs` (digest → bytes); anything else is unknown.
fn image_reply(path: &str, repo: &str, manifest: &[u8], blobs: &[(String, Vec<u8>)]) -> Reply {
    if path == "/v2/" {
        return Reply::new(200, "{}");
    }
    if path == format!("/v2/{repo}/manifests/v1") {
        return Reply::new(200, manifest).header("Content-Type", OCI_MANIFEST);
    }
    for (digest, bytes) in blobs {
        if path == format!("/v2/{repo}/blobs/{digest}") {
            return Reply::new(200, bytes.clone());
        }
    }
    Reply::new(404, r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#)
}

/// Serves the image of `manifest` and `blobs` as `clay/bad`, without auth.
fn simple_registry(manifest: Vec<u8>, blobs: Vec<(String, Vec<u8>)>) -> MockServer {
    MockServer::start(move |req| image_reply(&req.path, "clay/bad", &manifest, &blobs))
}

#[test]
fn a_corrupted_blob_is_named_and_not_kept() {
    let config = image_config(&[]);
    let layer = tar_of(&[("a", 0o644, b"real")]);
    let claimed = Digest::sha256_of(b"something else entirely");
    let manifest = manifest_for(&config, claimed.as_str(), layer.len());
    let server = simple_registry(
        manifest,
        vec![(Digest::sha256_of(&config).to_string(), config.clone()), (claimed.to_string(), layer.clone())],
    );
    let tmp = tempfile::tempdir().unwrap();
    let reference = Reference::parse(&format!("{}/clay/bad:v1", server.host())).unwrap();
    let err = pull(&reference, &options(), tmp.path()).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the blob {claimed} (layer 1 of 1 of {reference}) from the registry {} does not match its digest: its \
             content hashes to {}",
            server.host(),
            Digest::sha256_of(&layer)
        )
    );
    // Nothing unverified stays: only the config made it.
    assert_eq!(check_blob_files(tmp.path()), 1);
    assert!(!tmp.path().join("index.json").exists());
}

#[test]
fn a_sha512_layer_is_verified_with_sha512_and_stored_under_its_algorithm() {
    let config = image_config(&[]);
    let layer = tar_of(&[("a", 0o644, b"real")]);
    let sha512 = |bytes: &[u8]| Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap().recompute(bytes);
    let config_blob = (Digest::sha256_of(&config).to_string(), config.clone());
    let tmp = tempfile::tempdir().unwrap();

    let good = sha512(&layer);
    let server = simple_registry(
        manifest_for(&config, good.as_str(), layer.len()),
        vec![config_blob.clone(), (good.to_string(), layer.clone())],
    );
    let reference = Reference::parse(&format!("{}/clay/bad:v1", server.host())).unwrap();
    let pulled = pull(&reference, &options(), &tmp.path().join("good")).unwrap();
    assert_eq!(pulled.layers[0].digest, good.as_str());
    let stored = tmp.path().join("good/blobs/sha512").join(good.hex());
    assert_eq!(std::fs::read(stored).unwrap(), layer);

    // The same bytes under another sha512 digest are refused.
    let claimed = sha512(b"something else");
    let server = simple_registry(
        manifest_for(&config, claimed.as_str(), layer.len()),
        vec![config_blob, (claimed.to_string(), layer.clone())],
    );
    let reference = Reference::parse(&format!("{}/clay/bad:v1", server.host())).unwrap();
    let err = pull(&reference, &options(), &tmp.path().join("bad")).unwrap_err().to_string();
    assert!(err.contains(&format!("does not match its digest: its content hashes to {good}")), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("bad/blobs/sha512")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn blobs_longer_or_shorter_than_their_descriptor_are_refused() {
    let config = image_config(&[]);
    let layer = noise(200_000, 1);
    for (claimed_size, needle) in [(100_000, "is more than 100000 bytes"), (300_000, "is 200000 bytes but")] {
        let manifest = manifest_for(&config, Digest::sha256_of(&layer).as_str(), claimed_size);
        let server = simple_registry(
            manifest,
            vec![
                (Digest::sha256_of(&config).to_string(), config.clone()),
                (Digest::sha256_of(&layer).to_string(), layer.clone()),
            ],
        );
        let tmp = tempfile::tempdir().unwrap();
        let reference = Reference::parse(&format!("{}/clay/bad:v1", server.host())).unwrap();
        let err = pull(&reference, &options(), tmp.path()).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains(Digest::sha256_of(&layer).as_str()), "{err}");
        assert_eq!(check_blob_files(tmp.path()), 1);
    }
}

#[test]
fn hostile_manifests_fail_cleanly() {
    let config = image_config(&[]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "is invalid"),
        (br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec(), "no config"),
        (manifest_for(&config, "sha256:../../../../etc/passwd", 4), "not a valid digest"),
        (
            String::from_utf8(manifest_for(&config, &Digest::sha256_of(b"x").to_string(), 7))
                .unwrap()
                .replace(":7}", ":-7}")
                .into(),
            "is invalid",
        ),
        (vec![b' '; 5 << 20], "larger than 4194304 bytes"),
        (
            br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#.to_vec(),
            "Docker schema 1",
        ),
    ];
    for (manifest, needle) in cases {
        let server = simple_registry(manifest, vec![(Digest::sha256_of(&config).to_string(), config.clone())]);
        let tmp = tempfile::tempdir().unwrap();
        let reference = Reference::parse(&format!("{}/clay/bad:v1", server.host())).unwrap();
        let err = pull(&reference, &options(), tmp.path()).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!tmp.path().join("etc").exists());
    }
}

/// A registry that wants a Bearer token from its own /token endpoint (Basic credentials required there), serves a
/// multi-platform index, and fails with 503 twice before serving the amd64 manifest.
#[test]
fn bearer_tokens_indexes_and_transient_errors() {
    let config = image_config(&[]);
    let layer = tar_of(&[("hello", 0o644, b"amd64")]);
    let manifest = manifest_for(&config, Digest::sha256_of(&layer).as_str(), layer.len());
    let manifest_digest = Digest::sha256_of(&manifest);
    let other = Digest::sha256_of(b"arm64 manifest");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            { "mediaType": OCI_MANIFEST, "digest": other.as_str(), "size": 14, "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } },
            { "mediaType": OCI_MANIFEST, "digest": manifest_digest.as_str(), "size": manifest.len(), "platform": { "os": "linux", "architecture": "amd64" } },
            { "mediaType": OCI_MANIFEST, "digest": Digest::sha256_of(b"att").as_str(), "size": 3, "platform": { "os": "unknown", "architecture": "unknown" } },
        ],
    }))
    .unwrap();
    let index_digest = Digest::sha256_of(&index);
    let failures = Arc::new(AtomicU32::new(0));
    let basic = format!("Basic {}", base64_of(&format!("{USER}:{PASSWORD}")));
    let server_port = Arc::new(AtomicU32::new(0));
    let port_for_handler = server_port.clone();
    let fails = failures.clone();
    let blobs = vec![
        (Digest::sha256_of(&config).to_string(), config.clone()),
        (Digest::sha256_of(&layer).to_string(), layer.clone()),
    ];
    let manifest_path = format!("/v2/clay/multi/manifests/{manifest_digest}");
    let server = MockServer::start(move |req| {
        let port = port_for_handler.load(Ordering::Relaxed);
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{port}/token",service="mock",scope="repository:clay/multi:pull""#
        );
        let path = req.path.as_str();
        if path.starts_with("/token?") {
            let ok = req.headers.get("authorization") == Some(&basic)
                && path.contains("service=mock")
                && path.contains("scope=repository%3Aclay%2Fmulti%3Apull");
            return if ok { Reply::new(200, r#"{"access_token":"tok-123"}"#) } else { Reply::new(401, "") };
        }
        if req.headers.get("authorization").map(String::as_str) != Some("Bearer tok-123") {
            return Reply::new(401, "").header("WWW-Authenticate", &challenge);
        }
        if path == "/v2/clay/multi/manifests/v1" {
            return Reply::new(200, index.clone()).header("Content-Type", OCI_INDEX);
        }
        if path == manifest_path {
            if fails.fetch_add(1, Ordering::Relaxed) < 2 {
                return Reply::new(503, "").header("Retry-After", "0");
            }
            return Reply::new(200, manifest.clone()).header("Content-Type", OCI_MANIFEST);
        }
        for (digest, bytes) in &blobs {
            if path == format!("/v2/clay/multi/blobs/{digest}") {
                return Reply::new(200, bytes.clone());
            }
        }
        Reply::new(404, "")
    });
    server_port.store(u32::from(server.port), Ordering::Relaxed);
    let reference = Reference::parse(&format!("{}/clay/multi:v1", server.host())).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let err = pull(&reference, &options(), tmp.path()).unwrap_err();
    assert!(matches!(err, RegistryError::AuthRequired { .. }), "anonymous: {err}");
    let wrong = pull_with(Access { auth: Some(Credentials::new(USER, "nope")), ..access() });
    let err = pull(&reference, &wrong, tmp.path()).unwrap_err().to_string();
    assert_eq!(err, format!("the registry {} refused the credentials for user `{USER}` given directly", server.host()));

    let good = pull_with(Access { auth: Some(Credentials::new(USER, PASSWORD)), ..access() });
    let pulled = pull(&reference, &good, tmp.path()).unwrap();
    assert_eq!(pulled.manifest.digest, manifest_digest.as_str());
    assert_eq!(pulled.registry_digest, index_digest);
    assert_eq!(pulled.platform.as_ref().map(ToString::to_string).as_deref(), Some("linux/amd64"));
    assert_eq!(failures.load(Ordering::Relaxed), 3, "two 503s, then success");
    assert_eq!(check_blob_files(tmp.path()), 3);
    // One token per pull with credentials (the wrong one, the good one): the ping's challenge is used up front and
    // the token kept for every request after it.
    let seen = server.seen.lock().unwrap().clone();
    let tokens =
        seen.iter().filter(|r| r.path.starts_with("/token") && r.headers.contains_key("authorization")).count();
    assert_eq!(tokens, 2, "{seen:#?}");

    let arm = PullOptions { platform: Some("linux/riscv64".into()), ..good };
    let err = pull(&reference, &arm, tmp.path()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "the image {reference} has no manifest for the platform linux/riscv64; it has: linux/amd64, linux/arm64/v8"
        )
        .replace("linux/amd64, linux/arm64/v8", "linux/arm64/v8, linux/amd64")
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn a_dropped_download_is_retried_and_4xx_is_not() {
    let config = image_config(&[]);
    let layer = noise(500_000, 5);
    let manifest = manifest_for(&config, Digest::sha256_of(&layer).as_str(), layer.len());
    let layer_path = format!("/v2/clay/bad/blobs/{}", Digest::sha256_of(&layer));
    let config_path = format!("/v2/clay/bad/blobs/{}", Digest::sha256_of(&config));
    let layer_hits = Arc::new(AtomicU32::new(0));
    let hits = layer_hits.clone();
    let server = MockServer::start(move |req| match req.path.as_str() {
        "/v2/" => Reply::new(200, "{}"),
        "/v2/clay/bad/manifests/v1" => Reply::new(200, manifest.clone()).header("Content-Type", OCI_MANIFEST),
        "/v2/clay/bad/manifests/v2" => Reply::new(400, r#"{"errors":[{"code":"TAG_INVALID","message":"no"}]}"#),
        p if p == config_path => Reply::new(200, config.clone()),
        // The first time, the connection drops halfway through the layer.
        p if p == layer_path && hits.fetch_add(1, Ordering::Relaxed) == 0 => {
            Reply::new(200, layer[..layer.len() / 2].to_vec()).header("Content-Length", &layer.len().to_string())
        }
        p if p == layer_path => Reply::new(200, layer.clone()),
        _ => Reply::new(404, ""),
    });
    let tmp = tempfile::tempdir().unwrap();
    let events = std::cell::RefCell::new(Vec::new());
    let record = |e: ProgressEvent| events.borrow_mut().push(e);
    let opts = pull_with(Access { progress: Some(&record), ..access() });
    let reference = Reference::parse(&format!("{}/clay/bad:v1", server.host())).unwrap();
    pull(&reference, &opts, tmp.path()).unwrap();
    assert_eq!(layer_hits.load(Ordering::Relaxed), 2);
    assert!(events.borrow().iter().any(|e| e.state == ProgressState::Retrying { attempt: 1 }));
    assert_eq!(check_blob_files(tmp.path()), 3);

    let before = server.seen.lock().unwrap().len();
    let v2 = Reference::parse(&format!("{}/clay/bad:v2", server.host())).unwrap();
    let err = pull(&v2, &options(), tmp.path()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("the registry {} answered 400 to manifest `v2` of clay/bad: no (TAG_INVALID)", server.host())
    );
    let manifest_requests =
        server.seen.lock().unwrap()[before..].iter().filter(|r| r.path.contains("/manifests/")).count();
    assert_eq!(manifest_requests, 1, "a 4xx is not retried");
}

/// Uploads whose `Location` is relative, then on another host (as registries backed by object storage answer): the
/// blob goes there, without the registry's credentials.
#[test]
fn uploads_follow_relative_and_cross_origin_locations() {
    let elsewhere = MockServer::start(|req| {
        if req.method == "PUT" && req.path.starts_with("/upload/2?_state=x&digest=sha256%3A") {
            Reply::new(201, "")
        } else {
            Reply::new(404, "")
        }
    });
    let upload_host = elsewhere.host();
    let uploads = Arc::new(AtomicU32::new(0));
    let count = uploads.clone();
    let basic = format!("Basic {}", base64_of(&format!("{USER}:{PASSWORD}")));
    let registry = MockServer::start(move |req| {
        if req.headers.get("authorization") != Some(&basic) {
            return Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="mock""#);
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v2/") => Reply::new(200, "{}"),
            ("HEAD", p) if p.starts_with("/v2/clay/push/blobs/") => Reply::new(404, ""),
            ("POST", "/v2/clay/push/blobs/uploads/") => {
                let location = if count.fetch_add(1, Ordering::Relaxed) == 0 {
                    "/v2/clay/push/blobs/uploads/1".to_owned()
                } else {
                    format!("http://{upload_host}/upload/2?_state=x")
                };
                Reply::new(202, "").header("Location", &location)
            }
            ("PUT", p) if p.starts_with("/v2/clay/push/blobs/uploads/1?digest=sha256%3A") => Reply::new(201, ""),
            ("PUT", "/v2/clay/push/manifests/v1") => Reply::new(201, ""),
            _ => Reply::new(404, ""),
        }
    });
    let parts = ImageParts {
        artifact_type: Some("application/vnd.claylinux.test".into()),
        layers: vec![BlobPart {
            media_type: "application/octet-stream".into(),
            source: BlobSource::Bytes(b"payload"),
            annotations: Default::default(),
        }],
        ..ImageParts::default()
    };
    let reference = Reference::parse(&format!("{}/clay/push:v1", registry.host())).unwrap();
    let opts = PushOptions { auth: Some(Credentials::new(USER, PASSWORD)), ..access() };
    push_image(&PushSource::Parts(parts), &reference, &opts).unwrap();
    let seen = elsewhere.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(!seen[0].headers.contains_key("authorization"), "credentials leaked to the upload host");
    assert_eq!(uploads.load(Ordering::Relaxed), 2);

    // A Location that is neither absolute nor rooted is refused, by name.
    let bad = MockServer::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v2/") => Reply::new(200, "{}"),
        ("HEAD", _) => Reply::new(404, ""),
        ("POST", _) => Reply::new(202, "").header("Location", "javascript:alert(1)"),
        _ => Reply::new(404, ""),
    });
    let reference = Reference::parse(&format!("{}/clay/push:v1", bad.host())).unwrap();
    let err = push_blob(&reference, &opts, "application/octet-stream", BlobSource::Bytes(b"x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the registry {} sent a bad upload location `javascript:alert(1)`", bad.host())
    );
}

#[test]
fn a_tampered_layout_blob_is_not_pushed() {
    let server = MockServer::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v2/") => Reply::new(200, "{}"),
        ("HEAD", _) => Reply::new(404, ""),
        ("POST", _) => Reply::new(202, "").header("Location", "/v2/clay/push/blobs/uploads/1"),
        ("PUT", _) => Reply::new(201, ""),
        _ => Reply::new(404, ""),
    });
    let tmp = tempfile::tempdir().unwrap();
    let image = write_layout(tmp.path(), "v1");
    let victim = tmp.path().join("blobs/sha256").join(image.layer_digests[1].trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let reference = Reference::parse(&format!("{}/clay/push:v1", server.host())).unwrap();
    let opts = PushOptions { tls_verify: Some(false), auth_files: AuthFiles::none(), ..PushOptions::default() };
    let source = PushSource::Layout { dir: tmp.path(), ref_name: Some("v1") };
    let err = push_image(&source, &reference, &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the blob {} in {} does not match its digest or size", image.layer_digests[1], tmp.path().display())
    );
    let seen = server.seen.lock().unwrap();
    let asked = seen.iter().filter(|r| r.method == "HEAD" && r.path.contains(&image.layer_digests[1])).count();
    assert_eq!(asked, 0, "nothing about the tampered blob reached the registry");
    assert!(!seen.iter().any(|r| r.path.contains("/manifests/")));
}

#[test]
fn huge_headers_are_an_error_not_a_hang() {
    let big = "x".repeat(200_000);
    let server = MockServer::start(move |req| match req.path.as_str() {
        "/v2/" => Reply::new(200, "{}"),
        _ => Reply::new(200, "{}").header("X-Padding", &big),
    });
    let tmp = tempfile::tempdir().unwrap();
    let reference = Reference::parse(&format!("{}/clay/bad:v1", server.host())).unwrap();
    let start = std::time::Instant::now();
    let err = pull(&reference, &options(), tmp.path()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        err.to_string(),
        format!("the request for manifest `v1` of clay/bad to the registry {} failed", server.host())
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("header"), "{source}");
}

/// As Azure Container Registry takes them after `az acr login`: the identity token in docker's config.json is a
/// refresh token, POSTed as an OAuth 2 form to the challenge's realm and traded for an access token.
#[test]
fn identity_tokens_are_traded_at_the_token_server() {
    let config = image_config(&[]);
    let layer = tar_of(&[("hello", 0o644, b"acr")]);
    let manifest = manifest_for(&config, Digest::sha256_of(&layer).as_str(), layer.len());
    let blobs = vec![
        (Digest::sha256_of(&config).to_string(), config.clone()),
        (Digest::sha256_of(&layer).to_string(), layer.clone()),
    ];
    let port = Arc::new(AtomicU32::new(0));
    let server_port = port.clone();
    let server = MockServer::start(move |req| {
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{}/oauth2/token",service="mock.azurecr.io""#,
            server_port.load(Ordering::Relaxed)
        );
        let path = req.path.as_str();
        if path.starts_with("/oauth2/token") {
            let form = String::from_utf8_lossy(&req.body).into_owned();
            let mut fields: Vec<&str> = form.split('&').collect();
            fields.sort_unstable();
            let wanted = [
                "client_id=claylinux",
                "grant_type=refresh_token",
                "refresh_token=eyJ.good",
                "scope=repository%3Aclay%2Facr%3Apull",
                "service=mock.azurecr.io",
            ];
            let ok = req.method == "POST"
                && req.headers.get("content-type").map(String::as_str) == Some("application/x-www-form-urlencoded")
                && !req.headers.contains_key("authorization")
                && fields == wanted;
            return if ok {
                Reply::new(200, r#"{"access_token":"acc-1","refresh_token":"rotated"}"#)
            } else {
                Reply::new(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)
            };
        }
        if req.headers.get("authorization").map(String::as_str) != Some("Bearer acc-1") {
            return Reply::new(401, "").header("WWW-Authenticate", &challenge);
        }
        image_reply(path, "clay/acr", &manifest, &blobs)
    });
    port.store(u32::from(server.port), Ordering::Relaxed);
    let reference = Reference::parse(&format!("{}/clay/acr:v1", server.host())).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config_json = |token: &str| {
        let path = tmp.path().join(format!("config-{token}.json"));
        let auth = base64_of("00000000-0000-0000-0000-000000000000:");
        let json = json!({ "auths": { server.host(): { "auth": auth, "identitytoken": token } } });
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        path
    };

    let good = config_json("eyJ.good");
    let options = pull_with(Access { auth_files: AuthFiles::new(vec![good]), ..access() });
    let pulled = pull(&reference, &options, &tmp.path().join("a")).unwrap();
    assert_eq!(pulled.layers.len(), 1);
    assert_eq!(check_blob_files(&tmp.path().join("a")), 3, "manifest, config and layer");
    // The refresh token went in a POST body only, never in a URL or a header the registry saw.
    let seen = server.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|r| !r.path.contains("eyJ") && r.headers.values().all(|v| !v.contains("eyJ"))));

    let expired = config_json("eyJ.expired");
    let options = pull_with(Access { auth_files: AuthFiles::new(vec![expired.clone()]), ..access() });
    let err = pull(&reference, &options, &tmp.path().join("b")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the registry {} refused the identity token from {}; it may have expired: log in again",
            server.host(),
            expired.display()
        )
    );

    // A registry that only knows Basic auth cannot take an identity token.
    let basic = MockServer::start(|_| Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="r""#));
    let reference = Reference::parse(&format!("{}/clay/acr:v1", basic.host())).unwrap();
    let token_only = Credentials { identity_token: Some("eyJ.good".into()), ..Credentials::new("<token>", "") };
    let options = pull_with(Access { auth: Some(token_only), ..access() });
    let err = pull(&reference, &options, &tmp.path().join("c")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the registry {} asks for a user name and password (Basic auth), but the credentials given directly are an \
             identity token, which only a token server takes; log in with a user name and password",
            basic.host()
        )
    );
    assert!(basic.seen.lock().unwrap().iter().all(|r| !r.headers.contains_key("authorization")));
}

/// The uploads a scripted registry holds, and the blobs finished.
#[derive(Default)]
struct Uploads {
    /// Each upload's bytes; `None` once the registry gave it up.
    held: Vec<Option<Vec<u8>>>,
    blobs: std::collections::BTreeMap<String, Vec<u8>>,
    /// Content-Range starts of the PATCH requests, in order.
    patches: Vec<u64>,
}

/// How a scripted registry treats an upload location whose state is out of date.
#[derive(Clone, Copy, PartialEq)]
enum Stale {
    /// Its status can still be asked for, as the OCI distribution spec lets clients resume.
    Resumable,
    /// The upload is given up (BLOB_UPLOAD_INVALID), as the reference registry does once its size is not what the
    /// location's state says.
    GivenUp,
}

/// A registry that takes uploads in one PUT or in PATCH chunks, checking each `Content-Range` against what it holds
/// and moving the upload's `Location` on after every answer. `cut(request, uploads)` says whether a PATCH or PUT is
/// cut off before its answer, after the registry kept the first half of its body.
fn upload_registry(
    stale: Stale,
    cut: impl Fn(&SeenRequest, &Uploads) -> bool + Send + Sync + 'static,
) -> (MockServer, Arc<std::sync::Mutex<Uploads>>) {
    let uploads = Arc::new(std::sync::Mutex::new(Uploads::default()));
    let state = uploads.clone();
    let server = MockServer::start(move |req| {
        let mut u = state.lock().unwrap();
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        let location = |id: usize, held: usize| format!("/v2/clay/push/blobs/uploads/{id}?state={held}");
        let range = |held: usize| format!("0-{}", held.saturating_sub(1));
        let upload = path.strip_prefix("/v2/clay/push/blobs/uploads/").and_then(|id| id.parse::<usize>().ok());
        if let Some(id) = upload {
            let Some(held) = u.held.get(id).cloned().flatten() else {
                return Reply::new(404, r#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"unknown"}]}"#);
            };
            let current = query.split('&').next() == Some(&format!("state={}", held.len()));
            if !current && (stale == Stale::GivenUp || req.method != "GET") {
                u.held[id] = None;
                return Reply::new(400, r#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"wrong offset"}]}"#);
            }
        }
        match (req.method.as_str(), path, upload) {
            ("GET", "/v2/", _) => Reply::new(200, "{}"),
            ("HEAD", p, _) if p.starts_with("/v2/clay/push/blobs/sha256:") => {
                let known = u.blobs.contains_key(p.trim_start_matches("/v2/clay/push/blobs/"));
                Reply::new(if known { 200 } else { 404 }, "")
            }
            ("POST", "/v2/clay/push/blobs/uploads/", _) => {
                u.held.push(Some(Vec::new()));
                let id = u.held.len() - 1;
                Reply::new(202, "").header("Location", &location(id, 0)).header("Range", "0-0")
            }
            ("GET", _, Some(id)) => {
                let held = u.held[id].as_ref().unwrap().len();
                Reply::new(204, "").header("Location", &location(id, held)).header("Range", &range(held))
            }
            ("PATCH" | "PUT", _, Some(id)) => {
                if req.method == "PATCH" {
                    let start: u64 = req.headers["content-range"].split('-').next().unwrap().parse().unwrap();
                    u.patches.push(start);
                    if start != u.held[id].as_ref().unwrap().len() as u64 {
                        return Reply::new(416, "");
                    }
                }
                let cut_off = cut(req, &u);
                let body = if cut_off { &req.body[..req.body.len() / 2] } else { &req.body[..] };
                u.held[id].as_mut().unwrap().extend_from_slice(body);
                let held = u.held[id].clone().unwrap();
                if cut_off && req.method == "PUT" && Digest::sha256_of(&held).as_str() == query_digest(query) {
                    // The whole blob arrived; only the answer is lost. The upload is done and gone.
                    u.blobs.insert(query_digest(query), held);
                    u.held[id] = None;
                    Reply::new(0, "")
                } else if cut_off {
                    Reply::new(0, "")
                } else if req.method == "PATCH" {
                    Reply::new(202, "")
                        .header("Location", &location(id, held.len()))
                        .header("Range", &range(held.len()))
                } else {
                    let digest = query_digest(query);
                    if Digest::sha256_of(&held).as_str() != digest {
                        return Reply::new(400, r#"{"errors":[{"code":"DIGEST_INVALID","message":"mismatch"}]}"#);
                    }
                    u.blobs.insert(digest, held);
                    Reply::new(201, "")
                }
            }
            _ => Reply::new(404, ""),
        }
    });
    (server, uploads)
}

/// The `digest` parameter of an upload's query.
fn query_digest(query: &str) -> String {
    query.split("digest=").nth(1).unwrap_or_default().replace("%3A", ":")
}

/// A blob larger than the chunk size goes up in chunks. One cut off halfway resumes at the byte the registry's
/// status names, in the same upload; a registry that gives the upload up (the reference one does) gets a new one.
/// A smaller blob goes up in one PUT, and a PUT cut off halfway starts a new upload, since the old one holds part
/// of it. Failing every try ends in one sentence that counts them.
#[test]
fn uploads_cut_off_halfway_resume_where_the_registry_stopped() {
    const CHUNK: u64 = 16 << 10;
    let tmp = tempfile::tempdir().unwrap();
    let big = noise(100_000, 11);
    let path = tmp.path().join("disk.qcow2");
    std::fs::write(&path, &big).unwrap();
    let push = |server: &MockServer, opts: &PushOptions<'_>, blob: BlobSource<'_>| {
        let reference = Reference::parse(&format!("{}/clay/push:v1", server.host())).unwrap();
        push_blob(&reference, opts, "application/octet-stream", blob)
    };

    // The third chunk is cut off after half of it.
    let (server, uploads) = upload_registry(Stale::Resumable, |req, u| req.method == "PATCH" && u.patches.len() == 3);
    let events = std::cell::RefCell::new(Vec::new());
    let record = |e: ProgressEvent| events.borrow_mut().push(e);
    let opts = PushOptions { upload_chunk: CHUNK, progress: Some(&record), ..access() };
    let desc = push(&server, &opts, BlobSource::File(&path)).unwrap();
    let u = uploads.lock().unwrap();
    assert_eq!(desc.digest, Digest::sha256_of(&big).as_str());
    assert_eq!(u.blobs.get(&desc.digest), Some(&big), "the registry holds the blob whole");
    assert_eq!(u.held.len(), 1, "one upload, resumed rather than started again");
    let resumed = CHUNK * 2 + CHUNK / 2;
    assert_eq!(u.patches, [0, CHUNK, CHUNK * 2, resumed, resumed + CHUNK, resumed + CHUNK * 2, resumed + CHUNK * 3]);
    let events = events.borrow();
    assert!(events.iter().any(|e| e.state == ProgressState::Retrying { attempt: 1 } && e.done == CHUNK * 2));
    assert_eq!(events.last().map(|e| (e.state, e.done)), Some((ProgressState::Finished, big.len() as u64)));
    drop(u);

    // The same cut at a registry that then gives the upload up: a second upload takes the blob from the start.
    let (server, uploads) = upload_registry(Stale::GivenUp, |req, u| req.method == "PATCH" && u.patches.len() == 3);
    let opts = PushOptions { upload_chunk: CHUNK, ..access() };
    let desc = push(&server, &opts, BlobSource::File(&path)).unwrap();
    let u = uploads.lock().unwrap();
    assert_eq!(u.blobs.get(&desc.digest), Some(&big));
    assert_eq!(u.held.len(), 2);
    assert_eq!(u.patches, [0, CHUNK, CHUNK * 2, 0, CHUNK, CHUNK * 2, CHUNK * 3, CHUNK * 4, CHUNK * 5, CHUNK * 6]);
    drop(u);

    // One PUT, cut off halfway: the retry starts a second upload and sends the blob whole there.
    let small = noise(3000, 12);
    let (server, uploads) = upload_registry(Stale::Resumable, |req, u| req.method == "PUT" && u.held.len() == 1);
    let desc = push(&server, &opts, BlobSource::Bytes(&small)).unwrap();
    let u = uploads.lock().unwrap();
    assert_eq!(u.blobs.get(&desc.digest), Some(&small));
    assert_eq!(u.held.len(), 2);
    assert_eq!(u.held[0].as_ref().map(Vec::len), Some(small.len() / 2), "the first upload kept half and was left");
    assert!(u.patches.is_empty());
    drop(u);

    // The answer to the final PUT is lost after the registry took the blob: the retried PUT finds no upload, and a
    // HEAD finds the blob.
    let (server, uploads) = upload_registry(Stale::Resumable, |req, _| req.method == "PUT");
    let desc = push(&server, &opts, BlobSource::File(&path)).unwrap();
    assert_eq!(uploads.lock().unwrap().blobs.get(&desc.digest), Some(&big));
    let seen: Vec<String> = server.seen.lock().unwrap().iter().map(|r| r.method.clone()).collect();
    assert_eq!(seen[seen.len() - 3..], ["PUT", "PUT", "HEAD"], "{seen:?}");

    // A registry that cuts off every chunk: the push gives up after the policy's tries, saying how many.
    let (server, uploads) = upload_registry(Stale::Resumable, |req, _| req.method == "PATCH");
    let message = push(&server, &opts, BlobSource::File(&path)).unwrap_err().to_string();
    assert!(message.starts_with(&format!("could not reach the registry {} (", server.host())), "{message}");
    assert!(message.ends_with("after 3 attempt(s)"), "{message}");
    let u = uploads.lock().unwrap();
    assert!(u.blobs.is_empty());
    assert_eq!(u.patches.len(), 3);
    drop(u);

    // One that cuts off the third chunk of every upload and then gives the upload up: starting again gets no
    // further, so the push ends too.
    let (server, uploads) = upload_registry(Stale::GivenUp, |req, u| {
        req.method == "PATCH" && u.held.last().unwrap().as_ref().unwrap().len() as u64 == CHUNK * 2
    });
    let message = push(&server, &opts, BlobSource::File(&path)).unwrap_err().to_string();
    assert!(message.ends_with("after 3 attempt(s)"), "{message}");
    assert_eq!(uploads.lock().unwrap().held.len(), 3, "three uploads, each cut at the same chunk");
}
