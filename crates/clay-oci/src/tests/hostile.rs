//! The hostile corpus (DESIGN.md §3, "Known bug classes"): each layer is refused with one sentence naming the
//! image, the layer and the entry, and nothing appears on the host.

use super::*;

/// Reads an image whose last layer is `hostile` (over a harmless base) and returns the error, after checking that
/// the read wrote nothing into the test's directory.
fn refused(lower: Option<Vec<u8>>, hostile: Vec<u8>) -> (String, String, String) {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("image");
    let base = Tar::default().dir("etc").file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n").dir("data").finish();
    let mut blobs = Blobs::default();
    let mut layers = vec![(base, Comp::Plain)];
    layers.extend(lower.map(|l| (l, Comp::Gzip)));
    layers.push((hostile.clone(), Comp::Plain));
    let image = blobs.image(&layers, "linux/amd64");
    blobs.write_layout(&layout, vec![image]);
    let before = listing(work.path());
    let result = read_layout(&layout, None, &opts(None), &mut |_| {});
    assert_eq!(listing(work.path()), before, "reading wrote something on the host");
    let err = result.expect_err("the hostile layer must be refused").to_string();
    (err, format!("oci:{}", layout.display()), sha256(&hostile))
}

fn assert_refused(hostile: Vec<u8>, entry: &str, reason: &str) {
    assert_refused_over(None, hostile, entry, reason)
}

fn assert_refused_over(lower: Option<Vec<u8>>, hostile: Vec<u8>, entry: &str, reason: &str) {
    let (err, image, layer) = refused(lower, hostile);
    let prefix = format!("image `{image}`, layer `{layer}`: entry `{entry}`: ");
    assert!(err.starts_with(&prefix), "expected `{prefix}…`, got: {err}");
    assert!(err.contains(reason), "expected `{reason}` in: {err}");
    assert!(!err.contains('\n'), "one sentence: {err}");
}

#[test]
fn dotdot_names_are_refused() {
    let dotdot = "contains `..`, which could reach outside the root";
    assert_refused(Tar::default().file("../escape", b"x").finish(), "../escape", dotdot);
    assert_refused(Tar::default().file("data/../../escape", b"x").finish(), "data/../../escape", dotdot);
    assert_refused(Tar::default().file("/../escape", b"x").finish(), "/../escape", dotdot);
    assert_refused(Tar::default().symlink("ok", "x").hardlink("l", "../../etc/shadow").finish(), "l", dotdot);
}

#[test]
fn absolute_and_dot_slash_names_stay_inside_the_root() {
    let layer = Tar::default().file("/abs/file", b"a").file("./dot/file", b"d").file("//double//slash", b"s").finish();
    let image = read_layers(&[(layer, Comp::Plain)]).unwrap();
    assert_eq!(content(&image, "abs/file"), b"a");
    assert_eq!(content(&image, "dot/file"), b"d");
    assert_eq!(content(&image, "double/slash"), b"s");
}

#[test]
fn paths_through_symlinks_are_refused() {
    let through = "goes through the symlink `etc`; layers are never merged through symlinks";
    // In the same layer (the tar-crate CVE-2026-33056 shape) ...
    assert_refused(Tar::default().symlink("etc", "/tmp").file("etc/passwd", b"x").finish(), "etc/passwd", through);
    // ... and over a symlink of a lower layer, for files and hard links alike.
    let lower = || Some(Tar::default().symlink("lib", "/usr/lib").finish());
    let through = "goes through the symlink `lib`; layers are never merged through symlinks";
    assert_refused_over(lower(), Tar::default().file("lib/x/libc.so", b"x").finish(), "lib/x/libc.so", through);
    assert_refused_over(lower(), Tar::default().hardlink("lib/passwd", "etc/passwd").finish(), "lib/passwd", through);
}

#[test]
fn hard_links_to_missing_whited_out_or_directory_targets_are_refused() {
    assert_refused(Tar::default().hardlink("x", "missing").finish(), "x", "points to `missing`, which does not exist");
    assert_refused(
        Tar::default().file("etc/.wh.passwd", b"").hardlink("copy", "etc/passwd").finish(),
        "copy",
        "points to `etc/passwd`, which a whiteout deleted",
    );
    assert_refused(
        Tar::default().file(".wh.etc", b"").hardlink("copy", "/etc/passwd").finish(),
        "copy",
        "points to `etc/passwd`, which a whiteout deleted",
    );
    assert_refused(
        Tar::default().hardlink("d", "data").finish(),
        "d",
        "points to the directory `data`; directories cannot be hard-linked",
    );
    // A hard link may not reach through a symlink either: the target is looked up without following it.
    assert_refused(
        Tar::default().symlink("s", "etc").hardlink("copy", "s/passwd").finish(),
        "copy",
        "points to `s/passwd`, which does not exist",
    );
}

#[test]
fn pax_and_ustar_sizes_that_disagree_are_refused() {
    // TARmageddon: the header says 0 bytes, PAX says 512; a reader honouring the header would take the data for
    // the next header (here, a file named `smuggled`).
    let mut smuggled = Tar::default();
    smuggled.file("smuggled", b"evil");
    let inner = smuggled.0.clone();
    let layer = Tar::default()
        .pax(&[("size", inner.len().to_string().as_bytes())])
        .raw("innocent", EntryType::Regular, b"", |_| {})
        .finish();
    // Append the smuggled bytes where the PAX size says the data of `innocent` is.
    let mut bytes = layer[..layer.len() - 1024].to_vec();
    bytes.extend_from_slice(&inner);
    bytes.extend_from_slice(&[0u8; 1024]);
    assert_refused(bytes, "innocent", "its PAX size (1024) and its header size (0) disagree");
    // The same disagreement the other way round.
    let layer = Tar::default().pax(&[("size", b"1")]).file("f", &[b'x'; 600]).finish();
    assert_refused(layer, "f", "its PAX size (1) and its header size (600) disagree");
}

#[test]
fn malformed_whiteouts_are_refused() {
    assert_refused(Tar::default().file("etc/.wh.", b"").finish(), "etc/.wh.", "`.wh.` is a whiteout of no valid name");
    assert_refused(Tar::default().file(".wh..", b"").finish(), ".wh..", "whiteout of no valid name");
    assert_refused(Tar::default().file("etc/.wh...", b"").finish(), "etc/.wh...", "whiteout of no valid name");
}

#[test]
fn the_root_cannot_become_a_file() {
    assert_refused(Tar::default().file("./", b"x").finish(), "./", "the root directory cannot be replaced");
}
