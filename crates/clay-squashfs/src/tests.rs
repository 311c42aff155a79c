#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use clay_testkit::trees::{
    add_long_paths, add_specials, clamped, file, host_file, meta, node, noise, sample_root, with_xattrs, T0,
};
use clay_testkit::{sh, sh_in};
use clay_tree::{Kind, Tree};

use super::*;

const CLAMP: i64 = 1_750_000_000;

/// A tree with every kind of object the format carries, and the shapes that stress it.
fn sample_tree(host_dir: &Path) -> Tree {
    let mut t = sample_root();
    node(&mut t, "bin/dangling", meta(0o777, 5, 6, T0), Kind::Symlink(b"/nowhere/at/all".to_vec()));
    add_specials(&mut t, 7);
    node(
        &mut t,
        "empty-dir",
        with_xattrs(meta(0o700, 1000, 1000, T0), &[("user.d", b"dir")]),
        Kind::Directory(BTreeMap::new()),
    );
    file(&mut t, "etc/empty", meta(0o600, 0, 0, T0), Vec::new());
    file(&mut t, "etc/gid", meta(0o2755, 0, 42, T0), b"setgid".to_vec());
    file(&mut t, "etc/future", meta(0o644, 1000, 100, CLAMP + 1_000_000), b"from the future".to_vec());
    file(&mut t, "home/user/.profile", meta(0o644, 1000, 1000, T0 - 10), b"export A=1\n".to_vec());
    // Larger than several blocks, with a tail in a fragment; one file comes from the host.
    host_file(&mut t, "var/big", meta(0o644, 0, 0, T0), &host_dir.join("big"), &noise(3 * 128 * 1024 + 1000, 1));
    file(&mut t, "var/exact", meta(0o644, 0, 0, T0), noise(2 * 128 * 1024, 2));
    let mut sparse = vec![0u8; 3 * 128 * 1024 + 77];
    sparse[128 * 1024..128 * 1024 + 10].copy_from_slice(b"not a hole");
    file(&mut t, "var/sparse", meta(0o644, 0, 0, T0), sparse);
    // Many small files: several directory headers and fragment blocks.
    for i in 0..700 {
        let name = format!("many/f{i:04}");
        file(&mut t, &name, meta(0o644, i % 7, i % 5, T0 + i64::from(i)), noise((i as usize * 37) % 900, u64::from(i)));
    }
    add_long_paths(&mut t, 60);
    t
}

fn write(tree: &Tree, opts: &Options) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    write_squashfs(tree, opts, &mut out).unwrap();
    out.into_inner()
}

/// Writes the image, extracts it with unsquashfs as root and reads the result back as a tree: everything
/// `Tree::dump` shows (modes, owners, times, sizes, link sharing, symlink targets, devices, xattrs) must match,
/// and so must every file's bytes.
fn round_trip(tree: &Tree, opts: &Options) -> String {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("img.sqfs");
    std::fs::write(&image, write(tree, opts)).unwrap();
    sh_in(dir.path(), "unsquashfs -q -n -d out img.sqfs >/dev/null");
    let back = clay_source::read_dir(&dir.path().join("out"), &mut |_| {}).unwrap();
    let expected = clamped(tree, opts.clamp_mtime.unwrap_or(i64::MAX));
    assert_eq!(back.dump(), expected.dump());
    for e in expected.walk() {
        if let Kind::File(c) = &expected.inode(e.inode).kind {
            let name = String::from_utf8(e.path.clone()).unwrap();
            let got = std::fs::read(dir.path().join("out").join(&name)).unwrap();
            assert!(got == c.read_all(&name).unwrap(), "content of {name} differs");
        }
    }
    sh_in(dir.path(), "unsquashfs -s img.sqfs")
}

#[test]
fn unsquashfs_extracts_everything_the_tree_holds() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    let opts = Options { clamp_mtime: Some(CLAMP), ..Options::default() };
    let info = round_trip(&tree, &opts);
    assert!(info.contains("Compression zstd"), "{info}");
    assert!(info.contains("Block size 131072"), "{info}");
    assert!(info.contains("Xattrs are compressed"), "{info}");
}

#[test]
fn listing_shows_types_owners_devices_and_links() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    let dir = tempfile::tempdir().unwrap();
    let opts = Options { clamp_mtime: Some(CLAMP), ..Options::default() };
    std::fs::write(dir.path().join("img"), write(&tree, &opts)).unwrap();
    let listing = sh_in(dir.path(), "TZ=UTC unsquashfs -lln img");
    let lines: Vec<String> = listing.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for expected in [
        "-rwsr-xr-x 0/0 21 2023-11-14 22:13 squashfs-root/bin/prog",
        "lrwxrwxrwx 0/0 4 2023-11-14 22:13 squashfs-root/bin/link -> prog",
        "crw-rw-rw- 0/0 1, 3 2023-11-14 22:13 squashfs-root/dev/null",
        "brw------- 0/0 259, 7 2023-11-14 22:13 squashfs-root/dev/nvme",
        "prw-r--r-- 0/0 0 2023-11-14 22:13 squashfs-root/dev/fifo",
        "drwxrwxrwt 0/0 3 2023-11-14 22:13 squashfs-root/tmp",
        "drwxrwsr-x 0/50 3 2023-11-14 22:13 squashfs-root/srv/shared",
        "-rw-r--r-- 1000/100 15 2025-06-15 15:06 squashfs-root/etc/future",
    ] {
        assert!(lines.iter().any(|l| l == expected), "{expected} missing from\n{listing}");
    }
    // unsquashfs lists devices with the old 8-bit split (extraction uses the kernel's, see the round trip).
    // Hard links: unsquashfs names the same inode three times (it extracts them as links, see the round trip).
    let stat = sh_in(
        dir.path(),
        "unsquashfs -n -d x img >/dev/null && stat -c '%i %h' x/bin/prog x/bin/prog2 x/usr/bin/prog3",
    );
    let inos: Vec<&str> = stat.lines().collect();
    assert!(inos.iter().all(|l| *l == inos[0] && l.ends_with(" 3")), "{stat}");
    let caps = sh_in(dir.path(), "getcap x/bin/prog; getfattr -h -d -m - x/bin/link x/empty-dir");
    assert!(caps.contains("cap_net_raw=ep"), "{caps}");
    assert!(caps.contains("trusted.l=\"x\"") && caps.contains("user.d=\"dir\""), "{caps}");
}

#[test]
fn every_compressor_and_block_size_round_trips() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    for (compression, block_size, name) in [
        (Compression::Xz { preset: 6 }, 1 << 20, "xz"),
        (Compression::Gzip { level: 9 }, 4096, "gzip"),
        (Compression::Zstd { level: 3 }, 64 * 1024, "zstd"),
    ] {
        let opts = Options { compression, block_size, clamp_mtime: Some(CLAMP), threads: 3 };
        let info = round_trip(&tree, &opts);
        assert!(info.contains(&format!("Compression {name}")), "{info}");
        assert!(info.contains(&format!("Block size {block_size}")), "{info}");
    }
}

#[test]
fn equal_input_gives_equal_bytes_and_the_clamp_matters() {
    let host = tempfile::tempdir().unwrap();
    let tree = sample_tree(host.path());
    let opts = Options { clamp_mtime: Some(CLAMP), threads: 1, ..Options::default() };
    let a = write(&tree, &opts);
    let b = write(&tree, &Options { threads: 4, ..opts.clone() });
    assert!(a == b, "the thread count changed the image");
    assert_eq!(a.len() % 4096, 0);
    let c = write(&tree, &Options { clamp_mtime: Some(CLAMP + 1), ..opts.clone() });
    assert!(a != c, "a different SOURCE_DATE_EPOCH gave the same image");
}

#[test]
fn an_empty_tree_and_a_bad_block_size() {
    let tree = Tree::new(meta(0o755, 0, 0, 0));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("img"), write(&tree, &Options::default())).unwrap();
    let listing = sh_in(dir.path(), "unsquashfs -lln img");
    assert!(listing.contains("squashfs-root"), "{listing}");
    let err = write_squashfs(&tree, &Options { block_size: 3000, ..Options::default() }, &mut Cursor::new(Vec::new()));
    assert!(matches!(err, Err(SquashfsError::BadBlockSize(3000))));
}

#[test]
fn unsupported_xattrs_are_reported_not_silently_lost() {
    let mut tree = Tree::new(meta(0o755, 0, 0, 0));
    file(&mut tree, "f", with_xattrs(meta(0o644, 0, 0, 0), &[("system.posix_acl_access", b"\x02\0\0\0")]), vec![1]);
    let stats = write_squashfs(&tree, &Options::default(), &mut Cursor::new(Vec::new())).unwrap();
    assert_eq!(stats.notes.len(), 1);
    assert!(stats.notes[0].contains("`/f`"), "{:?}", stats.notes);
    let _ = sh("true");
}

/// A tree whose files are byte ranges of one open file, as an image layer's spill file gives them: several full
/// blocks with a tail, a hole block, and a file smaller than a block.
fn range_tree() -> (Tree, Arc<std::fs::File>, Vec<(u64, u64)>) {
    use std::io::Write as _;
    let block = u64::from(DEFAULT_BLOCK_SIZE);
    let mut spill = tempfile::tempfile().unwrap();
    let mut hole = noise(usize::try_from(3 * block).unwrap(), 9);
    hole[usize::try_from(block).unwrap()..usize::try_from(2 * block).unwrap()].fill(0);
    let parts = [noise(usize::try_from(4 * block + 513).unwrap(), 7), hole, noise(1000, 8)];
    let mut ranges = Vec::new();
    let mut at = 512; // as in a tar: data after a header
    for part in &parts {
        spill.write_all(&vec![0xaa; usize::try_from(at - ranges.last().map_or(0, |(o, l)| o + l)).unwrap()]).unwrap();
        spill.write_all(part).unwrap();
        ranges.push((at, part.len() as u64));
        at += (part.len() as u64).next_multiple_of(512) + 512;
    }
    let file = Arc::new(spill);
    let mut t = Tree::new(meta(0o755, 0, 0, T0));
    for (i, (offset, len)) in ranges.iter().enumerate() {
        let content = clay_tree::Content::Range { file: Arc::clone(&file), offset: *offset, len: *len };
        node(&mut t, &format!("f{i}"), meta(0o644, 0, 0, T0), Kind::File(content));
    }
    (t, file, ranges)
}

/// Offers every full block of `ranges`, waiting for the threads when they are busy, as a test can afford to.
fn offer_all(pre: &Precompressor, file: &Arc<std::fs::File>, ranges: &[(u64, u64)]) -> usize {
    use std::os::unix::fs::FileExt as _;
    let block = pre.block_size();
    let mut offered = 0;
    for (offset, len) in ranges {
        for i in 0..len / block {
            let mut data = vec![0u8; usize::try_from(block).unwrap()];
            file.read_exact_at(&mut data, offset + i * block).unwrap();
            while !pre.offer(file, offset + i * block, &data) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            offered += 1;
        }
    }
    offered
}

#[test]
fn blocks_packed_ahead_give_the_same_image_and_are_all_used() {
    let (tree, file, ranges) = range_tree();
    let opts = Options { compression: Compression::Zstd { level: 3 }, clamp_mtime: Some(CLAMP), ..Options::default() };
    let plain = write(&tree, &opts);

    let pre = Precompressor::new(&opts).unwrap();
    let offered = offer_all(&pre, &file, &ranges);
    assert_eq!(offered, 4 + 3);
    let mut ahead = pre.finish();
    assert_eq!(ahead.len(), offered, "every offered block was packed, the hole too");
    let mut out = Cursor::new(Vec::new());
    write_squashfs_with(&tree, &opts, Some(&mut ahead), &mut out).unwrap();
    assert!(out.into_inner() == plain, "blocks packed ahead changed the image");
    assert!(ahead.is_empty(), "{} blocks packed ahead were not used", ahead.len());
    round_trip(&tree, &opts);

    // Blocks packed for another compressor are not used.
    let pre = Precompressor::new(&Options { compression: Compression::Zstd { level: 1 }, ..opts.clone() }).unwrap();
    offer_all(&pre, &file, &ranges);
    let mut other = pre.finish();
    let mut out = Cursor::new(Vec::new());
    write_squashfs_with(&tree, &opts, Some(&mut other), &mut out).unwrap();
    assert!(out.into_inner() == plain);
    assert_eq!(other.len(), 7, "blocks packed for zstd:1 were used for zstd:3");
}

#[test]
fn offers_of_the_wrong_size_or_after_finishing_are_refused() {
    let (_, file, _) = range_tree();
    let pre = Precompressor::new(&Options::default()).unwrap();
    assert!(!pre.offer(&file, 0, &[1; 100]));
    let ahead = pre.finish();
    assert!(ahead.is_empty());
    assert!(!pre.offer(&file, 0, &vec![1; DEFAULT_BLOCK_SIZE as usize]));
}

/// A decompressing producer hands over a chunk of several blocks at once (clay-oci's is 1 MiB): all of it must be
/// taken, or the threads sit idle until the next chunk while the producer's core is the only one working.
#[test]
fn a_chunk_of_blocks_offered_at_once_is_taken_whole() {
    let (_, file, _) = range_tree();
    let pre = Precompressor::new(&Options::default()).unwrap();
    let block = usize::try_from(pre.block_size()).unwrap();
    let data = vec![7u8; block];
    let chunk = (1 << 20) / block;
    let taken = (0..chunk).filter(|&i| pre.offer(&file, (i * block) as u64, &data)).count();
    assert_eq!(taken, chunk, "only {taken} of a chunk's {chunk} blocks were taken");
    assert_eq!(pre.finish().len(), chunk);
}
