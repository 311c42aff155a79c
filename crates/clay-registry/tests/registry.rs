//! Against a real registry: Debian's `docker-registry` (distribution 2.8) on loopback with htpasswd auth, skopeo as
//! the oracle on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use clay_registry::manifest::{ANNOTATION_REF_NAME, ANNOTATION_TITLE, OCI_LAYER_GZIP, OCI_MANIFEST};
use clay_registry::*;
use common::*;

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

/// `REGISTRY_AUTH_FILE=path` and nothing else, as the environment lookup would see it.
fn auth_env(path: &Path) -> AuthFiles {
    let path = OsString::from(path);
    AuthFiles::from_vars(move |name| (name == "REGISTRY_AUTH_FILE").then(|| path.clone()))
}

/// Plain HTTP, credentials from `auth_files`, no certificate directories, quick retries.
fn access<'a>(auth_files: AuthFiles) -> Access<'a> {
    Access {
        tls_verify: Some(false),
        auth_files,
        cert_dirs: CertDirs::none(),
        retry: quick_retry(),
        ..Access::default()
    }
}

/// Pulls linux/amd64 with `access`.
fn pull_with(access: Access<'_>) -> PullOptions<'_> {
    PullOptions { platform: Some("linux/amd64".into()), access }
}

fn pull_options<'a>(auth_files: AuthFiles) -> PullOptions<'a> {
    pull_with(access(auth_files))
}

fn push_options<'a>(auth_files: AuthFiles) -> PushOptions<'a> {
    access(auth_files)
}

/// Pushes a fresh two-layer OCI image with skopeo; returns what was pushed.
fn seed(reg: &Registry, repo_tag: &str, extra: &[&str]) -> TestImage {
    let src = tempfile::tempdir().unwrap();
    let image = write_layout(src.path(), "src");
    let dest = format!("docker://{}/{repo_tag}", reg.host());
    let creds = reg.creds();
    let mut args = vec!["copy", "--dest-tls-verify=false", "--dest-creds", &creds];
    args.extend_from_slice(extra);
    let src_ref = format!("oci:{}:src", src.path().display());
    args.extend_from_slice(&[&src_ref, &dest]);
    skopeo(&args);
    image
}

#[test]
fn pulls_what_skopeo_pushed_with_credentials_from_the_auth_file() {
    let reg = Registry::start();
    let image = seed(&reg, "clay/test:v1", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let auth = reg.auth_file(tmp.path(), USER, PASSWORD);
    let out = tmp.path().join("layout");
    let events = RefCell::new(Vec::new());
    let record = |e: ProgressEvent| events.borrow_mut().push(e);
    let options = pull_with(Access { progress: Some(&record), ..access(auth_env(&auth)) });
    let reference = Reference::parse(&format!("docker://{}/clay/test:v1", reg.host())).unwrap();

    let pulled = pull(&reference, &options, &out).unwrap();
    // OCI manifests are stored byte for byte, so the manifest digest is the registry's (skopeo re-encodes the
    // manifest it pushes, so that is not the source's).
    let creds = reg.creds();
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &format!("docker://{reference}")]);
    assert_eq!(pulled.manifest.digest, Digest::sha256_of(raw.as_bytes()).as_str());
    assert_eq!(pulled.registry_digest, Digest::sha256_of(raw.as_bytes()));
    assert_eq!(std::fs::read(out.join("blobs/sha256").join(pulled.registry_digest.hex())).unwrap(), raw.as_bytes());
    assert_eq!(pulled.config.digest, image.config_digest);
    // skopeo compressed the uncompressed layer on the way; the gzip one went as it was.
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layers: Vec<&str> = pulled.layers.iter().map(|l| l.digest.as_str()).collect();
    let in_registry: Vec<&str> =
        raw["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
    assert_eq!(layers, in_registry);
    assert_eq!(layers[1], image.layer_digests[1]);
    assert_eq!(pulled.ref_name.as_deref(), Some("v1"));
    assert_eq!(check_blob_files(&out), 4, "config, two layers and the manifest");
    assert!(pulled.bytes_downloaded > 0);

    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["annotations"][ANNOTATION_REF_NAME], "v1");
    assert_eq!(index["manifests"][0]["mediaType"], OCI_MANIFEST);

    // Progress: each blob started, finished, with sizes.
    {
        let events = events.borrow();
        for desc in pulled.layers.iter().chain([&pulled.config]) {
            let mine: Vec<&ProgressEvent> = events.iter().filter(|e| e.digest == desc.digest).collect();
            assert_eq!(mine.first().map(|e| e.state), Some(ProgressState::Started), "{}", desc.digest);
            let last = mine.last().unwrap();
            assert_eq!((last.state, last.done, last.total), (ProgressState::Finished, desc.size, desc.size));
        }
        assert!(events.iter().any(|e| e.role == BlobRole::Layer(1)));
    }

    // The oracle reads the layout.
    let inspect = skopeo(&["inspect", &format!("oci:{}:v1", out.display())]);
    for digest in &layers {
        assert!(inspect.contains(digest), "{inspect}");
    }
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", out.display()),
        &format!("docker-archive:{}", tmp.path().join("x.tar").display()),
    ]);

    // A second pull finds everything in place and downloads nothing.
    events.borrow_mut().clear();
    let again = pull(&reference, &options, &out).unwrap();
    assert_eq!(again.bytes_downloaded, 0);
    assert_eq!(again.manifest, pulled.manifest);
    assert!(events.borrow().iter().all(|e| e.state == ProgressState::Cached), "{:?}", events.borrow());
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "the same ref name is replaced, not repeated");
}

#[test]
fn docker_schema2_images_land_in_the_layout_as_oci() {
    let reg = Registry::start();
    let image = seed(&reg, "clay/v2s2:latest", &["--format", "v2s2"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("layout");
    let options = pull_with(Access { auth: Some(Credentials::new(USER, PASSWORD)), ..access(AuthFiles::none()) });
    // No tag: `latest`.
    let pulled = pull(&Reference::parse(&format!("{}/clay/v2s2", reg.host())).unwrap(), &options, &out).unwrap();
    assert_eq!(pulled.manifest.media_type, OCI_MANIFEST);
    assert_eq!(pulled.ref_name.as_deref(), Some("latest"));
    assert_ne!(pulled.manifest.digest, pulled.registry_digest.as_str(), "the converted manifest is a new blob");
    assert_eq!(pulled.config.media_type, "application/vnd.oci.image.config.v1+json");
    assert_eq!(pulled.layers[1].media_type, OCI_LAYER_GZIP);
    assert_eq!(pulled.config.digest, image.config_digest);
    check_blob_files(&out);
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:latest", out.display())]);
    assert!(raw.contains(OCI_MANIFEST) && !raw.contains("vnd.docker"), "{raw}");
    skopeo(&["inspect", &format!("oci:{}:latest", out.display())]);

    // Pinned by the registry's digest: the same image, named by nothing.
    let pinned = format!("{}/clay/v2s2@{}", reg.host(), pulled.registry_digest);
    let out2 = tmp.path().join("pinned");
    let by_digest = pull(&Reference::parse(&pinned).unwrap(), &options, &out2).unwrap();
    assert_eq!(by_digest.manifest.digest, pulled.manifest.digest);
    assert_eq!(by_digest.ref_name, None);
}

#[test]
fn credentials_are_refused_or_missing_in_one_sentence() {
    let reg = Registry::start();
    seed(&reg, "clay/test:v1", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let auth = reg.auth_file(tmp.path(), USER, "wrong");
    let reference = Reference::parse(&format!("{}/clay/test:v1", reg.host())).unwrap();

    let err = pull(&reference, &pull_options(auth_env(&auth)), &tmp.path().join("a")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the registry {} refused the credentials for user `{USER}` from {}", reg.host(), auth.display())
    );

    let err = pull(&reference, &pull_options(AuthFiles::none()), &tmp.path().join("b")).unwrap_err();
    assert!(matches!(err, RegistryError::AuthRequired { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the registry {} requires credentials for clay/test and none were found (no auth file was searched)",
            reg.host()
        )
    );
    // With files that have nothing for this registry, they are named.
    let elsewhere = tmp.path().join("other.json");
    std::fs::write(&elsewhere, r#"{"auths":{"example.com":{"auth":"eDp5"}}}"#).unwrap();
    let err = pull(&reference, &pull_options(AuthFiles::new(vec![elsewhere.clone()])), &tmp.path().join("c"))
        .unwrap_err()
        .to_string();
    assert!(err.ends_with(&format!("none were found in {}", elsewhere.display())), "{err}");

    // Pushing needs credentials too.
    let err =
        push_blob(&reference, &push_options(AuthFiles::none()), OCI_LAYER_GZIP, BlobSource::Bytes(b"x")).unwrap_err();
    assert!(matches!(err, RegistryError::AuthRequired { .. }), "{err}");

    // A tag that is not there.
    let missing = Reference::parse(&format!("{}/clay/test:nope", reg.host())).unwrap();
    let err =
        pull(&missing, &pull_options(auth_env(&reg.auth_file(tmp.path(), USER, PASSWORD))), &tmp.path().join("d"))
            .unwrap_err();
    assert_eq!(err.to_string(), format!("the registry {} has no manifest `nope` of clay/test", reg.host()));
}

#[test]
fn an_unreachable_registry_fails_quickly_after_the_retries() {
    let port = free_port();
    let reference = Reference::parse(&format!("127.0.0.1:{port}/clay/test:v1")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let err = pull(&reference, &pull_options(AuthFiles::none()), tmp.path()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(matches!(err, RegistryError::Unreachable { attempts: 3, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("could not reach the registry 127.0.0.1:{port} (http://127.0.0.1:{port}/v2/) after 3 attempt(s)")
    );
    // With TLS verification on, only https is tried.
    let options = pull_with(Access { tls_verify: Some(true), ..access(AuthFiles::none()) });
    let err = pull(&reference, &options, tmp.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("(https://127.0.0.1:{port}/v2/)")), "{err}");
}

#[test]
fn pushes_an_artifact_that_skopeo_sees() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let auth = reg.auth_file(tmp.path(), USER, PASSWORD);
    let file = tmp.path().join("disk.efi");
    std::fs::write(&file, noise(1 << 20, 3)).unwrap();
    let artifact_type = "application/vnd.claylinux.uki.v1";
    let parts = ImageParts {
        artifact_type: Some(artifact_type.into()),
        config: None,
        layers: vec![BlobPart {
            media_type: "application/vnd.claylinux.uki.layer.v1.efi".into(),
            source: BlobSource::File(&file),
            annotations: BTreeMap::from([(ANNOTATION_TITLE.to_owned(), "disk.efi".to_owned())]),
        }],
        annotations: BTreeMap::from([("org.opencontainers.image.created".into(), "2024-01-01T00:00:00Z".into())]),
    };
    let reference = Reference::parse(&format!("{}/clay/artifact:v1", reg.host())).unwrap();
    let events = RefCell::new(Vec::new());
    let record = |e: ProgressEvent| events.borrow_mut().push(e);
    let options = PushOptions { progress: Some(&record), ..push_options(auth_env(&auth)) };
    let pushed = push_image(&PushSource::Parts(parts.clone()), &reference, &options).unwrap();
    let (file_digest, _) = digest_file(&file).unwrap();
    assert!(events
        .borrow()
        .iter()
        .any(|e| e.digest == file_digest.as_str() && e.state == ProgressState::Finished && e.done == 1 << 20));

    let creds = reg.creds();
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &format!("docker://{reference}")]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(manifest["artifactType"], artifact_type);
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
    assert_eq!(manifest["layers"][0]["digest"], file_digest.as_str());
    assert_eq!(manifest["layers"][0]["annotations"][ANNOTATION_TITLE], "disk.efi");
    assert_eq!(Digest::sha256_of(raw.as_bytes()).as_str(), pushed.manifest.digest);

    // Again: every blob is already there (HEAD), only the manifest is sent.
    events.borrow_mut().clear();
    let again = push_image(&PushSource::Parts(parts), &reference, &options).unwrap();
    assert_eq!(again.manifest, pushed.manifest);
    assert!(events.borrow().iter().all(|e| e.state == ProgressState::Cached), "{:?}", events.borrow());

    // The pieces on their own: a blob, then a manifest naming it, by digest.
    let blob = push_blob(&reference, &options, "text/plain", BlobSource::Bytes(b"hello")).unwrap();
    assert_eq!(blob.digest, Digest::sha256_of(b"hello").as_str());
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "text/plain",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::sha256_of(b"{}").as_str(), "size": 2 },
        "layers": [blob],
    }))
    .unwrap();
    let by_digest = Reference { tag: None, digest: Some(Digest::sha256_of(&m)), ..reference.clone() };
    assert_eq!(push_manifest(&by_digest, &options, OCI_MANIFEST, &m).unwrap(), Digest::sha256_of(&m));
    skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &format!("docker://{by_digest}")]);
}

#[test]
fn a_container_disk_round_trips_through_skopeo() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let auth = reg.auth_file(tmp.path(), USER, PASSWORD);
    let disk = noise(2 << 20, 11);
    let tar = tar_of(&[("disk/disk.qcow2", 0o644, &disk)]);
    let layer = tmp.path().join("layer.tar.gz");
    std::fs::write(&layer, gzip(&tar)).unwrap();
    let config = image_config(&[&tar]);
    let parts = ImageParts {
        config: Some(BlobPart {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            source: BlobSource::Bytes(&config),
            annotations: BTreeMap::new(),
        }),
        layers: vec![BlobPart {
            media_type: OCI_LAYER_GZIP.into(),
            source: BlobSource::File(&layer),
            annotations: BTreeMap::new(),
        }],
        ..ImageParts::default()
    };
    let reference = Reference::parse(&format!("{}/clay/disk:v1", reg.host())).unwrap();
    // Chunks of 512 KiB: the 2 MiB layer goes up in PATCH requests, as a disk larger than the default chunk would.
    let options = PushOptions { upload_chunk: 512 << 10, ..push_options(auth_env(&auth)) };
    let pushed = push_image(&PushSource::Parts(parts), &reference, &options).unwrap();
    let patches = reg.log().matches("\"PATCH /v2/clay/disk/blobs/uploads/").count();
    assert!(patches >= 4, "the layer went up in chunks:\n{}", reg.log());

    let out = tmp.path().join("out");
    let creds = reg.creds();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &format!("docker://{reference}"),
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(disk_in_layout(&out), disk);

    // And back the other way: our pull, then our push of that layout to another name, then skopeo reads it.
    let pulled_dir = tmp.path().join("pulled");
    let pulled = pull(&reference, &pull_options(auth_env(&auth)), &pulled_dir).unwrap();
    assert_eq!(pulled.manifest.digest, pushed.manifest.digest);
    assert_eq!(disk_in_layout(&pulled_dir), disk);
    let copy = Reference::parse(&format!("{}/clay/disk-copy:v2", reg.host())).unwrap();
    let source = PushSource::Layout { dir: &pulled_dir, ref_name: Some("v1") };
    let pushed_copy = push_image(&source, &copy, &options).unwrap();
    assert_eq!(pushed_copy.manifest.digest, pushed.manifest.digest);
    let out2 = tmp.path().join("out2");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &format!("docker://{copy}"),
        &format!("oci:{}:v2", out2.display()),
    ]);
    assert_eq!(disk_in_layout(&out2), disk);
}

/// The content of /disk/disk.qcow2 in the single image of an OCI layout.
fn disk_in_layout(dir: &Path) -> Vec<u8> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob =
        |digest: &str| std::fs::read(dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let tar = gunzip(&layer);
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("disk/disk.qcow2") {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).unwrap();
            return out;
        }
    }
    panic!("no disk/disk.qcow2 in the layer");
}

#[test]
fn a_self_signed_registry_needs_tls_verification_off() {
    let reg = Registry::start_with(Tls::SelfSigned);
    seed(&reg, "clay/tls:v1", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let reference = Reference::parse(&format!("{}/clay/tls:v1", reg.host())).unwrap();
    let auth = Some(Credentials::new(USER, PASSWORD));

    let strict = pull_with(Access { tls_verify: Some(true), auth: auth.clone(), ..access(AuthFiles::none()) });
    let err = pull(&reference, &strict, &tmp.path().join("a")).unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--tls-verify=false"), "{err}");

    let lax = pull_with(Access { tls_verify: Some(false), auth, ..access(AuthFiles::none()) });
    let pulled = pull(&reference, &lax, &tmp.path().join("b")).unwrap();
    assert_eq!(pulled.layers.len(), 2);
    check_blob_files(&tmp.path().join("b"));
}

/// Pulls `reference` with verified TLS, the registry's credentials and these certificate directories.
fn pull_verified(reference: &Reference, cert_dirs: CertDirs, layout: &Path) -> Result<Pulled> {
    let auth = Some(Credentials::new(USER, PASSWORD));
    pull(reference, &pull_with(Access { tls_verify: Some(true), auth, cert_dirs, ..access(AuthFiles::none()) }), layout)
}

#[test]
fn a_private_ca_is_trusted_through_the_registrys_certificate_directory() {
    let reg = Registry::start_with(Tls::Ca { client_certs: false });
    seed(&reg, "clay/ca:v1", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let reference = Reference::parse(&format!("{}/clay/ca:v1", reg.host())).unwrap();
    let (user_dir, etc_dir) = (tmp.path().join("user-certs.d"), tmp.path().join("etc-certs.d"));
    let dirs = || CertDirs::per_registry(vec![user_dir.clone(), etc_dir.clone()]);

    // Unknown to the system's CAs: refused, with where the CA would go.
    let err = pull_verified(&reference, dirs(), &tmp.path().join("a")).unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    assert!(!err.to_string().contains("trusting the CAs of"), "{err}");
    let wanted = format!("put the CA in {}/ca.crt", user_dir.join(reg.host()).display());
    assert!(err.to_string().contains(&wanted), "{err}");

    // A directory for another port is another registry's.
    std::fs::create_dir_all(etc_dir.join("127.0.0.1:1")).unwrap();
    std::fs::copy(reg.ca(), etc_dir.join("127.0.0.1:1/ca.crt")).unwrap();
    assert!(pull_verified(&reference, dirs(), &tmp.path().join("b")).is_err());

    // Any `*.crt` in the directory named `host:port`, in the second place searched: pulled.
    std::fs::create_dir_all(etc_dir.join(reg.host())).unwrap();
    std::fs::copy(reg.ca(), etc_dir.join(reg.host()).join("private-ca.crt")).unwrap();
    let pulled = pull_verified(&reference, dirs(), &tmp.path().join("c")).unwrap();
    assert_eq!(pulled.layers.len(), 2);
    check_blob_files(&tmp.path().join("c"));

    // The first directory that exists is the one used, as podman uses it: an empty one hides the next.
    std::fs::create_dir_all(user_dir.join(reg.host())).unwrap();
    let err = pull_verified(&reference, dirs(), &tmp.path().join("d")).unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    let trusted = format!("(trusting the CAs of {} besides the system's)", user_dir.join(reg.host()).display());
    assert!(err.to_string().contains(&trusted), "{err}");

    // A fixed directory (--cert-dir) holds the files itself, for every registry.
    let fixed = tmp.path().join("fixed");
    std::fs::create_dir_all(&fixed).unwrap();
    std::fs::copy(reg.ca(), fixed.join("ca.crt")).unwrap();
    pull_verified(&reference, CertDirs::fixed(&fixed), &tmp.path().join("e")).unwrap();

    // A missing fixed directory, and a .crt that is not a certificate, are named.
    let err = pull_verified(&reference, CertDirs::fixed(tmp.path().join("nope")), &tmp.path().join("f")).unwrap_err();
    assert!(err.to_string().starts_with("the registry certificate directory"), "{err}");
    std::fs::write(fixed.join("junk.crt"), "not a certificate\n").unwrap();
    let err = pull_verified(&reference, CertDirs::fixed(&fixed), &tmp.path().join("g")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the registry certificate file {} is unusable: it holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            fixed.join("junk.crt").display()
        )
    );
    for layout in ["a", "b", "d", "f", "g"] {
        assert!(!tmp.path().join(layout).join("index.json").exists(), "a failed pull wrote {layout}/index.json");
    }
}

#[test]
fn a_registry_that_asks_for_a_client_certificate_gets_the_one_in_the_certificate_directory() {
    let reg = Registry::start_with(Tls::Ca { client_certs: true });
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(reg.ca(), certs.join("ca.crt")).unwrap();
    let (client_cert, client_key) = reg.client();
    let skopeo_certs = tmp.path().join("skopeo-certs");
    std::fs::create_dir_all(&skopeo_certs).unwrap();
    std::fs::copy(&client_cert, skopeo_certs.join("client.cert")).unwrap();
    std::fs::copy(&client_key, skopeo_certs.join("client.key")).unwrap();
    seed(&reg, "clay/mtls:v1", &["--dest-cert-dir", skopeo_certs.to_str().unwrap()]);
    let reference = Reference::parse(&format!("{}/clay/mtls:v1", reg.host())).unwrap();

    // Without a client certificate the server ends the handshake.
    let err = pull_verified(&reference, CertDirs::fixed(&certs), &tmp.path().join("a")).unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");

    // A certificate needs its key beside it, and a key its certificate (podman pairs them by name).
    std::fs::copy(&client_cert, certs.join("me.cert")).unwrap();
    let err = pull_verified(&reference, CertDirs::fixed(&certs), &tmp.path().join("b")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the registry certificate file {} is unusable: the client certificate has no key me.key beside it (CA \
             certificates end in .crt)",
            certs.join("me.cert").display()
        )
    );
    // A key of another certificate is refused before any connection (the TLS library would abort on it).
    std::fs::copy(reg.dir.path().join("key.pem"), certs.join("me.key")).unwrap();
    let err = pull_verified(&reference, CertDirs::fixed(&certs), &tmp.path().join("c")).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("me.key is unusable: it cannot be used with the client certificate"), "{message}");

    // The right pair: pulled. With verification off the certificate is still shown.
    std::fs::copy(&client_key, certs.join("me.key")).unwrap();
    let pulled = pull_verified(&reference, CertDirs::fixed(&certs), &tmp.path().join("d")).unwrap();
    assert_eq!(pulled.layers.len(), 2);
    check_blob_files(&tmp.path().join("d"));
    let auth = Some(Credentials::new(USER, PASSWORD));
    let lax = pull_with(Access {
        tls_verify: Some(false),
        auth,
        cert_dirs: CertDirs::fixed(&certs),
        ..access(AuthFiles::none())
    });
    pull(&reference, &lax, &tmp.path().join("e")).unwrap();
    std::fs::remove_file(certs.join("me.cert")).unwrap();
    let err = pull_verified(&reference, CertDirs::fixed(&certs), &tmp.path().join("f")).unwrap_err();
    assert!(err.to_string().contains("the client key has no certificate me.cert beside it"), "{err}");
}

/// registries.conf written to `dir` and parsed.
fn registries(dir: &Path, text: &str) -> RegistriesConf {
    let path = dir.join("registries.conf");
    std::fs::write(&path, text).unwrap();
    RegistriesConf::parse(text, &path, false).unwrap()
}

#[test]
fn registries_conf_sends_pulls_to_mirrors_and_refuses_blocked_images() {
    let (primary, mirror) = (Registry::start(), Registry::start());
    let only_on_mirror = seed(&mirror, "cache/team/app:1", &[]);
    let only_on_primary = seed(&primary, "team/tool:2", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    // Each registry's credentials, looked up by the host actually asked.
    let auth_files = AuthFiles::new(vec![primary.auth_file(&a, USER, PASSWORD), mirror.auth_file(&b, USER, PASSWORD)]);
    let dead = free_port();
    let conf = registries(
        tmp.path(),
        &format!(
            r#"
            [[registry]]
            prefix = "registry.example/team"
            location = "{primary}/team"
            insecure = true
            [[registry.mirror]]
            location = "127.0.0.1:{dead}/down"
            insecure = true
            [[registry.mirror]]
            location = "{mirror}/cache/team"
            insecure = true

            [[registry]]
            prefix = "registry.example/banned"
            location = "{primary}/banned"
            blocked = true
            "#,
            primary = primary.host(),
            mirror = mirror.host(),
        ),
    );
    // TLS verification is left to registries.conf, which calls these plain-HTTP registries insecure.
    let mirrored = || Access { tls_verify: None, registries: conf.clone(), ..access(auth_files.clone()) };
    let options = pull_with(mirrored());
    let pull_to = |image: &str, dir: &str| pull(&Reference::parse(image).unwrap(), &options, &tmp.path().join(dir));

    // The unreachable mirror is passed over at once; the next has the image.
    let started = Instant::now();
    let pulled = pull_to("registry.example/team/app:1", "app").unwrap();
    assert!(started.elapsed() < Duration::from_secs(20), "the dead mirror took {:?}", started.elapsed());
    assert_eq!(pulled.reference.to_string(), "registry.example/team/app:1");
    assert_eq!(pulled.source.to_string(), format!("{}/cache/team/app:1", mirror.host()));
    assert_eq!(pulled.config.digest, only_on_mirror.config_digest);
    assert_eq!(pulled.ref_name.as_deref(), Some("1"));
    assert_eq!(check_blob_files(&tmp.path().join("app")), 4);

    // An image no mirror has comes from the location the prefix was moved to.
    let pulled = pull_to("registry.example/team/tool:2", "tool").unwrap();
    assert_eq!(pulled.source.to_string(), format!("{}/team/tool:2", primary.host()));
    assert_eq!(pulled.config.digest, only_on_primary.config_digest);

    // An image nobody has: every place is named, the registry's answer last.
    let err = pull_to("registry.example/team/none:3", "none").unwrap_err();
    let said = format!("{err}: {}", std::error::Error::source(&err).map(|e| e.to_string()).unwrap_or_default());
    assert!(said.starts_with("pulling registry.example/team/none:3 failed at its mirrors ("), "{said}");
    assert!(said.contains(&format!("127.0.0.1:{dead}/down/none: could not reach the registry")), "{said}");
    assert!(
        said.contains(&format!("{}/cache/team/none: the registry {} has no manifest", mirror.host(), mirror.host())),
        "{said}"
    );
    assert!(said.ends_with(&format!("the registry {} has no manifest `3` of team/none", primary.host())), "{said}");

    // A blocked prefix is refused before any request.
    let err = pull_to("registry.example/banned/app:1", "banned").unwrap_err().to_string();
    let conf_file = tmp.path().join("registries.conf");
    assert_eq!(
        err,
        format!(
            "pulling registry.example/banned/app:1 is blocked: {} blocks `registry.example/banned`",
            conf_file.display()
        )
    );
    assert!(!tmp.path().join("banned").exists());

    // --tls-verify=true overrules `insecure`: the plain-HTTP registry fails the handshake.
    let strict = pull_with(Access { tls_verify: Some(true), ..mirrored() });
    let err = pull(&Reference::parse("registry.example/team/tool:2").unwrap(), &strict, &tmp.path().join("strict"));
    assert!(matches!(err, Err(RegistryError::MirrorsFailed { .. })), "{err:?}");

    // Pushes honour `insecure` for the registry pushed to (moves and mirrors are for pulls): without it, the plain
    // HTTP registry is refused.
    let insecure_primary = format!("[[registry]]\nlocation = \"{}\"\ninsecure = true\n", primary.host());
    let target = Reference::parse(&format!("{}/team/pushed:1", primary.host())).unwrap();
    let blob = BlobSource::Bytes(b"pushed through registries.conf");
    let push_with = |registries| Access { tls_verify: None, registries, ..access(auth_files.clone()) };
    let pushed = push_blob(&target, &push_with(registries(tmp.path(), &insecure_primary)), "text/plain", blob);
    assert!(pushed.is_ok(), "{pushed:?}");
    let refused = push_blob(&target, &push_with(RegistriesConf::none()), "text/plain", blob);
    assert!(matches!(refused, Err(RegistryError::Tls { .. })), "{refused:?}");
}
