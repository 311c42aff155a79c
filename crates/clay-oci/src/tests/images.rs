//! Image selection and verification: tags, platforms, media types, digests; the three containers.

use super::*;

fn one_layer(content: &[u8]) -> Vec<(Vec<u8>, Comp)> {
    vec![(Tar::default().file("etc/which", content).finish(), Comp::Gzip)]
}

fn no_warnings(w: String) {
    panic!("unexpected warning: {w}")
}

#[test]
fn the_config_is_kept() {
    let image = read_layers(&one_layer(b"x")).unwrap();
    assert_eq!(
        image.config,
        ImageConfig {
            os: Some("linux".into()),
            architecture: Some("amd64".into()),
            variant: None,
            env: vec!["PATH=/bin".into()],
            entrypoint: Some(vec!["/sbin/init".into()]),
            cmd: Some(vec!["--verbose".into()]),
            working_dir: Some("/root".into()),
            user: Some("0:0".into()),
            labels: [("org.example".to_owned(), "yes".to_owned())].into(),
        }
    );
    assert_eq!(image.layers.len(), 1);
    assert!(image.manifest_digest.is_some());
}

#[test]
fn tags_pick_an_image_and_an_untagged_read_needs_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let one = blobs.image(&one_layer(b"one"), "linux/amd64");
    let two = blobs.image(&one_layer(b"two"), "linux/amd64");
    blobs.write_layout(dir.path(), vec![tagged(one, "one"), tagged(two, "two")]);
    for tag in ["one", "two"] {
        let image = read_layout(dir.path(), Some(tag), &opts(None), &mut no_warnings).unwrap();
        assert_eq!(content(&image, "etc/which"), tag.as_bytes());
    }
    let d = dir.path().display();
    let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert_eq!(err, format!("image `oci:{d}` holds several images; name one as `oci:{d}:TAG`, one of `one`, `two`"));
    let err = read_layout(dir.path(), Some("three"), &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert_eq!(err, format!("image `oci:{d}:three` has no image tagged `three`; it has `one`, `two`"));
}

#[test]
fn platforms_are_picked_from_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let amd = blobs.image(&one_layer(b"amd64"), "linux/amd64");
    let arm = blobs.image(&one_layer(b"arm64"), "linux/arm64/v8");
    let index = blobs.index(vec![arm, amd]);
    blobs.write_layout(dir.path(), vec![tagged(index, "latest")]);
    let read = |platform: Option<&str>| read_layout(dir.path(), Some("latest"), &opts(platform), &mut no_warnings);
    assert_eq!(content(&read(None).unwrap(), "etc/which"), b"amd64", "the host's platform by default");
    assert_eq!(content(&read(Some("linux/arm64")).unwrap(), "etc/which"), b"arm64");
    assert_eq!(content(&read(Some("linux/arm64/v8")).unwrap(), "etc/which"), b"arm64");
    let err = read(Some("linux/s390x")).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "image `oci:{}:latest` has no image for linux/s390x; it has linux/arm64/v8, linux/amd64 (choose one with \
             --platform)",
            dir.path().display()
        )
    );
    assert!("linux".parse::<Platform>().is_err());
}

#[test]
fn a_single_image_for_another_platform_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let arm = blobs.image(&one_layer(b"arm"), "linux/arm64");
    blobs.write_layout(dir.path(), vec![arm]);
    let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert!(err.ends_with("has no image for linux/amd64; it has linux/arm64 (choose one with --platform)"), "{err}");
    assert!(read_layout(dir.path(), None, &opts(Some("linux/arm64")), &mut no_warnings).is_ok());
}

#[test]
fn a_flipped_byte_in_any_blob_is_an_error_naming_it() {
    let mut blobs = Blobs::default();
    let image = blobs.image(&one_layer(b"x"), "linux/amd64");
    let manifest_digest = image["digest"].as_str().unwrap().to_owned();
    let manifest: Value = serde_json::from_slice(&blobs.0[&manifest_digest]).unwrap();
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    for (digest, what) in [(&layer_digest, "layer"), (&config_digest, "config"), (&manifest_digest, "manifest")] {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = blobs.clone();
        let data = bad.0.get_mut(digest).unwrap();
        let last = data.len() - 2;
        data[last] ^= 1;
        bad.write_layout(dir.path(), vec![image.clone()]);
        let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
        let prefix = format!("image `oci:{}`: {what} `{digest}` does not match its digest", dir.path().display());
        assert!(err.starts_with(&prefix), "{what}: {err}");

        let dir = tempfile::tempdir().unwrap();
        let mut short = blobs.clone();
        short.0.get_mut(digest).unwrap().pop();
        short.write_layout(dir.path(), vec![image.clone()]);
        let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
        assert!(err.contains(&format!("{what} `{digest}` is ")) && err.contains("but its descriptor says"), "{err}");
    }
}

#[test]
fn deferred_checks_are_awaited_by_the_caller_and_still_fail() {
    // A plain layer with one byte of a file's content changed: the tar still reads, only the digests tell.
    let mut blobs = Blobs::default();
    let layer = Tar::default().file("etc/which", b"original").finish();
    let image = blobs.image(&[(layer.clone(), Comp::Plain)], "linux/amd64");
    let digest = sha256(&layer);
    let data = blobs.0.get_mut(&digest).unwrap();
    let at = data.windows(8).position(|w| w == b"original").unwrap();
    data[at] = b'O';
    let dir = tempfile::tempdir().unwrap();
    blobs.write_layout(dir.path(), vec![image]);
    let expected = format!("layer `{digest}` does not match its digest");

    let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert!(err.contains(&expected), "{err}");

    let deferred = ReadOptions { defer_checks: true, ..opts(None) };
    let image = read_layout(dir.path(), None, &deferred, &mut no_warnings).unwrap();
    assert!(!image.checks.is_empty());
    let err = image.checks.wait().unwrap_err().to_string();
    assert!(err.contains(&expected), "{err}");

    // Without deferring, what is returned has been checked.
    let mut good = Blobs::default();
    let image = good.image(&one_layer(b"fine"), "linux/amd64");
    let dir = tempfile::tempdir().unwrap();
    good.write_layout(dir.path(), vec![image]);
    let image = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap();
    assert!(image.checks.is_empty());
    let image = read_layout(dir.path(), None, &deferred, &mut no_warnings).unwrap();
    image.checks.wait().unwrap();
}

#[test]
fn blobs_verified_as_they_were_stored_are_not_hashed_again_but_diff_ids_are() {
    let verified = ReadOptions { defer_checks: true, blobs_verified: true, ..opts(None) };
    // A plain layer is its own diff ID: once its blob is verified, nothing is left to hash.
    let mut blobs = Blobs::default();
    let image = blobs.image(&[(Tar::default().file("etc/which", b"plain").finish(), Comp::Plain)], "linux/amd64");
    let dir = tempfile::tempdir().unwrap();
    blobs.write_layout(dir.path(), vec![image]);
    let image = read_layout(dir.path(), None, &verified, &mut no_warnings).unwrap();
    assert!(image.checks.is_empty());
    // A compressed layer's tar is still checked against the config's diff ID, and a wrong one is still refused.
    let mut blobs = Blobs::default();
    let image = blobs.image_with(&one_layer(b"x"), "linux/amd64", |config, _| {
        config["rootfs"]["diff_ids"][0] = json!(sha256(b"something else"));
    });
    let dir = tempfile::tempdir().unwrap();
    blobs.write_layout(dir.path(), vec![image]);
    let image = read_layout(dir.path(), None, &verified, &mut no_warnings).unwrap();
    let err = image.checks.wait().unwrap_err().to_string();
    assert!(err.contains("uncompressed layer") && err.contains("does not match its digest"), "{err}");
}

#[test]
fn a_wrong_diff_id_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let image = blobs.image_with(&one_layer(b"x"), "linux/amd64", |config, _| {
        config["rootfs"]["diff_ids"][0] = json!(sha256(b"something else"));
    });
    blobs.write_layout(dir.path(), vec![image]);
    let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert!(err.contains("uncompressed layer") && err.contains("does not match its digest"), "{err}");
}

#[test]
fn unknown_foreign_and_schema1_media_types_are_named() {
    let cases: [(&str, &str); 3] = [
        (
            "application/vnd.example.layer.v1",
            "has media type `application/vnd.example.layer.v1`, which clay cannot read",
        ),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "is a non-distributable (foreign) layer"),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "is a non-distributable (foreign) layer"),
    ];
    for (media_type, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut blobs = Blobs::default();
        let image = blobs.image_with(&one_layer(b"x"), "linux/amd64", |_, manifest| {
            manifest["layers"][0]["mediaType"] = json!(media_type);
        });
        blobs.write_layout(dir.path(), vec![image]);
        let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
        assert!(err.contains(expected), "{media_type}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let schema1 = json!({ "schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": [] });
    let desc = blobs.add_json(schema::DOCKER_SCHEMA1[1], &schema1);
    blobs.write_layout(dir.path(), vec![desc]);
    let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert!(err.contains("is a Docker schema 1 manifest"), "{err}");
    // A manifest whose config is not an image's (an OCI artifact).
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let image = blobs.image(&one_layer(b"x"), "linux/amd64");
    let mut manifest: Value = serde_json::from_slice(&blobs.0[image["digest"].as_str().unwrap()]).unwrap();
    manifest["config"]["mediaType"] = json!("application/vnd.cncf.helm.config.v1+json");
    let desc = blobs.add_json(schema::OCI_MANIFEST, &manifest);
    blobs.write_layout(dir.path(), vec![desc]);
    let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert!(err.contains("has media type `application/vnd.cncf.helm.config.v1+json`"), "{err}");
}

#[test]
fn docker_media_types_and_nested_indexes_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let mut image = blobs.image_with(&one_layer(b"docker"), "linux/amd64", |_, manifest| {
        manifest["mediaType"] = json!(schema::DOCKER_MANIFEST);
        manifest["layers"][0]["mediaType"] = json!(schema::DOCKER_LAYER);
    });
    // Re-store the manifest under its Docker media type with a Docker config type.
    let mut manifest: Value = serde_json::from_slice(&blobs.0[image["digest"].as_str().unwrap()]).unwrap();
    manifest["config"]["mediaType"] = json!(schema::DOCKER_CONFIG);
    let platform = image["platform"].clone();
    image = blobs.add_json(schema::DOCKER_MANIFEST, &manifest);
    image["platform"] = platform;
    let list = json!({ "schemaVersion": 2, "mediaType": schema::DOCKER_LIST, "manifests": [image] });
    let list = blobs.add_json(schema::DOCKER_LIST, &list);
    let outer = blobs.index(vec![list]);
    blobs.write_layout(dir.path(), vec![outer]);
    let image = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap();
    assert_eq!(content(&image, "etc/which"), b"docker");
}

#[test]
fn oci_archives_are_read_in_place_plain_or_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Blobs::default();
    let layers = vec![
        (Tar::default().file("etc/plain", b"in the archive").finish(), Comp::Plain),
        (Tar::default().file("etc/zstd", b"in a spill file").finish(), Comp::Zstd),
    ];
    let image = blobs.image(&layers, "linux/amd64");
    let path = dir.path().join("image.tar");
    blobs.write_oci_archive(&path, vec![tagged(image, "v1")]);
    let before = listing(dir.path());
    let image = read_oci_archive(&path, Some("v1"), &opts(None), &mut no_warnings).unwrap();
    assert_eq!(content(&image, "etc/plain"), b"in the archive");
    assert_eq!(content(&image, "etc/zstd"), b"in a spill file");
    let id = image.tree.lookup(b"etc/plain").unwrap().unwrap();
    let clay_tree::Kind::File(clay_tree::Content::Range { offset, .. }) = &image.tree.inode(id).kind else {
        panic!("a plain layer's file is a range of the archive")
    };
    let archive_bytes = std::fs::read(&path).unwrap();
    let offset = usize::try_from(*offset).unwrap();
    assert_eq!(&archive_bytes[offset..offset + 14], b"in the archive");
    assert_eq!(listing(dir.path()), before, "nothing was extracted");

    let gz = dir.path().join("image.tar.gz");
    std::fs::write(&gz, compress(&archive_bytes, Comp::Gzip)).unwrap();
    let image = read_oci_archive(&gz, Some("v1"), &opts(None), &mut no_warnings).unwrap();
    assert_eq!(content(&image, "etc/plain"), b"in the archive");
}

/// A docker-archive as `docker save` (legacy: `<id>/layer.tar`, the second layer a symlink to the first as docker
/// writes identical layers) or docker 25+ (`blobs/sha256/...`) writes it.
fn docker_archive(legacy: bool, tamper: bool) -> Vec<u8> {
    let layer1 = Tar::default().file("etc/one", b"1").finish();
    let layer2 = Tar::default().file("etc/.wh.one", b"").file("etc/two", b"2").finish();
    let diff_ids = [sha256(&layer1), sha256(&layer2)];
    let config = json!({ "os": "linux", "architecture": "amd64", "config": { "Cmd": ["/bin/sh"] },
                         "rootfs": { "type": "layers", "diff_ids": diff_ids } });
    let config = serde_json::to_vec(&config).unwrap();
    let config_hex = sha256(&config)[7..].to_owned();
    let mut t = Tar::default();
    let mut layer2 = layer2;
    if tamper {
        layer2[600] ^= 1;
    }
    let names: Vec<String> = if legacy {
        t.file("aaaa/layer.tar", &layer1).file("bbbb/layer.tar", &layer2).file(&format!("{config_hex}.json"), &config);
        t.symlink("cccc/layer.tar", "../aaaa/layer.tar");
        vec!["aaaa/layer.tar".into(), "bbbb/layer.tar".into()]
    } else {
        let names: Vec<String> = diff_ids.iter().map(|d| format!("blobs/sha256/{}", &d[7..])).collect();
        t.file(&names[0], &layer1).file(&names[1], &layer2).file(&format!("blobs/sha256/{config_hex}"), &config);
        names
    };
    let config_name = if legacy { format!("{config_hex}.json") } else { format!("blobs/sha256/{config_hex}") };
    let manifest = json!([{ "Config": config_name, "RepoTags": ["localhost/test:latest"], "Layers": names }]);
    t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    t.finish()
}

#[test]
fn docker_archives_in_both_layouts_read_and_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    for legacy in [true, false] {
        let path = dir.path().join(format!("docker-{legacy}.tar"));
        std::fs::write(&path, docker_archive(legacy, false)).unwrap();
        let image = read_docker_archive(&path, None, &opts(None), &mut no_warnings).unwrap();
        assert!(image.tree.lookup(b"etc/one").unwrap().is_none());
        assert_eq!(content(&image, "etc/two"), b"2");
        assert_eq!(image.config.cmd, Some(vec!["/bin/sh".to_owned()]));

        std::fs::write(&path, docker_archive(legacy, true)).unwrap();
        let err = read_docker_archive(&path, None, &opts(None), &mut no_warnings).unwrap_err().to_string();
        assert!(err.contains("does not match its digest"), "{err}");
    }
}

/// A docker-archive of several images, as `docker save a b c` writes it: each image one layer holding
/// `etc/which` with its own content, under its own tags (none for an image saved by ID).
fn docker_archive_of(images: &[(&[&str], &[u8])]) -> Vec<u8> {
    let mut t = Tar::default();
    let mut manifest = Vec::new();
    for (tags, which) in images {
        let layer = Tar::default().file("etc/which", which).finish();
        let layer_name = format!("blobs/sha256/{}", &sha256(&layer)[7..]);
        let config = json!({ "os": "linux", "architecture": "amd64",
                             "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] } });
        let config = serde_json::to_vec(&config).unwrap();
        let config_name = format!("blobs/sha256/{}", &sha256(&config)[7..]);
        t.file(&layer_name, &layer).file(&config_name, &config);
        let tags = if tags.is_empty() { Value::Null } else { json!(tags) };
        manifest.push(json!({ "Config": config_name, "RepoTags": tags, "Layers": [layer_name] }));
    }
    t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    t.finish()
}

#[test]
fn an_image_of_a_docker_archive_of_several_is_chosen_by_tag_or_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("several.tar");
    let images: [(&[&str], &[u8]); 3] =
        [(&["localhost/a:latest", "localhost/a:1"], b"a"), (&["docker.io/library/b:2"], b"b"), (&[], b"by id")];
    std::fs::write(&path, docker_archive_of(&images)).unwrap();
    let read = |which| read_docker_archive(&path, which, &opts(None), &mut no_warnings);

    let err = read(None).unwrap_err().to_string();
    let p = path.display();
    assert_eq!(
        err,
        format!(
            "image `docker-archive:{p}` holds several images; name one as `docker-archive:{p}:REF` or by position as \
             `docker-archive:{p}:@INDEX`: `localhost/a:latest`, `localhost/a:1` (@0), `docker.io/library/b:2` (@1), \
             @2 (untagged)"
        )
    );
    for (i, (_, which)) in images.iter().enumerate() {
        assert_eq!(content(&read(Some(DockerImage::Index(i))).unwrap(), "etc/which"), *which);
    }
    let err = read(Some(DockerImage::Index(3))).unwrap_err().to_string();
    assert_eq!(err, format!("image `docker-archive:{p}:@3` has no image @3: it holds 3, @0 to @2"));

    // Whether a tag names the image is the caller's (normalising) comparison; the first tag or any other matches.
    let b = |tag: &str| tag == "docker.io/library/b:2";
    let image = read(Some(DockerImage::Tagged { name: "b:2", matches: &b })).unwrap();
    assert_eq!(content(&image, "etc/which"), b"b");
    let a1 = |tag: &str| tag == "localhost/a:1";
    let image = read(Some(DockerImage::Tagged { name: "localhost/a:1", matches: &a1 })).unwrap();
    assert_eq!(content(&image, "etc/which"), b"a");
    let none = |_: &str| false;
    let err = read(Some(DockerImage::Tagged { name: "c", matches: &none })).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("image `docker-archive:{p}:c` has no image tagged `c`; it has `localhost/a")),
        "{err}"
    );
    let every = |_: &str| true;
    let err = read(Some(DockerImage::Tagged { name: "x", matches: &every })).unwrap_err().to_string();
    assert!(err.contains("several of its images are tagged `x`; choose one as @INDEX"), "{err}");

    // One image needs no choice, and a choice of it still works.
    std::fs::write(&path, docker_archive_of(&images[1..2])).unwrap();
    assert_eq!(content(&read(None).unwrap(), "etc/which"), b"b");
    assert_eq!(content(&read(Some(DockerImage::Index(0))).unwrap(), "etc/which"), b"b");
}

#[test]
fn missing_and_wrong_sources_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = read_layout(&missing, None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert_eq!(err, format!("`{}` does not exist", missing.display()));
    let err = read_layout(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert_eq!(err, format!("`{}` is not an OCI image layout: it has no `oci-layout` file", dir.path().display()));
    let err = read_oci_archive(dir.path(), None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert!(err.ends_with("is a directory; an archive is a file (use oci:DIR for an image layout directory)"));
    let not_docker = dir.path().join("x.tar");
    std::fs::write(&not_docker, Tar::default().file("hello", b"x").finish()).unwrap();
    let err = read_docker_archive(&not_docker, None, &opts(None), &mut no_warnings).unwrap_err().to_string();
    assert!(err.contains("manifest.json is not valid: it is missing, so this is not a docker save archive"), "{err}");
}
