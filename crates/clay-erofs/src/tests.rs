#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

mod reader;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use clay_testkit::trees::{
    add_long_paths, add_specials, clamped, file, host_file, meta, node, noise, sample_root, with_xattrs, T0,
};
use clay_testkit::{sh, sh_in};
use clay_tree::{Content, Inode, InodeId, Kind, Tree};

use super::*;
use reader::Reader;

const CLAMP: i64 = 1_750_000_000;
/// Entries of the large directory: enough for dozens of directory blocks.
const MANY: u32 = 5000;

/// A tree with every kind of object the format carries, and the shapes that stress it.
fn sample_tree(host_dir: &Path, many: u32) -> Tree {
    let mut t = sample_root();
    node(&mut t, "bin/dangling", meta(0o777, 5, 6, T0), Kind::Symlink(b"/nowhere/at/all".to_vec()));
    node(&mut t, "bin/longlink", meta(0o777, 0, 0, T0), Kind::Symlink("x/".repeat(1800).into_bytes()));
    add_specials(&mut t, 300_000);
    node(
        &mut t,
        "empty-dir",
        with_xattrs(meta(0o700, 1000, 1000, T0), &[("user.d", b"dir")]),
        Kind::Directory(BTreeMap::new()),
    );
    // Names that sort before `.` and `..`.
    for name in ["!bang", "+plus", "-dash", ".hidden", "~tilde"] {
        file(&mut t, &format!("order/{name}"), meta(0o644, 0, 0, T0), name.as_bytes().to_vec());
    }
    file(&mut t, "etc/empty", meta(0o600, 0, 0, T0), Vec::new());
    file(&mut t, "etc/gid", meta(0o2755, 0, 42, T0), b"setgid".to_vec());
    file(&mut t, "etc/future", meta(0o644, 1000, 100, CLAMP + 1_000_000), b"from the future".to_vec());
    file(&mut t, "etc/past", meta(0o644, 0, 0, -86_400), b"before 1970".to_vec());
    file(&mut t, "home/big/.profile", meta(0o644, 100_000, 70_000, T0 - 10), b"export A=1\n".to_vec());
    // Whole blocks only; several blocks and an inline tail; a tail too large to inline; one file from the host.
    file(&mut t, "var/exact", meta(0o644, 0, 0, T0), noise(2 * 4096, 2));
    file(&mut t, "var/tail4000", meta(0o644, 0, 0, T0), noise(4096 + 4000, 3));
    host_file(&mut t, "var/big", meta(0o644, 0, 0, T0), &host_dir.join("big"), &noise(300 * 1024 + 1000, 1));
    let mut sparse = vec![0u8; 3 * 4096 + 77];
    sparse[4096..4106].copy_from_slice(b"not a hole");
    file(&mut t, "var/sparse", meta(0o644, 0, 0, T0), sparse);
    for i in 0..many {
        let name = format!("many/f{i:05}{}", "x".repeat(i as usize % 40));
        file(&mut t, &name, meta(0o644, i % 7, i % 5, T0 + i64::from(i % 3)), noise((i as usize * 37) % 900, i.into()));
    }
    add_long_paths(&mut t, 60);
    t
}

fn opts() -> Options {
    Options { clamp_mtime: Some(CLAMP), uuid: *b"0123456789abcdef", volume_name: "clay".to_owned() }
}

fn write(tree: &Tree, opts: &Options) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    write_erofs(tree, opts, &mut out).unwrap();
    out.into_inner()
}

/// Compares two listings line by line, showing only the lines that differ.
fn assert_same_listing(got: &str, expected: &str) {
    let got_lines: std::collections::BTreeSet<&str> = got.lines().collect();
    let want_lines: std::collections::BTreeSet<&str> = expected.lines().collect();
    let extra: Vec<_> = got_lines.difference(&want_lines).take(20).collect();
    let missing: Vec<_> = want_lines.difference(&got_lines).take(20).collect();
    assert!(extra.is_empty() && missing.is_empty(), "unexpected: {extra:#?}\nmissing: {missing:#?}");
    assert_eq!(got, expected);
}

fn assert_same_content(expected: &Tree, got: &mut dyn FnMut(&str) -> Vec<u8>) {
    for e in expected.walk() {
        if let Kind::File(c) = &expected.inode(e.inode).kind {
            let name = String::from_utf8(e.path.clone()).unwrap();
            assert!(got(&name) == c.read_all(&name).unwrap(), "content of {name} differs");
        }
    }
}

#[test]
fn the_image_reads_back_as_the_tree() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path(), MANY);
    let img = write(&tree, &opts());
    let (back, infos) = Reader::new(&img).read();
    let expected = clamped(&tree, CLAMP);
    assert_same_listing(&back.dump(), &expected.dump());
    assert_same_content(&expected, &mut |p| match &back.inode(back.lookup(p.as_bytes()).unwrap().unwrap()).kind {
        Kind::File(c) => c.read_all(p).unwrap(),
        _ => panic!("{p} is not a file"),
    });
    assert_eq!(infos["."].nid, 36, "the root sits right after the superblock, as mkfs.erofs puts it");
    assert_eq!(infos["bin/prog"].nlink, 3);
    assert_eq!(infos["bin/prog2"].nid, infos["usr/bin/prog3"].nid);
    assert!(!infos["etc/future"].extended, "clamped to the build time: compact");
    for extended in ["home/big/.profile", "etc/past", "dev/fifo", "many/f00001x"] {
        assert!(infos[extended].extended, "{extended} needs an extended inode");
    }
    assert_eq!(infos["var/exact"].layout, 0);
    assert_eq!(infos["var/big"].layout, 2);
    assert_eq!(infos["bin/link"].layout, 2);
    assert_eq!(&img[1024 + 48..1024 + 80], b"0123456789abcdefclay\0\0\0\0\0\0\0\0\0\0\0\0");
}

/// Writes a tree to the host filesystem as it is, for mkfs.erofs (run as root: owners, devices, trusted.*).
fn materialize(tree: &Tree, root: &Path) {
    use std::os::unix::fs::{lchown, symlink, PermissionsExt};
    let mut first: BTreeMap<InodeId, std::path::PathBuf> = BTreeMap::new();
    let mut script = String::new();
    let entries = tree.walk();
    for e in &entries {
        let p = root.join(String::from_utf8(e.path.clone()).unwrap());
        let inode = tree.inode(e.inode);
        if let Some(target) = first.get(&e.inode) {
            std::fs::hard_link(target, &p).unwrap();
            continue;
        }
        first.insert(e.inode, p.clone());
        let q = p.display();
        match &inode.kind {
            Kind::Directory(_) if e.path.is_empty() => {}
            Kind::Directory(_) => std::fs::create_dir(&p).unwrap(),
            Kind::File(c) => std::fs::write(&p, c.read_all("").unwrap()).unwrap(),
            Kind::Symlink(t) => symlink(String::from_utf8(t.clone()).unwrap(), &p).unwrap(),
            Kind::CharDevice { major, minor } => script.push_str(&format!("mknod '{q}' c {major} {minor}\n")),
            Kind::BlockDevice { major, minor } => script.push_str(&format!("mknod '{q}' b {major} {minor}\n")),
            Kind::Fifo => script.push_str(&format!("mkfifo '{q}'\n")),
        }
    }
    sh(&script);
    let mut times = String::new();
    // Children before parents, so creating them does not change a directory's time afterwards.
    for e in entries.iter().rev() {
        let p = &first[&e.inode];
        let inode = tree.inode(e.inode);
        let m = &inode.meta;
        if !e.path.is_empty() && p != &root.join(String::from_utf8(e.path.clone()).unwrap()) {
            continue;
        }
        lchown(p, Some(m.uid), Some(m.gid)).unwrap();
        if !matches!(inode.kind, Kind::Symlink(_)) {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m.mode)).unwrap();
        }
        for (k, v) in &m.xattrs {
            let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
            times.push_str(&format!("setfattr -h -n '{}' -v 0x{hex} '{}'\n", String::from_utf8_lossy(k), p.display()));
        }
        times.push_str(&format!("touch -h -d @{} '{}'\n", m.mtime, p.display()));
    }
    sh(&times);
}

/// The test reader agrees with the reference writer: an image mkfs.erofs makes of the tree reads back as the tree.
#[test]
fn the_test_reader_reads_what_mkfs_erofs_writes() {
    let host = tempfile::tempdir().unwrap();
    let mut tree = sample_tree(host.path(), 300);
    // mkfs.erofs 1.5 fails ("Could not format the device") on a 255-byte name; ours is tested elsewhere.
    assert!(tree.remove(b"long").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    materialize(&tree, &src);
    sh_in(dir.path(), "mkfs.erofs -U00000000-0000-0000-0000-000000000000 -x1 ref.img src >/dev/null");
    let img = std::fs::read(dir.path().join("ref.img")).unwrap();
    let (back, infos) = Reader::new(&img).read();
    assert_same_listing(&back.dump(), &tree.dump());
    assert_eq!(infos["bin/prog"].nlink, 3);
}

/// fsck.erofs checks every inode, directory and xattr, and the superblock checksum; its extraction must give back
/// the tree (fsck.erofs 1.5 restores neither xattrs nor hard links: those are checked with dump.erofs and the test
/// reader).
#[test]
fn fsck_erofs_checks_and_extracts_the_tree() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path(), MANY);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("img"), write(&tree, &opts())).unwrap();
    sh_in(dir.path(), "fsck.erofs img && fsck.erofs --extract=out img");
    let back = clay_source::read_dir(&dir.path().join("out"), &mut |_| {}).unwrap();
    // What fsck.erofs 1.5 gives back: every name its own inode, no xattrs, files without setuid and setgid (it
    // chowns after chmod); the extraction directory's own metadata is not the image root's.
    let expected = clamped(&tree, CLAMP);
    let mut flat = Tree::new(back.inode(back.root()).meta.clone());
    for e in expected.walk().iter().skip(1) {
        let mut inode = expected.inode(e.inode).clone();
        inode.meta.xattrs.clear();
        if matches!(inode.kind, Kind::File(_)) {
            inode.meta.mode &= 0o1777;
        }
        if inode.kind.is_dir() {
            inode.kind = Kind::Directory(BTreeMap::new());
        }
        flat.insert(&e.path, inode, &meta(0, 0, 0, 0)).unwrap();
    }
    let strip = |t: &Tree| {
        let mut t = t.clone();
        for e in t.walk() {
            t.inode_mut(e.inode).meta.xattrs.clear();
        }
        t.dump()
    };
    assert_same_listing(&strip(&back), &strip(&flat));
    assert_same_content(&expected, &mut |p| std::fs::read(dir.path().join("out").join(p)).unwrap());

    let stat = |p: &str| sh_in(dir.path(), &format!("dump.erofs --path=/{p} img"));
    let nid = |s: &str| s.split_whitespace().skip_while(|w| *w != "NID:").nth(1).unwrap().to_owned();
    let prog = stat("bin/prog");
    assert!(prog.contains("Links: 3"), "{prog}");
    assert_eq!(nid(&prog), nid(&stat("usr/bin/prog3")));
    assert!(prog.contains("Xattr size: 356"), "{prog}");
    let sb = sh_in(dir.path(), "dump.erofs -s img");
    assert!(sb.contains("sb_csum") && sb.contains("root nid:                          36"), "{sb}");
}

#[test]
fn equal_trees_give_equal_bytes() {
    let host = tempfile::tempdir().unwrap();
    let a = write(&sample_tree(host.path(), 500), &opts());
    let b = write(&sample_tree(host.path(), 500), &opts());
    assert!(a == b, "two writes differ");
    // Written at an offset, the image is the same bytes.
    let mut out = Cursor::new(vec![0xAAu8; 3]);
    out.set_position(3);
    let stats = write_erofs(&sample_tree(host.path(), 500), &opts(), &mut out).unwrap();
    assert_eq!(out.position(), 3 + stats.total_bytes);
    assert!(out.get_ref()[3..] == a[..]);
    assert_eq!(stats.total_bytes, a.len() as u64);
}

/// Pinned: a change to these bytes is a format change and must be deliberate.
#[test]
fn a_small_image_has_a_pinned_digest() {
    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    file(&mut t, "hello", with_xattrs(meta(0o644, 0, 0, T0), &[("user.a", b"b")]), b"hello\n".to_vec());
    node(&mut t, "link", meta(0o777, 0, 0, T0), Kind::Symlink(b"hello".to_vec()));
    let img = write(&t, &Options { clamp_mtime: Some(T0), ..Options::default() });
    let digest = clay_testkit::pipe_text(&["sha256sum"], &img);
    assert_eq!(
        digest.split_whitespace().next().unwrap(),
        "1755e94a6eead44c8a9b40b0e61bc91327b5dae7029f010bbac7bed143b43779"
    );
}

#[test]
fn errors_name_the_problem() {
    let mut out = Cursor::new(Vec::new());
    let t = Tree::new(meta(0o755, 0, 0, T0));
    let long = Options { volume_name: "x".repeat(17), ..Options::default() };
    let e = write_erofs(&t, &long, &mut out).unwrap_err();
    assert!(e.to_string().contains("longer than the 16 bytes"), "{e}");

    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    node(&mut t, "dev/huge", meta(0o600, 0, 0, T0), Kind::BlockDevice { major: 4096, minor: 0 });
    let e = write_erofs(&t, &Options::default(), &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the device `dev/huge` has number 4096:0, beyond the 12-bit major and 20-bit minor EROFS stores"
    );

    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    file(&mut t, "x", with_xattrs(meta(0o644, 0, 0, T0), &[("user.v", &[0u8; 70_000])]), Vec::new());
    let e = write_erofs(&t, &Options::default(), &mut out).unwrap_err();
    assert!(e.to_string().contains("`user.v` of `x` is too large"), "{e}");

    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    file(&mut t, "x", with_xattrs(meta(0o644, 0, 0, T0), &[("weird.v", b"1")]), Vec::new());
    let stats = write_erofs(&t, &Options::default(), &mut out).unwrap();
    assert_eq!(stats.notes.len(), 1, "{:?}", stats.notes);

    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    let name = "n".repeat(256);
    if t.insert(name.as_bytes(), Inode { meta: meta(0o644, 0, 0, T0), kind: Kind::Fifo }, &meta(0o755, 0, 0, T0))
        .is_ok()
    {
        let e = write_erofs(&t, &Options::default(), &mut out).unwrap_err();
        assert!(e.to_string().contains("longer than the 255 bytes"), "{e}");
    }

    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    let gone = Content::Host { path: "/nonexistent/clay-erofs".into(), len: 5 };
    node(&mut t, "gone", meta(0o644, 0, 0, T0), Kind::File(gone));
    let e = write_erofs(&t, &Options::default(), &mut out).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/clay-erofs"), "{e}");
}
