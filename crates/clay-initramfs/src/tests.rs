use super::*;
use std::process::{Command, Stdio};
use std::sync::Arc;

fn meta(mode: u32, mtime: i64) -> Metadata {
    Metadata::root_owned(mode, mtime)
}

fn file(data: &[u8], mode: u32) -> Inode {
    Inode { meta: meta(mode, 2_000_000_000), kind: Kind::File(Content::from_bytes(data.to_vec())) }
}

fn sample_tree() -> Tree {
    let d = meta(0o755, 1_000);
    let mut t = Tree::new(d.clone());
    let mut prog = file(b"#!/bin/sh\n", 0o4755);
    prog.meta.uid = 1000;
    prog.meta.xattrs.insert(b"security.capability".to_vec(), vec![1, 0, 0, 2]);
    t.insert(b"bin/prog", prog, &d).unwrap();
    t.link(b"bin/zlink", b"bin/prog", &d).unwrap();
    t.insert(b"bin/sh", Inode { meta: meta(0o777, 5), kind: Kind::Symlink(b"busybox".to_vec()) }, &d).unwrap();
    t.insert(b"boot/vmlinuz-6.1", file(b"kernel", 0o644), &d).unwrap();
    t.insert(b"init", file(b"old init", 0o755), &d).unwrap();
    t.insert(b"dev/null", Inode { meta: meta(0o666, 5), kind: Kind::CharDevice { major: 1, minor: 3 } }, &d).unwrap();
    t
}

fn options(compression: Compression) -> Options {
    Options {
        compression,
        threads: 2,
        clamp_mtime: Some(1_700_000_000),
        init: Content::from_bytes(b"\x7fELF init".to_vec()),
        exclude: vec![],
    }
}

fn build(tree: &Tree, microcode: &[(String, Content)], opts: &Options) -> (Vec<u8>, Stats) {
    let mut out = Vec::new();
    let stats = write(tree, microcode, opts, &mut out).unwrap();
    (out, stats)
}

#[test]
fn archive_reads_back_with_gnu_cpio_as_the_tree_says() {
    let (out, stats) = build(&sample_tree(), &[], &options(Compression::None));
    let listing = clay_testkit::pipe_text(&["cpio", "-itv", "--quiet", "--numeric-uid-gid"], &out);
    let rows: Vec<String> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode links uid gid (size | major, minor) month day time-or-year name [-> target]
            let name_at = if f[0].starts_with(['c', 'b']) { 9 } else { 8 };
            format!("{} {} {}:{} {}", f[0], f[1], f[2], f[3], f[name_at..].join(" "))
        })
        .collect();
    assert_eq!(
        rows,
        [
            "drwxr-xr-x 6 0:0 .",
            "drwx------ 2 0:0 .clay",
            "-rw------- 1 0:0 .clay/xattrs",
            "drwxr-xr-x 2 0:0 bin",
            "-rwsr-xr-x 2 1000:0 bin/prog",
            "lrwxrwxrwx 1 0:0 bin/sh -> busybox",
            "-rwsr-xr-x 2 1000:0 bin/zlink",
            "drwxr-xr-x 2 0:0 boot",
            "drwxr-xr-x 2 0:0 dev",
            "crw------- 1 0:0 dev/console",
            "crw-rw-rw- 1 0:0 dev/null",
            "-rwxr-xr-x 1 0:0 init",
        ],
        "{listing}"
    );
    assert_eq!(stats.entries, 12);
    assert_eq!(stats.xattr_files, 1);
    assert_eq!(stats.notes.len(), 1, "the image's /init was replaced");
}

#[test]
fn contents_hard_links_times_and_xattrs_survive() {
    let (out, _) = build(&sample_tree(), &[], &options(Compression::DEFAULT));
    let dir = tempfile::tempdir().unwrap();
    let cpio = clay_testkit::pipe(&["zstd", "-dc"], &out);
    let st = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&cpio)?;
            c.wait()
        })
        .unwrap();
    assert!(st.success());
    use std::os::unix::fs::MetadataExt;
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
    assert_eq!(read("init"), b"\x7fELF init");
    assert_eq!(read("bin/prog"), b"#!/bin/sh\n");
    let a = std::fs::metadata(dir.path().join("bin/prog")).unwrap();
    let b = std::fs::metadata(dir.path().join("bin/zlink")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "hard links share one inode");
    assert_eq!(a.mtime(), 1_700_000_000, "clamped to SOURCE_DATE_EPOCH");
    let records = clay_manifest::decode(&read(".clay/xattrs")).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].path.as_slice(), records[0].name.as_slice()),
        (b"bin/prog".as_slice(), b"security.capability".as_slice())
    );
    assert!(std::fs::read_dir(dir.path().join("boot")).unwrap().next().is_none(), "/boot is left out");
}

#[test]
fn microcode_comes_first_and_uncompressed() {
    let mut w = clay_cpio::Writer::new(Vec::new());
    let name = b"kernel/x86/microcode/GenuineIntel.bin";
    w.entry(&Header {
        name,
        ino: 1,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 0,
        filesize: 3,
        rdev_major: 0,
        rdev_minor: 0,
    })
    .unwrap();
    w.data().write_all(b"abc").unwrap();
    let ucode = w.finish().unwrap();
    let (out, stats) = build(
        &sample_tree(),
        &[("/boot/intel-ucode.img".into(), Content::from_bytes(ucode.clone()))],
        &options(Compression::DEFAULT),
    );
    assert_eq!(&out[..ucode.len()], &ucode[..]);
    assert_eq!(stats.microcode_bytes, ucode.len() as u64);
    assert_eq!(&out[ucode.len()..ucode.len() + 4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd archive follows");
    let bad = [("/boot/amd-ucode.img".to_owned(), Content::from_bytes(b"gzip?".to_vec()))];
    let err = write(&sample_tree(), &bad, &options(Compression::None), Vec::new()).unwrap_err();
    assert!(err.to_string().starts_with("microcode image `/boot/amd-ucode.img` is not an uncompressed cpio"));
}

#[test]
fn equal_input_gives_equal_bytes() {
    let opts = options(Compression::DEFAULT);
    assert!(build(&sample_tree(), &[], &opts).0 == build(&sample_tree(), &[], &opts).0);
}

#[test]
fn files_of_4_gib_are_refused_by_name() {
    let mut t = sample_tree();
    let huge = tempfile::tempfile().unwrap();
    let content = Content::Range { file: Arc::new(huge), offset: 0, len: 4 << 30 };
    let d = meta(0o755, 0);
    t.insert(b"var/big.img", Inode { meta: d.clone(), kind: Kind::File(content) }, &d).unwrap();
    let err = write(&t, &[], &options(Compression::None), io::sink()).unwrap_err().to_string();
    assert_eq!(
        err,
        "`var/big.img` is 4294967296 bytes; cpio newc records sizes in 32 bits, so files must be under 4 GiB"
    );
}

/// A tree with large files in an open file and on the host, hard-linked too, beside the sample's small ones.
fn tree_with_large_files(dir: &std::path::Path) -> Tree {
    let d = meta(0o755, 1_000);
    let mut t = sample_tree();
    let mut spill = tempfile::tempfile().unwrap();
    let big: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
    spill.write_all(&[b"x".as_slice(), &big].concat()).unwrap();
    let range = Content::Range { file: Arc::new(spill), offset: 1, len: big.len() as u64 };
    t.insert(b"root.squashfs", Inode { meta: meta(0o600, 5), kind: Kind::File(range) }, &d).unwrap();
    let host = dir.join("host");
    std::fs::write(&host, &big[..1 << 20]).unwrap();
    let host = Content::Host { path: host, len: 1 << 20 };
    t.insert(b"lib/big.ko", Inode { meta: meta(0o644, 5), kind: Kind::File(host) }, &d).unwrap();
    t.link(b"lib/big-link.ko", b"lib/big.ko", &d).unwrap();
    t
}

#[test]
fn uncompressed_initramfs_in_a_file_leaves_large_files_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_with_large_files(dir.path());
    let microcode = [("GenuineIntel.bin".to_owned(), Content::from_bytes(b"070701microcode".to_vec()))];
    let opts = options(Compression::None);
    let (expected, expected_stats) = build(&tree, &microcode, &opts);

    let file = tempfile::tempfile().unwrap();
    let written = file.try_clone().unwrap();
    let (content, stats) = write_to_file(&tree, &microcode, &opts, file).unwrap();
    assert_eq!(stats, expected_stats);
    assert!(content.read_all("initramfs").unwrap() == expected, "the pieces differ from the archive");
    assert!(matches!(content, Content::Concat(_)), "{content:?}");
    // Only what goes around the two large files was written out.
    let size = written.metadata().unwrap().len();
    assert!(size < 64 * 1024, "{size} bytes written: the large files were copied");
    assert_eq!(size + 3_000_001 + (1 << 20), expected.len() as u64);
}

#[test]
fn compressed_initramfs_in_a_file_is_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_with_large_files(dir.path());
    let opts = options(Compression::Zstd { level: 3 });
    let (expected, _) = build(&tree, &[], &opts);
    let (content, stats) = write_to_file(&tree, &[], &opts, tempfile::tempfile().unwrap()).unwrap();
    assert!(matches!(content, Content::Range { offset: 0, .. }), "{content:?}");
    assert_eq!(stats.total_bytes, expected.len() as u64);
    assert!(content.read_all("initramfs").unwrap() == expected);
}
