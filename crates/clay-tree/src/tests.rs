use super::*;

fn meta(mode: u32) -> Metadata {
    Metadata::root_owned(mode, 0)
}

fn file(bytes: &[u8]) -> Inode {
    Inode { meta: meta(0o644), kind: Kind::File(Content::from_bytes(bytes.to_vec())) }
}

fn paths(tree: &Tree) -> Vec<String> {
    tree.walk().iter().map(|e| lossy(&e.path)).collect()
}

#[test]
fn walk_orders_full_paths_bytewise_with_parents_first() {
    let mut t = Tree::new(meta(0o755));
    for p in ["a/b", "a-c", "a/b/c", "b", "a.d"] {
        t.insert(p.as_bytes(), Inode::directory(meta(0o755)), &meta(0o755)).unwrap();
    }
    // `find | LC_ALL=C sort`: '-' (0x2d) and '.' (0x2e) sort before '/' (0x2f).
    assert_eq!(paths(&t), ["", "a", "a-c", "a.d", "a/b", "a/b/c", "b"]);
}

#[test]
fn insert_creates_parents_and_keeps_children_of_rewritten_directories() {
    let mut t = Tree::new(meta(0o755));
    t.insert(b"/etc/passwd", file(b"root"), &meta(0o700)).unwrap();
    let etc = t.lookup(b"etc").unwrap().unwrap();
    assert_eq!(t.inode(etc).meta.mode, 0o700);
    t.insert(b"./etc/", Inode::directory(meta(0o755)), &meta(0o700)).unwrap();
    assert_eq!(t.inode(etc).meta.mode, 0o755);
    assert!(t.lookup(b"etc/passwd").unwrap().is_some());
}

#[test]
fn non_directory_replaces_directory_whole() {
    let mut t = Tree::new(meta(0o755));
    t.insert(b"x/y", file(b"1"), &meta(0o755)).unwrap();
    t.insert(b"x", file(b"2"), &meta(0o755)).unwrap();
    assert_eq!(paths(&t), ["", "x"]);
}

#[test]
fn paths_through_symlinks_are_refused_not_followed() {
    let mut t = Tree::new(meta(0o755));
    t.insert(b"evil", Inode { meta: meta(0o777), kind: Kind::Symlink(b"/etc".to_vec()) }, &meta(0o755)).unwrap();
    let err = t.insert(b"evil/passwd", file(b"x"), &meta(0o755)).unwrap_err();
    assert_eq!(err.to_string(), "`evil/passwd` goes through `evil`, which is not a directory");
    assert_eq!(t.lookup(b"evil/passwd").unwrap(), None);
}

#[test]
fn dotdot_is_refused_and_absolute_names_stay_inside() {
    assert!(matches!(components(b"a/../../etc"), Err(PathError::DotDot(_))));
    assert_eq!(components(b"//a/./b/").unwrap(), [b"a".as_slice(), b"b"]);
    let mut t = Tree::new(meta(0o755));
    assert!(t.insert(b"../x", file(b""), &meta(0o755)).is_err());
}

#[test]
fn hard_links_share_one_inode_and_count_names() {
    let mut t = Tree::new(meta(0o755));
    let a = t.insert(b"bin/a", file(b"data"), &meta(0o755)).unwrap();
    let b = t.link(b"sbin/b", b"bin/a", &meta(0o755)).unwrap();
    assert_eq!(a, b);
    let entries = t.walk();
    let counts = t.link_counts(&entries);
    assert_eq!(counts[&a], 2);
    assert_eq!(counts[&t.root()], 4, "root: . and .. plus bin/.. and sbin/..");
    assert!(matches!(t.link(b"c", b"missing", &meta(0o755)), Err(TreeError::LinkTargetMissing { .. })));
    assert!(matches!(t.link(b"c", b"bin", &meta(0o755)), Err(TreeError::LinkToDirectory { .. })));
}

#[test]
fn remove_drops_subtrees() {
    let mut t = Tree::new(meta(0o755));
    t.insert(b"a/b/c", file(b""), &meta(0o755)).unwrap();
    assert!(t.remove(b"a/b").unwrap());
    assert!(!t.remove(b"a/b").unwrap());
    assert_eq!(paths(&t), ["", "a"]);
}

#[test]
fn host_content_that_changed_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"hello").unwrap();
    let c = Content::Host { path: path.clone(), len: 5 };
    assert_eq!(c.read_all("f").unwrap(), b"hello");
    std::fs::write(&path, b"hello world").unwrap();
    let mut out = Vec::new();
    assert!(matches!(c.copy_to("f", &mut out), Err(ContentError::Changed { expected: 5, .. })));
    assert!(out.len() <= 5, "never writes past the promised size");
    std::fs::write(&path, b"hi").unwrap();
    assert!(matches!(c.read_all("f"), Err(ContentError::Changed { found: 2, .. })));
}

#[test]
fn host_content_does_not_follow_a_swapped_in_symlink() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink("secret", dir.path().join("f")).unwrap();
    let c = Content::Host { path: dir.path().join("f"), len: 1 };
    assert!(matches!(c.read_all("f"), Err(ContentError::Read { .. })));
}

#[test]
fn range_content_reads_its_slice() {
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, b"0123456789").unwrap();
    let c = Content::Range { file: std::sync::Arc::new(f), offset: 3, len: 4 };
    assert_eq!(c.read_all("r").unwrap(), b"3456");
}

#[test]
fn concatenated_content_reads_its_parts_in_turn_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"host").unwrap();
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, b"0123456789").unwrap();
    let parts = vec![
        Content::from_bytes(&b"head:"[..]),
        Content::Range { file: std::sync::Arc::new(f), offset: 3, len: 4 },
        Content::from_bytes(&b""[..]),
        Content::Host { path: path.clone(), len: 4 },
    ];
    let c = Content::concat(parts);
    assert_eq!(c.len(), 13);
    assert_eq!(c.read_all("c").unwrap(), b"head:3456host");
    // Pulled through small reads, as tar and FAT writers do.
    let mut pulled = Vec::new();
    let mut reader = c.reader("c").unwrap();
    let mut buf = [0u8; 3];
    loop {
        match std::io::Read::read(&mut reader, &mut buf).unwrap() {
            0 => break,
            n => pulled.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(pulled, b"head:3456host");
    // A part that shrank is an error, as for the part alone.
    std::fs::write(&path, b"ho").unwrap();
    assert!(matches!(c.read_all("c"), Err(ContentError::Changed { .. })));
    let mut out = Vec::new();
    assert!(std::io::Read::read_to_end(&mut c.reader("c").unwrap(), &mut out).is_err());
    // One part is just that part.
    assert!(matches!(Content::concat(vec![Content::from_bytes(&b"x"[..])]), Content::Bytes(_)));
}

#[test]
fn resolve_follows_symlinks_inside_the_tree_only() {
    let mut t = Tree::new(meta(0o755));
    let release = t.insert(b"usr/lib/os-release", file(b"ID=x"), &meta(0o755)).unwrap();
    let link = |target: &[u8]| Inode { meta: meta(0o777), kind: Kind::Symlink(target.to_vec()) };
    t.insert(b"etc/os-release", link(b"../usr/lib/os-release"), &meta(0o755)).unwrap();
    t.insert(b"lib", link(b"usr/lib"), &meta(0o755)).unwrap();
    t.insert(b"etc/abs", link(b"/../../lib/os-release"), &meta(0o755)).unwrap();
    t.insert(b"loop", link(b"loop"), &meta(0o755)).unwrap();
    assert_eq!(t.resolve(b"/etc/os-release"), Some(release));
    assert_eq!(t.resolve(b"lib/os-release"), Some(release));
    assert_eq!(t.resolve(b"etc/abs"), Some(release), "`..` above the root stays at the root");
    assert_eq!(t.resolve(b"loop"), None);
    assert_eq!(t.resolve(b"etc/missing"), None);
}

#[test]
fn exact_reader_yields_len_bytes_or_fails() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"hello world").unwrap();
    let mut out = Vec::new();
    Content::Host { path: path.clone(), len: 5 }.reader("f").unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, b"hello", "a grown file is cut at the promised size");
    let err = Content::Host { path, len: 20 }.reader("f").unwrap().read_to_end(&mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("changed while being read"), "{err}");
}
