//! Building [`Tree`]s for the format crates' tests: metadata, deterministic file contents, and inserts that make
//! the missing parent directories. Tests pin hashes of images built from these trees: what these helpers produce
//! must not change.

use std::collections::BTreeMap;
use std::path::Path;

use clay_tree::{Content, Inode, Kind, Metadata, Tree};

/// The time the test trees are stamped with, and the time of the parent directories [`node`] and [`file`] make.
pub const T0: i64 = 1_700_000_000;
/// `security.capability` for `cap_net_raw+ep`: VFS_CAP_REVISION_2 with the effective flag, permitted bit 13.
pub const CAP_NET_RAW_EP: [u8; 20] = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Metadata without extended attributes.
pub fn meta(mode: u32, uid: u32, gid: u32, mtime: i64) -> Metadata {
    Metadata { mode, uid, gid, mtime, xattrs: BTreeMap::new() }
}

/// The metadata of the parent directories [`node`] and [`file`] make: `0755`, owned by root, time [`T0`]. Pass it
/// to [`Tree::link`] for the same parents.
pub fn dir_meta() -> Metadata {
    meta(0o755, 0, 0, T0)
}

/// `m` with the extended attributes `xattrs` (name, value) added.
pub fn with_xattrs(mut m: Metadata, xattrs: &[(&str, &[u8])]) -> Metadata {
    for (k, v) in xattrs {
        m.xattrs.insert(k.as_bytes().to_vec(), v.to_vec());
    }
    m
}

/// `len` deterministic bytes that neither repeat nor compress much: a xorshift stream started from `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24).to_le_bytes()[0]
        })
        .collect()
}

/// Inserts an object of any kind at `path`, making missing parent directories with [`dir_meta`]; fails the test
/// if the tree refuses it.
pub fn node(tree: &mut Tree, path: &str, m: Metadata, kind: Kind) {
    tree.insert(path.as_bytes(), Inode { meta: m, kind }, &dir_meta()).unwrap();
}

/// Inserts a regular file holding `bytes` at `path`, as [`node`] does.
pub fn file(tree: &mut Tree, path: &str, m: Metadata, bytes: Vec<u8>) {
    node(tree, path, m, Kind::File(Content::from_bytes(bytes)));
}

/// Inserts a regular file whose bytes live on the host: writes `bytes` to `host_path` and inserts `path` as
/// [`Content::Host`] pointing there, as [`node`] does.
pub fn host_file(tree: &mut Tree, path: &str, m: Metadata, host_path: &Path, bytes: &[u8]) {
    std::fs::write(host_path, bytes).unwrap();
    let host = Content::Host { path: host_path.to_owned(), len: bytes.len() as u64 };
    node(tree, path, m, Kind::File(host));
}

/// The start of the format crates' sample trees: a root (time [`T0`], like everything here) with the extended
/// attribute `trusted.root`; `bin/prog`, a setuid script with the file capability [`CAP_NET_RAW_EP`] and a
/// 300-byte `user.big`; its hard links `bin/prog2` and `usr/bin/prog3`; and `bin/link`, a symlink to it with
/// `trusted.l`.
pub fn sample_root() -> Tree {
    let mut t = Tree::new(with_xattrs(meta(0o755, 0, 0, T0), &[("trusted.root", b"r")]));
    file(
        &mut t,
        "bin/prog",
        with_xattrs(meta(0o4755, 0, 0, T0), &[("security.capability", &CAP_NET_RAW_EP), ("user.big", &[7u8; 300])]),
        b"#!/bin/sh\necho hello\n".to_vec(),
    );
    t.link(b"bin/prog2", b"bin/prog", &dir_meta()).unwrap();
    t.link(b"usr/bin/prog3", b"bin/prog", &dir_meta()).unwrap();
    node(&mut t, "bin/link", with_xattrs(meta(0o777, 0, 0, T0), &[("trusted.l", b"x")]), Kind::Symlink(b"prog".into()));
    t
}

/// Adds the sample trees' special files and directories: the character device `dev/null` (1:3); the block devices
/// `dev/sda` (8:0), `dev/big` (4095:1048575, the largest numbers) and `dev/nvme` (259:`nvme_minor`); the fifo
/// `dev/fifo`; the sticky `tmp` and the setgid `srv/shared`.
pub fn add_specials(t: &mut Tree, nvme_minor: u32) {
    node(t, "dev/null", meta(0o666, 0, 0, T0), Kind::CharDevice { major: 1, minor: 3 });
    node(t, "dev/sda", meta(0o660, 0, 6, T0), Kind::BlockDevice { major: 8, minor: 0 });
    node(t, "dev/big", meta(0o600, 0, 0, T0), Kind::BlockDevice { major: 4095, minor: 1_048_575 });
    node(t, "dev/nvme", meta(0o600, 0, 0, T0), Kind::BlockDevice { major: 259, minor: nvme_minor });
    node(t, "dev/fifo", meta(0o644, 0, 0, T0 + 5), Kind::Fifo);
    node(t, "tmp", meta(0o1777, 0, 0, T0), Kind::Directory(BTreeMap::new()));
    node(t, "srv/shared", meta(0o2775, 0, 50, T0), Kind::Directory(BTreeMap::new()));
}

/// Adds the longest name a directory entry takes (`long/` and 255 `n`s) and a file `depth` directories deep
/// (`d0/d1/…/bottom`).
pub fn add_long_paths(t: &mut Tree, depth: usize) {
    let long = "n".repeat(255);
    file(t, &format!("long/{long}"), meta(0o644, 0, 0, T0), b"long name".to_vec());
    let deep: String = (0..depth).map(|i| format!("d{i}/")).collect();
    file(t, &format!("{deep}bottom"), meta(0o644, 0, 0, T0), b"deep".to_vec());
}

/// The bytes of the regular file at `path`; fails the test if there is none.
pub fn file_bytes(tree: &Tree, path: &str) -> Vec<u8> {
    match &tree.inode(tree.lookup(path.as_bytes()).unwrap().unwrap()).kind {
        Kind::File(c) => c.read_all(path).unwrap(),
        _ => panic!("{path} is not a regular file"),
    }
}

/// A copy of `tree` with every time after `clamp` set to `clamp`: what a writer's time clamp should store.
pub fn clamped(tree: &Tree, clamp: i64) -> Tree {
    let mut t = tree.clone();
    for e in t.walk() {
        let m = &mut t.inode_mut(e.inode).meta;
        m.mtime = m.mtime.min(clamp);
    }
    t
}
