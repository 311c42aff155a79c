//! e2fsprogs is the oracle: `e2fsck -fn` must find nothing to fix, and debugfs must read back every file's bytes,
//! mode, owner, link count, time, device number, symlink target and extended attribute.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Cursor, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use clay_testkit::trees::{
    add_long_paths, add_specials, file, host_file, meta, node, noise, sample_root, with_xattrs, CAP_NET_RAW_EP, T0,
};
use clay_tree::{Kind, Tree};

use super::*;

const CLAMP: i64 = 1_750_000_000;
const MIB: u64 = 1 << 20;

fn opts(size: u64) -> Options {
    Options {
        size,
        label: "clay-data".to_owned(),
        uuid: *b"0123456789abcdef",
        hash_seed: *b"fedcba9876543210",
        timestamp: CLAMP,
        journal: true,
    }
}

/// A POSIX ACL in the VFS form: user::rw-, user:1000:r--, group::r--, mask::r--, other::---. Entries without a
/// user or group carry `undefined` as their id: the kernel's -1, or debugfs's 0.
fn acl_with(undefined: u32) -> Vec<u8> {
    let mut vfs = 2u32.to_le_bytes().to_vec();
    let u = undefined;
    for (tag, perm, id) in [(1u16, 6u16, u), (2, 4, 1000), (4, 4, u), (0x10, 4, u), (0x20, 0, u)] {
        vfs.extend_from_slice(&tag.to_le_bytes());
        vfs.extend_from_slice(&perm.to_le_bytes());
        vfs.extend_from_slice(&id.to_le_bytes());
    }
    vfs
}

fn acl() -> Vec<u8> {
    acl_with(u32::MAX)
}

/// Every kind of object, and the shapes that stress the format.
fn sample_tree(host_dir: &Path) -> Tree {
    let mut t = sample_root();
    let long_target = format!("/{}", "long-target/".repeat(20));
    node(&mut t, "bin/long-link", meta(0o777, 5, 6, T0), Kind::Symlink(long_target.into_bytes()));
    node(&mut t, "bin/edge-link", meta(0o777, 0, 0, T0), Kind::Symlink(vec![b'e'; 59]));
    node(&mut t, "bin/edge-link2", meta(0o777, 0, 0, T0), Kind::Symlink(vec![b'e'; 60]));
    add_specials(&mut t, 7);
    let acl_meta = with_xattrs(
        meta(0o750, 1000, 1000, T0),
        &[("system.posix_acl_access", &acl()), ("system.posix_acl_default", &acl()), ("user.d", b"dir")],
    );
    node(&mut t, "acl-dir", acl_meta, Kind::Directory(BTreeMap::new()));
    file(&mut t, "etc/empty", meta(0o600, 0, 0, T0), Vec::new());
    file(&mut t, "etc/future", meta(0o644, 100_000, 70_000, CLAMP + 1_000_000), b"from the future".to_vec());
    file(&mut t, "etc/old", meta(0o644, 0, 0, -5_000), b"before 1970".to_vec());
    // Several blocks, from the host; a partial last block.
    host_file(&mut t, "var/big", meta(0o644, 0, 0, T0), &host_dir.join("big"), &noise(3 * 128 * 1024 + 1000, 1));
    // Holes: data, a hole, data; and a file that is all hole.
    let mut sparse = vec![0u8; 3 * MIB as usize + 77];
    sparse[MIB as usize..MIB as usize + 10].copy_from_slice(b"not a hole");
    sparse[3 * MIB as usize + 70] = 1;
    file(&mut t, "var/sparse", meta(0o644, 0, 0, T0), sparse);
    file(&mut t, "var/zeros", meta(0o644, 0, 0, T0), vec![0u8; 2 * MIB as usize]);
    // Every other block a hole: 600 extents, an extent tree of depth 1 with two leaves.
    let mut striped = vec![0u8; 1200 * 4096];
    for (i, block) in striped.chunks_mut(4096).enumerate() {
        if i % 2 == 0 {
            block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        }
    }
    file(&mut t, "var/striped", meta(0o640, 33, 33, T0), striped);
    // A directory of 5000 entries (about 40 blocks).
    for i in 0..5000u32 {
        file(
            &mut t,
            &format!("many/entry-with-a-longish-name-{i:05}"),
            meta(0o644, i % 7, i % 5, T0),
            noise(i as usize % 300, i.into()),
        );
    }
    add_long_paths(&mut t, 40);
    t
}

/// Writes the filesystem at `offset` into a sparse file of `offset + size` bytes.
fn write_image(tree: &Tree, opts: &Options, path: &Path, offset: u64) -> Stats {
    let mut f = File::create(path).unwrap();
    f.set_len(offset + opts.size).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let stats = write_ext4(tree, opts, &mut f).unwrap();
    assert_eq!(f.stream_position().unwrap(), offset + stats.size);
    stats
}

/// Runs `e2fsck -fn` and fails unless it finds nothing to fix; returns its report.
fn fsck(image: &str) -> String {
    let out = Command::new("e2fsck").args(["-fn", image]).output().expect("e2fsck is needed (e2fsprogs)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "e2fsck -fn {image} complains:\n{text}");
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("Pass ") && !l.starts_with("e2fsck ") && !l.contains(" files (") && !l.is_empty())
        .collect();
    assert!(complaints.is_empty(), "e2fsck -fn {image} says more than its passes:\n{text}");
    text
}

/// Runs debugfs commands (one a line) on the image and returns what it printed.
fn debugfs(image: &Path, commands: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("cmds");
    std::fs::write(&script, commands).unwrap();
    let out = Command::new("debugfs").arg("-f").arg(&script).arg(image).output().expect("debugfs is needed");
    assert!(out.status.success(), "debugfs failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One line per path from debugfs's `stat`: type, permission bits, owner, links, size, mtime, device, link target.
fn debugfs_listing(image: &Path, paths: &[String]) -> Vec<String> {
    let cmds: String = paths.iter().map(|p| format!("stat \"{p}\"\n")).collect();
    let out = debugfs(image, &cmds);
    let mut lines = Vec::new();
    for (path, block) in paths.iter().zip(out.split("debugfs: stat ").skip(1)) {
        let field = |name: &str| {
            let at = block.find(name).unwrap_or_else(|| panic!("no `{name}` for {path}:\n{block}")) + name.len();
            block[at..].split_whitespace().next().unwrap().to_owned()
        };
        let kind = block.split("Type: ").nth(1).unwrap().split("  ").next().unwrap().trim().to_owned();
        let mtime = i64::from_str_radix(field("mtime: 0x").split(':').next().unwrap(), 16).unwrap();
        let epoch = i64::from_str_radix(field("mtime: 0x").split(':').nth(1).unwrap(), 16).unwrap() & 3;
        let mtime = i64::from(mtime as u32 as i32) + (epoch << 32);
        let mut line = format!(
            "{path} {kind} {:o} {}:{} links={} size={} mtime={mtime}",
            u32::from_str_radix(&field("Mode: "), 8).unwrap(),
            field("User: "),
            field("Group: "),
            field("Links: "),
            field("Size: "),
        );
        if let Some(dev) = block.split("Device major/minor number: ").nth(1) {
            line += &format!(" dev={}", dev.split_whitespace().next().unwrap());
        }
        if let Some(dest) = block.split("link dest: ").nth(1) {
            line += &format!(" -> {}", dest.lines().next().unwrap());
        }
        lines.push(line);
    }
    lines
}

/// The same lines, from the tree.
fn expected_listing(tree: &Tree, paths: &[String]) -> Vec<String> {
    let links = tree.link_counts(&tree.walk());
    paths
        .iter()
        .map(|p| {
            let id = tree.lookup(p.as_bytes()).unwrap().unwrap();
            let inode = tree.inode(id);
            let m = &inode.meta;
            let mut nlink = links[&id];
            let (kind, size) = match &inode.kind {
                Kind::Directory(_) => ("directory", None),
                Kind::File(c) => ("regular", Some(c.len())),
                Kind::Symlink(t) => ("symlink", Some(t.len() as u64)),
                Kind::CharDevice { .. } => ("character special", Some(0)),
                Kind::BlockDevice { .. } => ("block special", Some(0)),
                Kind::Fifo => ("FIFO", Some(0)),
            };
            if p == "/" {
                nlink += 1; // lost+found
            }
            let size = size.map_or("*".to_owned(), |s| s.to_string());
            let mut line = format!(
                "{p} {kind} {:o} {}:{} links={nlink} size={size} mtime={}",
                m.mode & 0o7777,
                m.uid,
                m.gid,
                m.mtime.min(CLAMP)
            );
            match &inode.kind {
                Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                    line += &format!(" dev={major:02}:{minor:02}")
                }
                Kind::Symlink(t) if t.len() < 60 => line += &format!(" -> \"{}\"", String::from_utf8_lossy(t)),
                _ => {}
            }
            line
        })
        .collect()
}

fn tree_paths(tree: &Tree) -> Vec<String> {
    tree.walk().iter().map(|e| format!("/{}", String::from_utf8_lossy(&e.path))).collect()
}

#[test]
fn e2fsck_finds_nothing_and_debugfs_reads_back_everything() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("fs.img");
    let stats = write_image(&tree, &opts(64 * MIB), &image, 0);
    assert_eq!(stats.size, 64 * MIB);
    assert_eq!(stats.journal_bytes, 4 * MIB);
    fsck(image.to_str().unwrap());

    // Metadata of every path.
    let paths = tree_paths(&tree);
    let mut got = debugfs_listing(&image, &paths);
    let mut want = expected_listing(&tree, &paths);
    // Directory sizes are ext4's own (whole blocks): compare the rest.
    for l in got.iter_mut().chain(want.iter_mut()) {
        if l.contains(" directory ") {
            let (head, tail) = l.split_once(" size=").unwrap();
            *l = format!("{head} size=* {}", tail.split_once(' ').unwrap().1);
        }
    }
    let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
    assert!(missing.is_empty(), "debugfs disagrees on {missing:#?}\ndebugfs said {extra:#?}");

    // Hard links share one inode.
    let inos = debugfs(&image, "stat /bin/prog\nstat /bin/prog2\nstat /usr/bin/prog3\n");
    let nums: Vec<&str> =
        inos.lines().filter(|l| l.starts_with("Inode: ")).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert!(nums.len() == 3 && nums.iter().all(|n| *n == nums[0]), "{nums:?}");

    // Every file's bytes, and the slow symlink's target.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    debugfs(&image, &format!("rdump / {}\n", out.display()));
    for e in tree.walk() {
        let name = String::from_utf8_lossy(&e.path).into_owned();
        match &tree.inode(e.inode).kind {
            Kind::File(c) => {
                let got = std::fs::read(out.join(&name)).unwrap_or_else(|err| panic!("{name}: {err}"));
                assert!(got == c.read_all(&name).unwrap(), "content of {name} differs");
            }
            Kind::Symlink(t) => {
                let got = std::fs::read_link(out.join(&name)).unwrap();
                assert_eq!(got.as_os_str().as_encoded_bytes(), t.as_slice(), "{name}");
            }
            _ => {}
        }
    }

    // Extended attributes, values byte for byte (ACLs come back in the VFS form, debugfs's flavour).
    for (path, name, value) in [
        ("/bin/prog", "security.capability", CAP_NET_RAW_EP.to_vec()),
        ("/bin/prog", "user.big", vec![7u8; 300]),
        ("/bin/link", "trusted.l", b"x".to_vec()),
        ("/", "trusted.root", b"r".to_vec()),
        ("/acl-dir", "user.d", b"dir".to_vec()),
        ("/acl-dir", "system.posix_acl_access", acl_with(0)),
        ("/acl-dir", "system.posix_acl_default", acl_with(0)),
    ] {
        let file = dir.path().join("value");
        let _ = std::fs::remove_file(&file);
        debugfs(&image, &format!("ea_get -f {} {path} {name}\n", file.display()));
        let got = std::fs::read(&file).unwrap_or_default();
        assert!(got == value, "{path} {name}: {got:?} != {value:?}");
    }
    let list = debugfs(&image, "ea_list /bin/prog\n");
    assert!(list.contains("security.capability (20)") && list.contains("user.big (300)"), "{list}");

    // The striped file needs an extent tree; lost+found is there, as mke2fs makes it.
    let ex = debugfs(&image, "ex /var/striped\nstat /lost+found\n");
    assert!(ex.contains("Level Entries") && ex.contains(" 1/ 1 "), "no depth-1 extent tree:\n{ex}");
    assert!(ex.contains("Mode:  0700") && ex.contains("Size: 16384"), "{ex}");
}

#[test]
fn an_empty_tree_without_a_journal_and_at_an_offset() {
    let tree = Tree::new(meta(0o700, 1, 2, T0));
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("fs.img");
    write_image(&tree, &Options { journal: false, ..opts(MIB) }, &image, 0);
    fsck(image.to_str().unwrap());
    let root = debugfs(&image, "stat /\nls -l /\n");
    assert!(root.contains("Mode:  0700") && root.contains("User:     1   Group:     2"), "{root}");
    assert!(root.contains("lost+found"), "{root}");

    // In a partition 1 MiB into a disk image; e2fsprogs opens it with `?offset=`.
    let disk = dir.path().join("disk.img");
    write_image(&tree, &opts(32 * MIB), &disk, MIB);
    fsck(&format!("{}?offset={MIB}", disk.display()));
}

#[test]
fn equal_input_gives_equal_bytes() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    let write = |o: &Options| {
        let mut out = Cursor::new(Vec::new());
        write_ext4(&tree, o, &mut out).unwrap();
        out.into_inner()
    };
    let a = write(&opts(48 * MIB));
    let b = write(&opts(48 * MIB));
    assert!(a == b, "two writes differ");
    let c = write(&Options { timestamp: CLAMP + 1, ..opts(48 * MIB) });
    assert!(a != c, "a different SOURCE_DATE_EPOCH gave the same image");
}

#[test]
fn a_large_filesystem_stays_sparse() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    let dir = tempfile::tempdir().unwrap();
    for (size, label) in [(1 << 30, "1g"), (2 << 30, "2g")] {
        let image = dir.path().join(label);
        let stats = write_image(&tree, &opts(size), &image, 0);
        fsck(image.to_str().unwrap());
        let on_disk = std::fs::metadata(&image).unwrap().blocks() * 512;
        // Only used blocks are written, and of those not the journal (but its superblock) nor the unused inode
        // table blocks: about 25 MiB (5000 small files take a block each).
        let used = stats.used_blocks * 4096;
        assert!(on_disk <= used - stats.journal_bytes + 4096, "{label}: {on_disk} bytes on disk, {used} used");
        assert!(on_disk < 28 * MIB, "{label}: {on_disk} bytes allocated on disk");
    }
}

#[test]
fn a_file_longer_than_one_extent() {
    // 240 MiB: more than the 32768 blocks one extent covers, and across the backup superblock of group 1, so the
    // free blocks from there on are contiguous past the length an extent can have.
    let len = 240 * MIB as usize + 5;
    let mut data = vec![0xA5u8; len];
    data[len - 1] = 0x5A;
    let mut tree = Tree::new(meta(0o755, 0, 0, T0));
    file(&mut tree, "big", meta(0o644, 0, 0, T0), data.clone());
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("fs.img");
    write_image(&tree, &opts(320 * MIB), &image, 0);
    fsck(image.to_str().unwrap());
    let ex = debugfs(&image, "ex /big\n");
    assert!(ex.contains(" 32768 ") && ex.lines().filter(|l| l.contains(" - ")).count() >= 3, "{ex}");
    let out = dir.path().join("big");
    debugfs(&image, &format!("dump /big {}\n", out.display()));
    assert!(std::fs::read(&out).unwrap() == data, "the content of /big differs");
}

#[test]
fn a_tree_too_large_names_both_sizes() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    let err = write_ext4(&tree, &opts(16 * MIB), &mut Cursor::new(Vec::new())).unwrap_err();
    let Ext4Error::TooSmall { needed, given } = err else { panic!("{err}") };
    assert_eq!(given, 16 * MIB);
    assert!(needed > 16 * MIB, "{needed}");
    assert!(err.to_string().contains(&needed.to_string()), "{err}");
    // The size it names is enough.
    let min = min_size(&tree, &opts(0));
    assert_eq!(min, needed);
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("min.img");
    write_image(&tree, &opts(min), &image, 0);
    fsck(image.to_str().unwrap());

    // Many small files: the inode count, not the blocks, is what runs out.
    let mut many = Tree::new(meta(0o755, 0, 0, T0));
    for i in 0..20_000 {
        file(&mut many, &format!("d{}/f{i}", i % 10), meta(0o644, 0, 0, T0), vec![1]);
    }
    let min = min_size(&many, &opts(0));
    let image = dir.path().join("many.img");
    write_image(&many, &opts(min), &image, 0);
    fsck(image.to_str().unwrap());
    assert!(matches!(write_ext4(&many, &opts(min / 2), &mut Cursor::new(Vec::new())), Err(Ext4Error::TooSmall { .. })));
}

#[test]
fn what_ext4_cannot_store_is_an_error() {
    let cases: Vec<(Tree, &str)> = vec![
        {
            let mut t = Tree::new(meta(0o755, 0, 0, 0));
            node(&mut t, "dev/x", meta(0o600, 0, 0, 0), Kind::CharDevice { major: 4096, minor: 0 });
            (t, "beyond the 12-bit major")
        },
        {
            let mut t = Tree::new(meta(0o755, 0, 0, 0));
            file(&mut t, "f", with_xattrs(meta(0o644, 0, 0, 0), &[("os2.x", b"1")]), vec![]);
            (t, "namespace")
        },
        {
            let mut t = Tree::new(meta(0o755, 0, 0, 0));
            file(&mut t, "f", with_xattrs(meta(0o644, 0, 0, 0), &[("user.x", &[0u8; 5000])]), vec![]);
            (t, "do not fit")
        },
        {
            let mut t = Tree::new(meta(0o755, 0, 0, 0));
            node(&mut t, "l", meta(0o777, 0, 0, 0), Kind::Symlink(Vec::new()));
            (t, "target of 0 bytes")
        },
        {
            let mut t = Tree::new(meta(0o755, 0, 0, 0));
            file(&mut t, &"x".repeat(256), meta(0o644, 0, 0, 0), vec![]);
            (t, "longer than the 255 bytes")
        },
    ];
    for (tree, expected) in cases {
        let err = write_ext4(&tree, &opts(8 * MIB), &mut Cursor::new(Vec::new())).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let tree = Tree::new(meta(0o755, 0, 0, 0));
    let err = write_ext4(&tree, &Options { label: "x".repeat(17), ..opts(8 * MIB) }, &mut Cursor::new(Vec::new()));
    assert!(matches!(err, Err(Ext4Error::LabelTooLong(_))));
}
