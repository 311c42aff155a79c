use super::*;
use clay_testkit::sh_in;
use std::os::unix::fs::PermissionsExt;

/// A small root filesystem exercising everything a reader must keep. Needs root (mknod, chown, setcap), as CI has.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    sh_in(
        dir.path(),
        "mkdir -p root/bin root/dev root/tmp root/etc
         printf hello > root/bin/prog
         chmod 4755 root/bin/prog
         ln root/bin/prog root/bin/prog2
         ln -s prog root/bin/link
         mkfifo root/dev/fifo
         mknod root/dev/null c 1 3
         mknod root/dev/sda b 8 0
         chmod 1777 root/tmp
         printf x > root/etc/owned && chown 1000:100 root/etc/owned
         setfattr -n user.note -v hello root/etc/owned
         setcap cap_net_raw+ep root/bin/prog
         python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"root/tmp/sock\")'
         touch -h -d @1700000000 root/bin/link root/etc/owned root/bin/prog root/dev/* root/tmp/sock
         touch -d @1700000000 root/bin root/dev root/tmp root/etc root",
    );
    dir
}

const EXPECTED: &str = "\
. 40755 0:0 mtime=1700000000
bin 40755 0:0 mtime=1700000000
bin/link 120777 0:0 mtime=1700000000 -> prog
bin/prog 104755 0:0 mtime=1700000000 size=5 security.capability=0100000200200000000000000000000000000000
bin/prog2 104755 0:0 mtime=1700000000 link=bin/prog security.capability=0100000200200000000000000000000000000000
dev 40755 0:0 mtime=1700000000
dev/fifo 10644 0:0 mtime=1700000000
dev/null 20644 0:0 mtime=1700000000 1:3
dev/sda 60644 0:0 mtime=1700000000 8:0
etc 40755 0:0 mtime=1700000000
etc/owned 100644 1000:100 mtime=1700000000 size=1 user.note=68656c6c6f
tmp 41777 0:0 mtime=1700000000
";

#[test]
fn directory_keeps_modes_owners_links_devices_and_xattrs() {
    let dir = fixture();
    let mut warnings = Vec::new();
    let tree = read_dir(&dir.path().join("root"), &mut |w| warnings.push(w.0)).unwrap();
    assert_eq!(tree.dump(), EXPECTED);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("skipping socket `"), "{warnings:?}");
}

#[test]
fn tarballs_in_every_compression_read_like_the_directory() {
    let dir = fixture();
    for (name, flag) in [("r.tar", ""), ("r.tar.gz", "--gzip"), ("r.tar.zst", "--zstd"), ("r.tar.xz", "--xz")] {
        sh_in(dir.path(), &format!("tar --xattrs --xattrs-include='*' --numeric-owner {flag} -cf {name} -C root ."));
        let spec: SourceSpec = format!("tar:{}", dir.path().join(name).display()).parse().unwrap();
        let tree = read(&spec, &mut |_| {}).unwrap();
        assert_eq!(tree.dump(), EXPECTED, "reading {name}");
        let prog = tree.lookup(b"bin/prog").unwrap().unwrap();
        let clay_tree::Kind::File(c) = &tree.inode(prog).kind else { panic!() };
        assert_eq!(c.read_all("bin/prog").unwrap(), b"hello", "{name}");
    }
}

#[test]
fn hostile_tar_entries_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    // `..` in a name, and a path through a symlink: neither may reach the host, and both are named.
    sh_in(
        dir.path(),
        "python3 - <<'EOF'
import tarfile, io
def add(t, name, **kw):
    ti = tarfile.TarInfo(name); [setattr(ti, k, v) for k, v in kw.items()]; t.addfile(ti, io.BytesIO(b'x' * ti.size))
with tarfile.open('dotdot.tar', 'w') as t: add(t, '../escape', size=1)
with tarfile.open('through.tar', 'w') as t:
    add(t, 'etc', type=tarfile.SYMTYPE, linkname='/etc'); add(t, 'etc/passwd', size=1)
with tarfile.open('hardlink.tar', 'w') as t: add(t, 'x', type=tarfile.LNKTYPE, linkname='missing')
EOF",
    );
    let cases = [
        ("dotdot.tar", "entry `../escape`: path `../escape` contains `..`"),
        ("through.tar", "entry `etc/passwd`: `etc/passwd` goes through `etc`, which is not a directory"),
        ("hardlink.tar", "entry `x`: hard link `x` points to `missing`, which does not exist"),
    ];
    for (file, expected) in cases {
        let err = read_tar(&dir.path().join(file), &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains(expected), "{file}: {err}");
    }
}

#[test]
fn source_specs_parse_as_skopeo_spells_them() {
    assert_eq!("dir:/r".parse::<SourceSpec>().unwrap(), SourceSpec::Dir("/r".into()));
    assert_eq!("tar:r.tar.zst".parse::<SourceSpec>().unwrap(), SourceSpec::Tar("r.tar.zst".into()));
    assert_eq!("./no/such/dir".parse::<SourceSpec>().unwrap(), SourceSpec::Dir("./no/such/dir".into()));
    assert_eq!(
        "docker://alpine:3".parse::<SourceSpec>().unwrap(),
        SourceSpec::Registry { reference: "alpine:3".into() }
    );
    assert!(matches!("docker://".parse::<SourceSpec>(), Err(SourceError::Empty(_))));
    let err = "containers-storage:alpine".parse::<SourceSpec>().unwrap_err().to_string();
    assert_eq!(
        err,
        "`containers-storage:alpine`: the containers-storage: transport is not supported yet; use a directory or \
         tar:FILE"
    );
    assert!(matches!("tar:".parse::<SourceSpec>(), Err(SourceError::Empty(_))));
    assert!(matches!("oci::latest".parse::<SourceSpec>(), Err(SourceError::Empty(_))));
}

#[test]
fn image_specs_split_the_tag_where_the_path_exists() {
    let oci = |path: &str, tag: Option<&str>| SourceSpec::Oci { path: path.into(), tag: tag.map(Into::into) };
    let parse = |s: &str| s.parse::<SourceSpec>().unwrap();
    // Nothing exists: the last `:` starts the tag when a valid tag follows.
    assert_eq!(parse("oci:/no/such/img"), oci("/no/such/img", None));
    assert_eq!(parse("oci:/no/such/img:v1.2_3"), oci("/no/such/img", Some("v1.2_3")));
    assert_eq!(parse("oci:/no/such/a:b/c"), oci("/no/such/a:b/c", None));
    // A path with colons that exists is a path; a tag after it is split off even when it is no Docker tag.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("img:with:colons");
    std::fs::create_dir(&layout).unwrap();
    let l = layout.display();
    assert_eq!(parse(&format!("oci:{l}")), oci(&l.to_string(), None));
    assert_eq!(parse(&format!("oci:{l}:latest")), oci(&l.to_string(), Some("latest")));
    assert_eq!(parse(&format!("oci:{l}:localhost/name:tag")), oci(&l.to_string(), Some("localhost/name:tag")));
    let archive = dir.path().join("a:b.tar");
    std::fs::write(&archive, b"").unwrap();
    let a = archive.display();
    assert_eq!(
        parse(&format!("oci-archive:{a}:v2")),
        SourceSpec::OciArchive { path: archive.clone(), tag: Some("v2".into()) }
    );
    let docker = |path: &std::path::Path, image| SourceSpec::DockerArchive { path: path.to_owned(), image };
    assert_eq!(parse(&format!("docker-archive:{a}")), docker(&archive, None));
    assert_eq!(parse("oci:img:v1").describe(), "OCI image layout img (image v1)");

    // One image of a `docker save a b` archive: skopeo's `:REF` (any spelling of the reference) or `:@INDEX`.
    let reference = |r: &str| Some(ArchiveImage::Reference(r.into()));
    assert_eq!(parse(&format!("docker-archive:{a}:@1")), docker(&archive, Some(ArchiveImage::Index(1))));
    assert_eq!(parse(&format!("docker-archive:{a}:debian")), docker(&archive, reference("debian")));
    assert_eq!(
        parse(&format!("docker-archive:{a}:localhost:5000/x/y:v1")),
        docker(&archive, reference("localhost:5000/x/y:v1"))
    );
    // When nothing exists, the path ends at the first `:`, as skopeo reads it.
    assert_eq!(
        parse("docker-archive:/no/such.tar:b:2"),
        docker(std::path::Path::new("/no/such.tar"), reference("b:2"))
    );
    assert_eq!(parse("docker-archive:img.tar:@0").describe(), "docker archive img.tar, image @0");
    for (spec, reason) in [
        (format!("docker-archive:{a}:@x"), "`@x` is neither a position (@0, @1, ...) nor a reference"),
        (format!("docker-archive:{a}:@99999999999999999999999"), "is not a position in the archive"),
        (format!("docker-archive:{a}:Bad Name"), "whitespace"),
        (format!("docker-archive:{a}:"), "nothing follows the last `:`; name an image as `:REF` or `:@INDEX`"),
        (format!("docker-archive:{a}:b@sha256:{}", "0".repeat(64)), "names a digest; images in an archive are named"),
    ] {
        let err = spec.parse::<SourceSpec>().unwrap_err().to_string();
        assert!(err.starts_with(&format!("`{spec}`: ")) && err.contains(reason), "{spec}: {err}");
    }
}

#[test]
fn a_bad_platform_is_refused_for_any_source() {
    let dir = tempfile::tempdir().unwrap();
    let options = ReadOptions { platform: Some("amd64".into()), ..ReadOptions::default() };
    let err = read_with(&SourceSpec::Dir(dir.path().into()), &options, &mut |_| {}).unwrap_err().to_string();
    assert_eq!(
        err,
        "`amd64` is not a platform; write it as OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64 or linux/arm64/v8"
    );
}

#[test]
fn missing_and_wrong_sources_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert_eq!(
        read_dir(&missing, &mut |_| {}).unwrap_err().to_string(),
        format!("`{}` does not exist", missing.display())
    );
    let file = dir.path().join("f");
    std::fs::write(&file, b"not a tarball at all").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(read_dir(&file, &mut |_| {}).unwrap_err().to_string().ends_with("is not a directory"));
    assert!(read_tar(&file, &mut |_| {}).is_err());
    let err = read_tar(dir.path(), &mut |_| {}).unwrap_err().to_string();
    assert_eq!(err, format!("`{}` is a directory, not a tarball; pass it without `tar:`", dir.path().display()));
}
