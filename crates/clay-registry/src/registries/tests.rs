//! registries.conf: choosing tables, moving and mirroring pulls, checking files, and podman's file order.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::*;

fn conf(text: &str) -> RegistriesConf {
    RegistriesConf::parse(text, Path::new("/etc/containers/registries.conf"), false).unwrap()
}

fn refused(text: &str) -> String {
    RegistriesConf::parse(text, Path::new("/r.conf"), false).unwrap_err().to_string()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Where a pull of `image` goes: the mirrors' references, then the primary's.
fn places(conf: &RegistriesConf, image: &str) -> Vec<String> {
    let sources = conf.pull_sources(&reference(image)).unwrap();
    sources.mirrors.iter().chain([&sources.primary]).map(|s| s.reference.to_string()).collect()
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn the_longest_matching_prefix_chooses_the_table() {
    let c = conf(
        r#"
        unqualified-search-registries = ["example.com"]
        [aliases]
        "alpine" = "docker.io/library/alpine"

        [[registry]]
        location = "example.com"
        [[registry]]
        prefix = "example.com/foo"
        location = "inside.example.net/foo"
        [[registry]]
        prefix = "*.corp.example"
        insecure = true
        "#,
    );
    let prefix = |name: &str| c.table_for(name).map(|t| t.prefix.clone());
    assert_eq!(prefix("example.com/foo/app").as_deref(), Some("example.com/foo"));
    assert_eq!(prefix("example.com/foo").as_deref(), Some("example.com/foo"));
    // A prefix ends where a name's component does.
    assert_eq!(prefix("example.com/foobar/app").as_deref(), Some("example.com"));
    assert_eq!(prefix("example.com.evil/app"), None);
    assert_eq!(prefix("a.b.corp.example/app").as_deref(), Some("*.corp.example"));
    assert_eq!(prefix("a.corp.example:5000/app").as_deref(), Some("*.corp.example"));
    assert_eq!(prefix("corp.example/app"), None);
    assert_eq!(prefix("a.corp.example.evil/app"), None);
    assert_eq!(prefix("x.io/a.corp.example/app"), None);
    assert!(c.insecure("registry.corp.example"));
    assert!(!c.insecure("example.com"));
    assert!(!c.insecure("elsewhere.io"));
}

#[test]
fn pulls_try_the_mirrors_that_serve_them_then_the_location() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "example.com/foo"
        location = "inside.example.net/bar"
        [[registry.mirror]]
        location = "mirror-0.local/mirror-for-foo"
        insecure = true
        [[registry.mirror]]
        location = "mirror-1.local:5000/by-digest"
        pull-from-mirror = "digest-only"
        [[registry.mirror]]
        location = "mirror-2.local/by-tag/"
        pull-from-mirror = "tag-only"

        [[registry]]
        prefix = "pinned.io"
        location = "pinned.io"
        mirror-by-digest-only = true
        [[registry.mirror]]
        location = "cache.local"
        "#,
    );
    assert_eq!(
        places(&c, "example.com/foo/image"),
        [
            "mirror-0.local/mirror-for-foo/image:latest",
            "mirror-2.local/by-tag/image:latest",
            "inside.example.net/bar/image:latest"
        ]
    );
    assert_eq!(
        places(&c, &format!("example.com/foo/image@{DIGEST}")),
        [
            format!("mirror-0.local/mirror-for-foo/image@{DIGEST}"),
            format!("mirror-1.local:5000/by-digest/image@{DIGEST}"),
            format!("inside.example.net/bar/image@{DIGEST}"),
        ]
    );
    let sources = c.pull_sources(&reference("example.com/foo/image:1")).unwrap();
    assert!(sources.mirrors[0].insecure && !sources.mirrors[1].insecure && !sources.primary.insecure);
    assert_eq!(places(&c, "pinned.io/app:1"), ["pinned.io/app:1"]);
    assert_eq!(
        places(&c, &format!("pinned.io/app@{DIGEST}")),
        [format!("cache.local/app@{DIGEST}"), format!("pinned.io/app@{DIGEST}")]
    );
    // An image no table names is pulled from where its name says.
    assert_eq!(places(&c, "quay.io/app:2"), ["quay.io/app:2"]);
}

#[test]
fn docker_hub_images_are_matched_by_their_full_name() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "docker.io/library"
        location = "hub-mirror.local:5000/library"
        [[registry]]
        prefix = "*.example.org"
        insecure = true
        "#,
    );
    assert_eq!(places(&c, "alpine"), ["hub-mirror.local:5000/library/alpine:latest"]);
    assert_eq!(places(&c, "docker.io/library/debian:12"), ["hub-mirror.local:5000/library/debian:12"]);
    assert_eq!(places(&c, "someone/tool"), ["docker.io/someone/tool:latest"]);
    // A wildcard table leaves the image where it is, but what it says holds.
    let sources = c.pull_sources(&reference("r.example.org/app:1")).unwrap();
    assert_eq!(sources.primary, PullSource { reference: reference("r.example.org/app:1"), insecure: true });
}

#[test]
fn a_blocked_prefix_refuses_the_pull_and_names_the_file() {
    let c = conf(
        r#"
        [[registry]]
        location = "untrusted.io"
        blocked = true
        [[registry]]
        prefix = "untrusted.io/vetted"
        location = "untrusted.io/vetted"
        "#,
    );
    let err = c.pull_sources(&reference("untrusted.io/app:1")).unwrap_err().to_string();
    assert_eq!(err, "pulling untrusted.io/app:1 is blocked: /etc/containers/registries.conf blocks `untrusted.io`");
    assert!(c.pull_sources(&reference("untrusted.io/vetted/app:1")).is_ok());
}

#[test]
fn version_1_lists_become_tables() {
    let c = conf(
        r#"
        [registries.search]
        registries = ["docker.io"]
        [registries.insecure]
        registries = ["localhost:5000", "both.io"]
        [registries.block]
        registries = ["both.io", "bad.io"]
        "#,
    );
    assert!(c.insecure("localhost:5000") && c.insecure("both.io") && !c.insecure("bad.io"));
    for blocked in ["bad.io/x", "both.io/x"] {
        assert!(matches!(c.pull_sources(&reference(blocked)), Err(RegistryError::Blocked { .. })), "{blocked}");
    }
    assert_eq!(places(&c, "localhost:5000/x"), ["localhost:5000/x:latest"]);
}

#[test]
fn unusable_files_are_refused_with_the_reason() {
    let cases = [
        ("[[registry]]\nlocation = \"https://example.com\"\n", "has a URL scheme; write it without one"),
        ("[[registry]]\ninsecure = true\n", "has neither `prefix` nor `location`"),
        ("[[registry]]\nprefix = \"example.com/a\"\n", "the table for `example.com/a` has no `location`"),
        ("[[registry]]\nprefix = \"*.example.com:5000\"\n", "must be `*.DOMAIN`, with no port or path"),
        (
            "[[registry]]\nlocation = \"a.io\"\npull-from-mirror = \"all\"\n",
            "`pull-from-mirror` belongs in a [[registry.mirror]] table",
        ),
        ("[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\ninsecure = true\n", "a mirror of `a.io` has no `location`"),
        (
            "[[registry]]\nlocation = \"a.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"some\"\n",
            "it must be `all`, `digest-only` or `tag-only`",
        ),
        (
            "[[registry]]\nlocation = \"a.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.io\"\n\
             pull-from-mirror = \"tag-only\"\n",
            "sets both `mirror-by-digest-only` and its mirror `m.io`'s `pull-from-mirror`",
        ),
        (
            "[[registry]]\nprefix = \"a.io/x\"\nlocation = \"r.io\"\n[[registry]]\nprefix = \"a.io/y\"\nlocation = \
             \"r.io\"\ninsecure = true\n",
            "the registry `r.io` is in several tables with different `insecure` settings",
        ),
        (
            "unqualified-search-registries = [\"a.io\"]\n[registries.block]\nregistries = [\"b.io\"]\n",
            "it mixes version 1",
        ),
        ("[[registry]]\nlocation = \"a.io\"\n\ninsecure = yes\n", "line 4: "),
        ("[[registry]]\nlocation = [\"a.io\"]\n", "line 2: "),
    ];
    for (text, reason) in cases {
        let err = refused(text);
        assert!(err.starts_with("the registries configuration /r.conf is unusable: "), "{err}");
        assert!(err.contains(reason), "{text:?}: {err}");
        assert!(!err.contains('\n'), "{text:?}: {err}");
    }
    let drop_in = RegistriesConf::parse("[registries.block]\nregistries = [\"b.io\"]\n", Path::new("/d.conf"), true);
    assert!(drop_in.unwrap_err().to_string().contains("a drop-in must use version 2"));
    // Of two tables with one prefix, the first counts.
    let c = conf(
        "[[registry]]\nlocation = \"a.io\"\n[[registry]]\nlocation = \"a.io/\"\nblocked = false\nprefix = \"a.io\"\n",
    );
    assert_eq!(c.table_for("a.io").unwrap().location, "a.io");
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_owned()
}

fn table(location: &str, insecure: bool) -> String {
    format!("[[registry]]\nlocation = \"{location}\"\ninsecure = {insecure}\n")
}

#[test]
fn files_are_read_in_podmans_order() {
    let t = tempfile::tempdir().unwrap();
    let (system_file, system_dir) = (t.path().join("etc/registries.conf"), t.path().join("etc/registries.conf.d"));
    let home = t.path().join("home");
    let load = |explicit: Option<&Path>| {
        RegistriesConf::load(explicit, Some(&home), &system_file, &system_dir).map(|c| c.files().to_vec())
    };
    // Nothing there: nothing read.
    assert_eq!(load(None).unwrap(), Vec::<PathBuf>::new());
    let system = write(&system_file, &(table("a.io", true) + &table("b.io", false)));
    let drop_1 = write(&system_dir.join("10-b.conf"), &table("b.io", true));
    let drop_2 = write(&system_dir.join("20-a.conf"), &table("a.io", false));
    write(&system_dir.join("30-skipped.conf.orig"), "not toml");
    std::fs::create_dir_all(system_dir.join("40-dir.conf")).unwrap();
    let user_drop = write(&home.join(".config/containers/registries.conf.d/50-c.conf"), &table("c.io", true));
    assert_eq!(load(None).unwrap(), [system.clone(), drop_1.clone(), drop_2.clone(), user_drop.clone()]);
    // Later files replace the tables of the prefixes they name.
    let c = RegistriesConf::load(None, Some(&home), &system_file, &system_dir).unwrap();
    assert!(!c.insecure("a.io") && c.insecure("b.io") && c.insecure("c.io"));
    // A file named explicitly replaces the main file only.
    let explicit = write(&t.path().join("mine.conf"), &table("d.io", true));
    assert_eq!(load(Some(&explicit)).unwrap(), [explicit.clone(), drop_1.clone(), drop_2.clone(), user_drop.clone()]);
    let missing = t.path().join("missing.conf");
    let err = load(Some(&missing)).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("the registries configuration {} is unusable: reading it failed", missing.display())),
        "{err}"
    );
    // The user's own file replaces the system's, drop-ins included.
    let user = write(&home.join(".config/containers/registries.conf"), &table("e.io", true));
    assert_eq!(load(None).unwrap(), [user.clone(), user_drop.clone()]);
    // A broken drop-in is named.
    write(&home.join(".config/containers/registries.conf.d/60-bad.conf"), "[[registry]\n");
    let err = load(None).unwrap_err().to_string();
    assert!(err.contains("60-bad.conf is unusable: line 1: "), "{err}");
}

#[test]
fn the_variable_names_the_file_and_the_option_comes_first() {
    let t = tempfile::tempdir().unwrap();
    let by_var = write(&t.path().join("var.conf"), &table("v.io", true));
    let by_option = write(&t.path().join("option.conf"), &table("o.io", true));
    let home = t.path().join("home");
    let vars = |name: &str| match name {
        "CONTAINERS_REGISTRIES_CONF" => Some(by_var.clone().into_os_string()),
        "HOME" => Some(home.clone().into_os_string()),
        _ => None,
    };
    let c = RegistriesConf::from_vars(None, vars).unwrap();
    assert_eq!(c.files().first(), Some(&by_var));
    assert!(c.insecure("v.io"));
    let c = RegistriesConf::from_vars(Some(&by_option), vars).unwrap();
    assert_eq!(c.files().first(), Some(&by_option));
    assert!(c.insecure("o.io") && !c.insecure("v.io"));
}
