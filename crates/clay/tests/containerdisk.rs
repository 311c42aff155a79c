//! `--format containerdisk` and `clay push`: skopeo, tar and qemu-img as oracles for the archive, and a real
//! registry (Debian's `docker-registry` on loopback with htpasswd auth) for the push.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use clay_testkit::registry::{Registry, PASSWORD, USER};
use common::*;

/// Runs skopeo (with `--insecure-policy`, so no policy.json is needed) and returns stdout.
fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo is missing: apt-get install skopeo");
    assert!(out.status.success(), "skopeo {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The one layer of the single image in the OCI layout `dir` (a tar, or a gzipped tar as skopeo writes to `oci:`),
/// unpacked into `into`; returns the layer's `tar tv` listing with numeric owners.
fn unpack_only_layer(dir: &Path, into: &Path) -> String {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let blob = |digest: &str| dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(manifests[0]["digest"].as_str().unwrap())).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer = blob(layers[0]["digest"].as_str().unwrap());
    std::fs::create_dir_all(into).unwrap();
    sh(&format!("tar -xf {} -C {}", layer.display(), into.display()));
    sh(&format!("tar --numeric-owner -tvf {}", layer.display()))
}

#[test]
fn containerdisk_holds_the_qcow2_for_kubevirt_and_is_reproducible() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["containerdisk", "qcow2"], &[]);
    let archive = with_ext(&base, "containerdisk.tar");
    let qcow2 = with_ext(&base, "qcow2");

    let oci_ref = format!("oci-archive:{}", archive.display());
    let inspected: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", &oci_ref])).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1, "{inspected}");
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Created"], "2023-11-14T22:13:20Z");
    let config: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", "--config", &oci_ref])).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], inspected["Layers"][0], "the layer is uncompressed");

    let layout = work.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    sh(&format!("tar -xf {} -C {}", archive.display(), layout.display()));
    let disk = work.path().join("layer");
    let listing = unpack_only_layer(&layout, &disk);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(lines[0].starts_with("dr-xr-xr-x 107/107") && lines[0].ends_with(" disk/"), "{listing}");
    assert!(lines[1].starts_with("-r--r----- 107/107") && lines[1].ends_with(" disk/disk.qcow2"), "{listing}");
    let inside = disk.join("disk/disk.qcow2");
    assert!(std::fs::read(&inside).unwrap() == std::fs::read(&qcow2).unwrap(), "the layer holds the .qcow2 output");
    let check = sh(&format!("qemu-img check {}", inside.display()));
    assert!(check.contains("No errors were found"), "{check}");

    let again = build_tiny(work.path(), "again", &["containerdisk"], &[]);
    assert!(
        std::fs::read(with_ext(&again, "containerdisk.tar")).unwrap() == std::fs::read(&archive).unwrap(),
        "two builds with the same SOURCE_DATE_EPOCH differ"
    );
}

/// `clay push FILE DEST --tls-verify=false` with `REGISTRY_AUTH_FILE=auth`.
fn push(file: &Path, dest: &str, auth: &Path) -> std::process::Output {
    clay()
        .args(["push", file.to_str().unwrap(), dest, "--tls-verify=false"])
        .env("REGISTRY_AUTH_FILE", auth)
        .output()
        .unwrap()
}

#[test]
fn pushed_containerdisk_pulls_back_with_the_same_disk() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["containerdisk", "qcow2"], &[]);
    let archive = with_ext(&base, "containerdisk.tar");
    let reg = Registry::start();
    let dest = format!("docker://{}/clay/tiny:1", reg.host());

    let out = push(&archive, &dest, &reg.auth_file(reg.dir.path(), USER, PASSWORD));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.starts_with(&format!("{}/clay/tiny@sha256:", reg.host())), "{printed}");

    let pulled = work.path().join("pulled");
    let creds = format!("{USER}:{PASSWORD}");
    let oci = format!("oci:{}", pulled.display());
    skopeo(&["copy", "--src-tls-verify=false", "--src-creds", &creds, &dest, &oci]);
    let disk = work.path().join("layer");
    let listing = unpack_only_layer(&pulled, &disk);
    assert!(listing.contains("107/107") && listing.contains("disk/disk.qcow2"), "{listing}");
    let inside = disk.join("disk/disk.qcow2");
    let check = sh(&format!("qemu-img check {}", inside.display()));
    assert!(check.contains("No errors were found"), "{check}");
    assert!(std::fs::read(&inside).unwrap() == std::fs::read(with_ext(&base, "qcow2")).unwrap());

    // The registry's manifest is the archive's, byte for byte: the same digest as in the archive's index.json.
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &dest]);
    let local = skopeo(&["inspect", "--raw", &format!("oci-archive:{}", archive.display())]);
    assert_eq!(raw, local);

    // Wrong credentials: one sentence, non-zero exit, nothing pushed.
    let bad =
        push(&archive, &format!("docker://{}/clay/other:1", reg.host()), &reg.auth_file(reg.dir.path(), USER, "wrong"));
    let stderr = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(!bad.status.success(), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("clay: error: ") && stderr.contains("refused the credentials"), "{stderr}");
}

#[test]
fn uki_and_disk_are_pushed_as_artifacts_with_their_file_names() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["efi", "raw"], &[]);
    let reg = Registry::start();
    let auth = reg.auth_file(reg.dir.path(), USER, PASSWORD);
    let creds = format!("{USER}:{PASSWORD}");
    for (ext, media_type) in
        [("efi", "application/vnd.claylinux.uki.v1+efi"), ("img", "application/vnd.claylinux.disk.v1.raw")]
    {
        let file = with_ext(&base, ext);
        let dest = format!("docker://{}/clay/artifact:{ext}", reg.host());
        let out = push(&file, &dest, &auth);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &dest]);
        let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(manifest["artifactType"], media_type, "{raw}");
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json", "{raw}");
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{raw}");
        assert_eq!(layers[0]["mediaType"], media_type, "{raw}");
        assert_eq!(layers[0]["annotations"]["org.opencontainers.image.title"], format!("tiny.{ext}"), "{raw}");
        assert_eq!(layers[0]["size"], std::fs::metadata(&file).unwrap().len(), "{raw}");
        let digest = sh(&format!("sha256sum {} | cut -d' ' -f1", file.display()));
        assert_eq!(layers[0]["digest"], format!("sha256:{}", digest.trim()), "{raw}");
    }

    // Something clay did not build is refused in one sentence.
    let other = work.path().join("notes.txt");
    std::fs::write(&other, "hello").unwrap();
    let stderr = clay_err(clay().args(["push", other.to_str().unwrap(), "docker://127.0.0.1:1/x/y:1"]));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not know how to push it"), "{stderr}");
}
