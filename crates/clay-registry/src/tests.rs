//! Unit tests: reference parsing, auth files, challenges, platforms, digests, manifests, the layout index.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::{classify, Kind, Unusable};
use crate::*;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Input, registry, repository, tag, digest.
type ReferenceRow<'a> = (String, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

#[test]
fn references_normalise_like_docker() {
    let d = format!("sha256:{HEX}");
    let table: Vec<ReferenceRow<'_>> = vec![
        ("alpine".into(), "docker.io", "library/alpine", Some("latest"), None),
        ("docker://alpine".into(), "docker.io", "library/alpine", Some("latest"), None),
        ("alpine:3.20".into(), "docker.io", "library/alpine", Some("3.20"), None),
        ("library/alpine".into(), "docker.io", "library/alpine", Some("latest"), None),
        ("user/repo:v1".into(), "docker.io", "user/repo", Some("v1"), None),
        ("docker.io/alpine".into(), "docker.io", "library/alpine", Some("latest"), None),
        ("index.docker.io/library/alpine".into(), "docker.io", "library/alpine", Some("latest"), None),
        ("host:5000/ns/repo:tag".into(), "host:5000", "ns/repo", Some("tag"), None),
        ("host:5000/ns/repo".into(), "host:5000", "ns/repo", Some("latest"), None),
        ("127.0.0.1:5000/clay/test:t1".into(), "127.0.0.1:5000", "clay/test", Some("t1"), None),
        ("localhost/repo".into(), "localhost", "repo", Some("latest"), None),
        ("localhost:5000/a/b/c".into(), "localhost:5000", "a/b/c", Some("latest"), None),
        ("quay.io/a.b/c_d__e-f--g".into(), "quay.io", "a.b/c_d__e-f--g", Some("latest"), None),
        ("[::1]:5000/repo:x".into(), "[::1]:5000", "repo", Some("x"), None),
        (format!("repo@{d}"), "docker.io", "library/repo", None, Some(d.as_str())),
        (format!("ghcr.io/o/r:v2@{d}"), "ghcr.io", "o/r", Some("v2"), Some(d.as_str())),
        ("Host/repo".into(), "Host", "repo", Some("latest"), None),
    ];
    for (input, registry, repository, tag, digest) in table {
        let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry, registry, "{input}");
        assert_eq!(r.repository, repository, "{input}");
        assert_eq!(r.tag.as_deref(), tag, "{input}");
        assert_eq!(r.digest.as_ref().map(Digest::as_str), digest, "{input}");
    }
    let hub = Reference::parse("alpine").unwrap();
    assert_eq!(hub.api_host(), "registry-1.docker.io");
    assert_eq!(hub.to_string(), "docker.io/library/alpine:latest");
    assert_eq!(Reference::parse("host:5000/ns/repo").unwrap().api_host(), "host:5000");
    let pinned = Reference::parse(&format!("ghcr.io/o/r:v2@{d}")).unwrap();
    assert_eq!(pinned.manifest_reference(), d);
    assert_eq!(pinned.to_string(), format!("ghcr.io/o/r:v2@{d}"));
}

#[test]
fn malformed_references_say_why() {
    let bad: [(&str, &str); 19] = [
        ("", "empty"),
        ("docker://", "empty"),
        ("Alpine", "lower-case"),
        ("repo:", "tag"),
        ("repo:-x", "tag"),
        ("repo:a/b", "port"), // `a/b` after the colon is a path, so `repo:a` is a host and `a` its port
        ("host:port/repo", "port"),
        ("host:5000/", "empty"),
        ("a//b", "empty path component"),
        ("a/-b", "separators"),
        ("a/b.", "separators"),
        ("a/b___c", "separators"),
        ("repo@sha256:abc", "digest"),
        ("repo@md5:0123", "digest"),
        ("my repo", "whitespace"),
        ("[::1/repo", "unclosed"),
        ("-bad.host/repo", "host name"),
        ("@", "digest"),
        (&format!("@sha256:{HEX}"), "empty"),
    ];
    for (input, needle) in bad {
        let err = Reference::parse(input).expect_err(input).to_string();
        assert!(err.contains(needle), "{input:?}: {err}");
        assert!(err.starts_with(&format!("`{input}` is not a valid image reference")), "{err}");
    }
    let long = format!("host/{}", "a".repeat(300));
    assert!(Reference::parse(&long).is_err());
    let long_tag = format!("repo:{}", "t".repeat(129));
    assert!(Reference::parse(&long_tag).is_err());
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: BTreeMap<String, OsString> = pairs.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn auth_files_follow_podmans_order() {
    let all = AuthFiles::from_vars(vars(&[
        ("REGISTRY_AUTH_FILE", "/a/auth.json"),
        ("XDG_RUNTIME_DIR", "/run/user/1"),
        ("HOME", "/home/u"),
    ]));
    let want: Vec<PathBuf> = [
        "/a/auth.json",
        "/run/user/1/containers/auth.json",
        "/home/u/.config/containers/auth.json",
        "/home/u/.docker/config.json",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(all.paths(), want.as_slice());
    let custom = AuthFiles::from_vars(vars(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/cfg"), ("DOCKER_CONFIG", "/dk")]));
    let want: Vec<PathBuf> = ["/cfg/containers/auth.json", "/dk/config.json"].iter().map(PathBuf::from).collect();
    assert_eq!(custom.paths(), want.as_slice());
    assert!(AuthFiles::from_vars(vars(&[])).paths().is_empty());
}

#[test]
fn certificate_directories_follow_podmans_order() {
    let home = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let user = home.path().join(".config/containers/certs.d");
    let dirs = CertDirs::from_vars(vars(&[("HOME", home.path().to_str().unwrap())]));
    assert_eq!(
        dirs,
        CertDirs::per_registry(vec![
            user.clone(),
            PathBuf::from("/etc/containers/certs.d"),
            PathBuf::from("/etc/docker/certs.d")
        ])
    );
    assert_eq!(
        CertDirs::from_vars(vars(&[])),
        CertDirs::per_registry(vec!["/etc/containers/certs.d".into(), "/etc/docker/certs.d".into()])
    );

    // The first existing directory named exactly like the registry (its port included) wins.
    let dirs = CertDirs::per_registry(vec![user.clone(), etc.path().to_owned()]);
    assert_eq!(dirs.dir_for("r.example:5000"), None);
    std::fs::create_dir_all(etc.path().join("r.example:5000")).unwrap();
    std::fs::create_dir_all(etc.path().join("r.example")).unwrap();
    assert_eq!(dirs.dir_for("r.example:5000"), Some(etc.path().join("r.example:5000")));
    assert_eq!(dirs.dir_for("r.example"), Some(etc.path().join("r.example")));
    assert_eq!(dirs.dir_for("r.example:443"), None);
    std::fs::create_dir_all(user.join("r.example:5000")).unwrap();
    assert_eq!(dirs.dir_for("r.example:5000"), Some(user.join("r.example:5000")));
    // A fixed directory (--cert-dir) serves every registry.
    assert_eq!(CertDirs::fixed("/c").dir_for("any:1"), Some(PathBuf::from("/c")));
    assert_eq!(CertDirs::none().dir_for("r.example:5000"), None);
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn identity_tokens_in_auth_files_are_kept_beside_the_user() {
    let dir = tempfile::tempdir().unwrap();
    // As `az acr login` writes docker's config.json: a placeholder user with no password, and the token.
    let acr = write(
        dir.path(),
        "config.json",
        &format!(
            r#"{{"auths":{{"r.azurecr.io":{{"auth":"{}","identitytoken":"eyJ.refresh"}},"only.example":{{"identitytoken":"t2"}},"none.example":{{"identitytoken":""}}}}}}"#,
            b64("00000000-0000-0000-0000-000000000000:")
        ),
    );
    let files = AuthFiles::new(vec![acr]);
    let c = files.lookup("r.azurecr.io", "os").unwrap().credentials.unwrap();
    assert_eq!(c.username, "00000000-0000-0000-0000-000000000000");
    assert_eq!(c.identity_token.as_deref(), Some("eyJ.refresh"));
    assert!(!format!("{c:?}").contains("eyJ"), "{c:?}");
    let c = files.lookup("only.example", "os").unwrap().credentials.unwrap();
    assert_eq!((c.username.as_str(), c.identity_token.as_deref()), ("", Some("t2")));
    assert!(files.lookup("none.example", "os").unwrap().credentials.is_none());
}

#[test]
fn auth_lookup_takes_the_first_file_with_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let first =
        write(dir.path(), "first.json", &format!(r#"{{"auths":{{"other:5000":{{"auth":"{}"}}}}}}"#, b64("o:p")));
    let second = write(
        dir.path(),
        "second.json",
        &format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#, b64("user:pa:ss")),
    );
    let third =
        write(dir.path(), "third.json", &format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#, b64("late:x")));
    let missing = dir.path().join("missing.json");
    let files = AuthFiles::new(vec![missing, first, second.clone(), third]);
    let found = files.lookup("127.0.0.1:5000", "clay/test").unwrap();
    let c = found.credentials.unwrap();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pa:ss"));
    assert_eq!(c.origin.as_deref(), Some(second.as_path()));
    assert_eq!(found.searched.len(), 4);
    assert!(files.lookup("nowhere:1", "x").unwrap().credentials.is_none());
    assert!(!format!("{c:?}").contains("pa:ss"), "Debug must not show the password");
}

#[test]
fn auth_keys_in_docker_and_podman_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let docker = write(
        dir.path(),
        "config.json",
        &format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"https://quay.io":{{"auth":"{}"}},
                "ghcr.io/org":{{"auth":"{}"}},"ghcr.io":{{"auth":"{}"}},
                "plain.example":{{"username":"pu","password":"pp"}}}}}}"#,
            b64("hub:1"),
            b64("quay:2"),
            b64("org:3"),
            b64("gh:4")
        ),
    );
    let files = AuthFiles::new(vec![docker]);
    let user = |reg: &str, repo: &str| files.lookup(reg, repo).unwrap().credentials.map(|c| c.username);
    assert_eq!(user("docker.io", "library/alpine").as_deref(), Some("hub"));
    assert_eq!(user("quay.io", "a/b").as_deref(), Some("quay"));
    assert_eq!(user("ghcr.io", "org/img").as_deref(), Some("org"), "a namespace key beats the host key");
    assert_eq!(user("ghcr.io", "other/img").as_deref(), Some("gh"));
    assert_eq!(user("plain.example", "x").as_deref(), Some("pu"));
    assert_eq!(user("registry.example", "x"), None);
}

#[test]
fn auth_files_report_helpers_and_malformed_content() {
    let dir = tempfile::tempdir().unwrap();
    let helper = write(dir.path(), "helper.json", r#"{"auths":{"docker.io":{}},"credsStore":"clay-absent"}"#);
    let found = AuthFiles::new(vec![helper.clone()]).lookup("docker.io", "library/alpine").unwrap();
    assert!(found.credentials.is_none());
    let err = RegistryError::AuthRequired {
        registry: "docker.io".into(),
        repository: "library/alpine".into(),
        searched: found.searched,
        helper: found.helper,
    }
    .to_string();
    assert!(
        err.ends_with(&format!(
            "; {} names the credential helper `clay-absent`, but `docker-credential-clay-absent` is not installed \
             (not on PATH)",
            helper.display()
        )),
        "{err}"
    );

    let broken = write(dir.path(), "broken.json", r#"{"auths": {"#);
    let err = AuthFiles::new(vec![broken]).lookup("docker.io", "x").unwrap_err().to_string();
    assert!(err.contains("broken.json") && err.contains("not valid JSON"), "{err}");
    let bad_b64 = write(dir.path(), "b64.json", r#"{"auths":{"h:1":{"auth":"%%%"}}}"#);
    let err = AuthFiles::new(vec![bad_b64]).lookup("h:1", "x").unwrap_err().to_string();
    assert!(err.contains("not base64"), "{err}");
    let no_colon = write(dir.path(), "nocolon.json", &format!(r#"{{"auths":{{"h:1":{{"auth":"{}"}}}}}}"#, b64("x")));
    let err = AuthFiles::new(vec![no_colon]).lookup("h:1", "x").unwrap_err().to_string();
    assert!(err.contains("user:password"), "{err}");
    let empty = write(dir.path(), "empty.json", "\n");
    assert!(AuthFiles::new(vec![empty]).lookup("h:1", "x").unwrap().credentials.is_none());
}

#[test]
fn challenges_parse() {
    let c = parse_challenges(
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].scheme, "bearer");
    assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
    assert_eq!(c[0].param("service"), Some("registry.docker.io"));
    assert_eq!(c[0].param("scope"), Some("repository:library/alpine:pull,push"));

    let c = parse_challenges(r#"Basic realm="basic-realm""#);
    assert_eq!((c[0].scheme.as_str(), c[0].param("realm")), ("basic", Some("basic-realm")));

    let c = parse_challenges(
        r#"Basic realm="a, \"b\"", Bearer realm=https://t/x , service=svc,error="insufficient_scope""#,
    );
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].param("realm"), Some(r#"a, "b""#));
    assert_eq!(c[1].scheme, "bearer");
    assert_eq!(c[1].param("realm"), Some("https://t/x"));
    assert_eq!(c[1].param("service"), Some("svc"));
    assert_eq!(c[1].param("error"), Some("insufficient_scope"));

    let c = parse_challenges("NEGOTIATE");
    assert_eq!(c, vec![Challenge { scheme: "negotiate".into(), params: BTreeMap::new() }]);
    for junk in ["", ",,,", "=", "\"", "Bearer realm=\"unterminated", "Basic abc==", "Bearer ,=,=\"", "é ü"] {
        let _ = parse_challenges(junk); // Must not panic or loop.
    }
    let unterminated = parse_challenges("Bearer realm=\"unterminated");
    assert_eq!(unterminated[0].param("realm"), Some("unterminated"));
}

fn entry(platform: &str, digest_byte: char) -> Descriptor {
    let mut p = Platform::parse(platform).unwrap();
    // Index entries spell arm64 with its variant, as Docker Hub's do.
    if p.architecture == "arm64" {
        p.variant = Some("v8".into());
    }
    Descriptor {
        media_type: manifest::OCI_MANIFEST.into(),
        digest: format!("sha256:{}", digest_byte.to_string().repeat(64)),
        size: 1,
        platform: Some(p),
        ..Descriptor::default()
    }
}

#[test]
fn platforms_parse_and_select() {
    assert_eq!(Platform::parse("linux/x86_64").unwrap().to_string(), "linux/amd64");
    assert_eq!(Platform::parse("linux/aarch64").unwrap().to_string(), "linux/arm64");
    assert_eq!(Platform::parse("linux/arm64/v8").unwrap().to_string(), "linux/arm64");
    assert_eq!(Platform::parse("Linux/ARM/v7").unwrap().to_string(), "linux/arm/v7");
    for bad in ["linux", "linux/", "/amd64", "linux/amd64/v3/x", "linux/am d64", ""] {
        let err = Platform::parse(bad).unwrap_err().to_string();
        assert!(err.contains("is not a valid platform"), "{bad}: {err}");
    }
    let host = Platform::host();
    assert!(!host.os.is_empty() && !host.architecture.is_empty());
    if cfg!(target_arch = "x86_64") {
        assert_eq!(host.to_string(), "linux/amd64");
    }

    let mut attestation = entry("unknown/unknown", 'f');
    attestation.platform.as_mut().unwrap().os = "unknown".into();
    let index = vec![
        entry("linux/amd64", '1'),
        entry("linux/arm/v6", '2'),
        entry("linux/arm/v7", '3'),
        entry("linux/arm64", '4'),
        entry("linux/s390x", '5'),
        attestation,
    ];
    let pick = |p: &str| select_platform(&index, &Platform::parse(p).unwrap()).map(|d| d.digest.as_bytes()[7]);
    assert_eq!(pick("linux/amd64"), Some(b'1'));
    assert_eq!(pick("linux/x86_64"), Some(b'1'));
    assert_eq!(pick("linux/arm64"), Some(b'4'));
    assert_eq!(pick("linux/arm64/v8"), Some(b'4'));
    assert_eq!(pick("linux/arm/v7"), Some(b'3'));
    assert_eq!(pick("linux/arm/v6"), Some(b'2'));
    assert_eq!(pick("linux/arm/v8"), Some(b'3'), "the newest older variant");
    assert_eq!(pick("linux/arm/v5"), None);
    assert_eq!(pick("linux/riscv64"), None);
    assert_eq!(pick("windows/amd64"), None);
    assert_eq!(platform::available(&index), "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/s390x");
}

#[test]
fn digests_validate_and_verify() {
    let d = Digest::sha256_of(b"hello");
    assert_eq!(d.as_str(), "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    assert_eq!(d.hex().len(), 64);
    assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
    for bad in [
        "",
        "sha256",
        "sha256:",
        "sha256:../../../../etc/passwd",
        "sha512:abcd",
        &format!("sha256:{}", HEX.to_uppercase()),
        &format!("sha256:{HEX}0"),
        &format!("sha256:{}", &HEX[1..]),
    ] {
        assert!(Digest::parse(bad).is_err(), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "blob", "hello");
    assert_eq!(digest_file(&p).unwrap(), (d.clone(), 5));
    assert!(digest::file_matches(&p, &d, 5).unwrap());
    assert!(!digest::file_matches(&p, &d, 6).unwrap(), "wrong size");
    assert!(!digest::file_matches(&p, &Digest::sha256_of(b"hellO"), 5).unwrap(), "wrong content");
    assert!(!digest::file_matches(&dir.path().join("none"), &d, 5).unwrap());
}

#[test]
fn manifests_classify() {
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
    assert_eq!(classify(m, None).unwrap(), (Kind::Manifest, manifest::OCI_MANIFEST.to_owned()));
    let no_type = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"y","size":1},"layers":[]}"#;
    assert_eq!(classify(no_type, Some(manifest::DOCKER_MANIFEST)).unwrap().1, manifest::DOCKER_MANIFEST);
    assert_eq!(classify(no_type, Some("application/json; charset=utf-8")).unwrap().1, manifest::OCI_MANIFEST);
    let index = br#"{"schemaVersion":2,"manifests":[]}"#;
    assert_eq!(classify(index, None).unwrap().0, Kind::Index);
    let v1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
    assert!(matches!(classify(v1, None), Err(Unusable::Unsupported(_))));
    assert!(matches!(classify(b"not json", None), Err(Unusable::Invalid(_))));
    assert!(matches!(classify(b"[1,2]", None), Err(Unusable::Invalid(_))));
    let wrong_version = br#"{"schemaVersion":3,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#;
    assert!(matches!(classify(wrong_version, None), Err(Unusable::Invalid(_))));
    // Negative or huge sizes are refused by the typed parse rather than wrapped.
    let negative = r#"{"schemaVersion":2,"config":{"digest":"d","size":-1},"layers":[]}"#;
    assert!(serde_json::from_str::<manifest::Manifest>(negative).is_err());
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let p = RetryPolicy {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(350),
        ..RetryPolicy::default()
    };
    let waits: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
    assert_eq!(waits, [100, 200, 350, 350, 350]);
    assert_eq!(p.backoff(200), Duration::from_millis(350));
}

#[test]
fn layout_index_replaces_entries_by_ref_name() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layout::Layout::create(dir.path()).unwrap();
    let named = |name: &str, byte: char| {
        let mut d = entry("linux/amd64", byte);
        d.annotations.insert(manifest::ANNOTATION_REF_NAME.into(), name.into());
        d
    };
    layout.add_to_index(&named("a", '1')).unwrap();
    layout.add_to_index(&named("b", '2')).unwrap();
    layout.add_to_index(&named("a", '3')).unwrap();
    let index = layout.read_index().unwrap().unwrap();
    let names: Vec<(String, u8)> = index
        .manifests
        .iter()
        .map(|m| (m.annotations[manifest::ANNOTATION_REF_NAME].clone(), m.digest.as_bytes()[7]))
        .collect();
    assert_eq!(names, [("b".to_owned(), b'2'), ("a".to_owned(), b'3')]);
    assert_eq!(layout.find_manifest(Some("a")).unwrap().digest.as_bytes()[7], b'3');
    assert!(layout.find_manifest(None).unwrap_err().to_string().contains("2 images"));
    assert_eq!(std::fs::read(dir.path().join("oci-layout")).unwrap(), br#"{"imageLayoutVersion":"1.0.0"}"#);
}

#[test]
fn whether_a_reference_names_its_registry() {
    for (input, names) in [
        ("alpine", false),
        ("alpine:3.20", false),
        ("library/alpine", false),
        ("docker://alpine", false),
        ("myimage@sha256:0123", false),
        ("localhost/x", true),
        ("docker.io/alpine", true),
        ("registry.example/os:1", true),
        ("host:5000/repo", true),
        ("docker://localhost:5000/a/b:c", true),
    ] {
        assert_eq!(Reference::names_registry(input), names, "{input}");
    }
}

/// A credential helper as docker-credential-helpers writes them: `get` reads the server from stdin. This one
/// knows `127.0.0.1:5000` and Docker Hub (by its legacy URL) and logs each question to `asked`.
fn fake_helper(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join(format!("docker-credential-{name}"));
    let asked = dir.join("asked");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> {asked}
case "$server" in
  127.0.0.1:5000) echo '{{"ServerURL":"127.0.0.1:5000","Username":"helped","Secret":"s3cret"}}' ;;
  https://index.docker.io/v1/) echo '{{"ServerURL":"x","Username":"hub","Secret":"hubpass"}}' ;;
  token.example) echo '{{"ServerURL":"token.example","Username":"<token>","Secret":"refresh"}}' ;;
  broken.example) echo 'not json' ;;
  failing.example) echo 'the keyring is locked' >&2; exit 1 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"#,
            asked = asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn credential_helpers_are_asked_as_docker_asks_them() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_helper(dir.path(), "claytest");
    // credHelpers for one registry beats credsStore, and either beats the file's own entries, as in docker.
    let config = write(
        dir.path(),
        "config.json",
        &format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}},"other:1":{{"auth":"{}"}}}},"credsStore":"claytest",
                "credHelpers":{{"gcr.example":"clay-absent"}}}}"#,
            b64("stale:entry"),
            b64("o:p")
        ),
    );
    let files = AuthFiles::new(vec![config.clone()]).with_helper_path(&bin);
    let c = files.lookup("127.0.0.1:5000", "clay/test").unwrap().credentials.unwrap();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("helped", "s3cret"));
    assert_eq!(
        c.origin_phrase(),
        format!("from `docker-credential-claytest` (the credential helper {} names)", config.display())
    );
    let hub = files.lookup("docker.io", "library/alpine").unwrap().credentials.unwrap();
    assert_eq!((hub.username.as_str(), hub.password.as_str()), ("hub", "hubpass"));
    // Nothing in the helper: the file's own entry still counts.
    let c = files.lookup("other:1", "x").unwrap().credentials.unwrap();
    assert_eq!((c.username.as_str(), c.origin.as_deref(), c.helper.as_deref()), ("o", Some(config.as_path()), None));
    let asked = std::fs::read_to_string(dir.path().join("asked")).unwrap();
    assert_eq!(asked, "127.0.0.1:5000\nhttps://index.docker.io/v1/\nother:1\n");
    // A registry whose helper is not installed, and one the helper has nothing for: anonymous, and said why.
    let found = files.lookup("gcr.example", "p/i").unwrap();
    assert!(found.credentials.is_none());
    assert!(found.helper.unwrap().ends_with("`docker-credential-clay-absent` is not installed (not on PATH)"));
    let found = files.lookup("nothing.example", "x").unwrap();
    assert!(found
        .helper
        .unwrap()
        .ends_with("names the credential helper `claytest`, but it has no credentials for nothing.example"));
    // The user `<token>` means the secret is an identity token, not a password.
    let c = files.lookup("token.example", "x").unwrap().credentials.unwrap();
    assert_eq!((c.password.as_str(), c.identity_token.as_deref()), ("", Some("refresh")));
    assert!(!format!("{c:?}").contains("refresh"), "{c:?}");
    // A helper that fails or answers nonsense is an error naming it.
    for (registry, reason) in [
        ("failing.example", "the credential helper `docker-credential-claytest` failed: the keyring is locked"),
        ("broken.example", "did not print credentials as JSON"),
    ] {
        let err = files.lookup(registry, "x").unwrap_err().to_string();
        assert!(err.contains(reason), "{registry}: {err}");
    }
    let none = write(
        dir.path(),
        "none.json",
        &format!(r#"{{"auths":{{"h:1":{{"auth":"{}"}}}},"credsStore":""}}"#, b64("u:p")),
    );
    let found = AuthFiles::new(vec![none]).with_helper_path(&bin).lookup("h:1", "x").unwrap();
    assert_eq!(found.credentials.map(|c| c.username).as_deref(), Some("u"));
    assert!(found.helper.is_none());
    let odd = write(dir.path(), "odd.json", r#"{"credsStore":"../../bin/sh"}"#);
    let err = AuthFiles::new(vec![odd]).lookup("x.example", "y").unwrap_err().to_string();
    assert!(err.contains("the credential helper name `../../bin/sh` is not a plain program name"), "{err}");
}
