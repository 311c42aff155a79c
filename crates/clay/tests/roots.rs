//! Root models (`--root compressed|verity`) and the data partition (`--data-size`), each proven by booting the tiny
//! system, and their filesystem images by the reference tools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;

/// The console line the tiny init prints about a mount: `tiny: root mount <id> parent <id> fs <type>`.
fn root_fs(console: &str) -> String {
    let line = console.lines().find(|l| l.contains("tiny: root mount")).unwrap_or_else(|| panic!("{console}"));
    line.trim_end().rsplit(' ').next().unwrap().to_owned()
}

/// `(start, length)` in bytes of the partition named `name` on a raw disk, from `sgdisk -i`.
fn partition(img: &Path, name: &str) -> (u64, u64) {
    let table = sh(&format!("sgdisk -p {}", img.display()));
    let number = table
        .lines()
        .find(|l| l.trim_end().ends_with(name))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no partition {name}:\n{table}"))
        .to_owned();
    let info = sh(&format!("sgdisk -i {number} {}", img.display()));
    let sector = |key: &str| -> u64 {
        let l = info.lines().find(|l| l.starts_with(key)).unwrap();
        l.split(':').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    };
    let (first, last) = (sector("First sector"), sector("Last sector"));
    (first * 512, (last - first + 1) * 512)
}

#[test]
fn compressed_root_boots_as_an_overlay_of_a_squashfs_in_the_initramfs() {
    let work = tempfile::tempdir().unwrap();
    // The default root model.
    let base = build_tiny(work.path(), "tiny", &["efi"], &[]);
    let efi = with_ext(&base, "efi");
    let console = boot_efi(&efi, TINY_MARKER, 1024, 240);
    assert_eq!(root_fs(&console), "overlay", "{console}");
    assert!(console.contains("tiny: pivot_root works"), "{console}");
    assert!(console.contains("tiny: hosts 127.0.0.1 localhost tiny"), "{console}");

    // The initramfs holds clay-init, the modules, the plan and the image, nothing of the tree itself.
    let initrd = pe_section(&efi, ".initrd");
    let list = clay_testkit::pipe_text(&["cpio", "-t", "--quiet"], &initrd);
    assert!(list.lines().any(|l| l == ".clay/root.img"), "{list}");
    assert!(list.lines().any(|l| l.starts_with(".clay/modules/") && l.ends_with("-squashfs.ko")), "{list}");
    assert!(!list.lines().any(|l| l == "bin/busybox"), "{list}");
    let shown = String::from_utf8(clay_ok(&["inspect", efi.to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("root model: compressed (squashfs)"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_slice(&clay_ok(&["inspect", "--json", efi.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(json["root"]["model"], "compressed", "{json}");
    assert_eq!(json["root"]["fstype"], "squashfs", "{json}");
    assert!(json["root"]["modules"].as_u64().unwrap() >= 3, "loop, squashfs, overlay at least: {json}");
}

#[test]
fn verity_root_boots_from_the_disk_and_a_flipped_byte_stops_the_boot() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["raw"], &["--root", "verity"]);
    let img = with_ext(&base, "img");
    let verify = sh(&format!("sgdisk -v {}", img.display()));
    assert!(verify.contains("No problems found"), "{verify}");
    let table = sh(&format!("sgdisk -p {}", img.display()));
    assert!(table.contains("root-x86-64") && table.contains("root-x86-64-verity"), "{table}");

    // The hash partition passes veritysetup against the root hash the UKI's command line carries.
    let shown = String::from_utf8(clay_ok(&["inspect", img.to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("root model: verity (squashfs)"), "{shown}");
    let hash = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("root hash: "))
        .unwrap_or_else(|| panic!("{shown}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(shown.contains("on the command line: yes"), "{shown}");
    assert!(shown.contains("root and verity partitions: match it"), "{shown}");
    let (root_at, root_len) = partition(&img, "root-x86-64");
    let (hash_at, hash_len) = partition(&img, "root-x86-64-verity");
    let dir = work.path();
    sh(&format!(
        "dd if={img} of={dir}/root.part bs=1M iflag=skip_bytes,count_bytes skip={root_at} count={root_len} status=none && \
         dd if={img} of={dir}/hash.part bs=1M iflag=skip_bytes,count_bytes skip={hash_at} count={hash_len} status=none && \
         veritysetup verify {dir}/root.part {dir}/hash.part {hash} && unsquashfs -lls {dir}/root.part | grep -q sbin/init",
        img = img.display(),
        dir = dir.display()
    ));

    let (status, console, stderr) = clay_run(&[img.to_str().unwrap()], 300);
    assert!(status.success() && console.contains(TINY_MARKER), "{stderr}\n{console}");
    assert_eq!(root_fs(&console), "overlay", "{console}");
    assert!(console.contains("tiny: device-mapper root 1"), "the root is the read-only dm-verity device:\n{console}");

    // One flipped byte in the first 4 KiB of the root partition: the squashfs superblock no longer matches.
    let tampered = dir.join("tampered.img");
    std::fs::copy(&img, &tampered).unwrap();
    sh(&format!("printf '\\x5a' | dd of={} bs=1 seek={} conv=notrunc status=none", tampered.display(), root_at + 100));
    let (_, console, stderr) = clay_run(&[tampered.to_str().unwrap()], 300);
    assert!(!console.contains(TINY_MARKER), "the tampered disk booted:\n{console}");
    assert!(
        console.contains("clay-init: cannot mount the verity-checked root partition")
            && console.contains("do not match the root hash"),
        "{stderr}\n{console}"
    );
}

#[test]
fn data_partition_keeps_what_the_system_writes_across_boots() {
    let work = tempfile::tempdir().unwrap();
    let extra = ["--root", "compressed", "--data-size", "64M"];
    let base = build_tiny(work.path(), "tiny", &["raw"], &extra);
    let img = with_ext(&base, "img");
    let (at, len) = partition(&img, "clay-data");
    assert_eq!(len, 64 << 20);
    let part = work.path().join("data.part");
    sh(&format!(
        "dd if={} of={} bs=1M iflag=skip_bytes,count_bytes skip={at} count={len} status=none && e2fsck -fn {}",
        img.display(),
        part.display(),
        part.display()
    ));
    // Bit-identical across builds.
    let again = build_tiny(work.path(), "again", &["raw"], &extra);
    let sums = sh(&format!("sha256sum < {} && sha256sum < {}", img.display(), with_ext(&again, "img").display()));
    let lines: Vec<&str> = sums.lines().collect();
    assert_eq!(lines[0], lines[1], "two builds differ");

    for boot in 1..=2 {
        let (status, console, stderr) = clay_run(&["--persist", img.to_str().unwrap()], 300);
        assert!(status.success() && console.contains(TINY_MARKER), "{stderr}\n{console}");
        assert!(console.contains(&format!("tiny: boot number {boot} on ext4")), "boot {boot}:\n{console}");
    }
    sh(&format!(
        "dd if={} of={} bs=1M iflag=skip_bytes,count_bytes skip={at} count={len} status=none && e2fsck -fn {}",
        img.display(),
        part.display(),
        part.display()
    ));
}

#[test]
fn root_images_alone_pass_their_reference_tools_and_are_reproducible() {
    let work = tempfile::tempdir().unwrap();
    let (formats, extra) = (["squashfs", "erofs"], ["--compression", "zstd:15"]);
    let base = build_tiny(work.path(), "tiny", &formats, &extra);
    let again = build_tiny(work.path(), "again", &formats, &extra);
    let sqfs = with_ext(&base, "squashfs");
    let listing = sh(&format!("unsquashfs -lls {}", sqfs.display()));
    assert!(listing.contains("squashfs-root/sbin/init") && listing.contains("squashfs-root/bin/busybox"), "{listing}");
    sh(&format!("fsck.erofs {}", with_ext(&base, "erofs").display()));
    for ext in ["squashfs", "erofs"] {
        let a = std::fs::read(with_ext(&base, ext)).unwrap();
        let b = std::fs::read(with_ext(&again, ext)).unwrap();
        assert!(a == b, "two {ext} builds differ");
    }
}

#[test]
fn impossible_root_requests_are_refused_with_one_sentence() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = out.join("x");
    let build = |args: &[&str]| {
        let mut cmd = clay();
        cmd.args(["build", root.to_str().unwrap(), "-o", o.to_str().unwrap()]).args(args);
        clay_err(&mut cmd)
    };
    let err = build(&["--root", "verity", "-f", "efi"]);
    assert!(err.contains("--root verity puts the OS on a disk partition"), "{err}");
    let err = build(&["--data-size", "64M", "-f", "efi"]);
    assert!(err.contains("--data-size adds a partition to the disk"), "{err}");
    let err = build(&["--data-size", "64M", "--data-mount", "/srv", "-f", "raw"]);
    assert!(err.contains("the image has no directory /srv"), "{err}");
    let err = build(&["--data-size", "1M", "-f", "raw"]);
    assert!(err.contains("too small"), "{err}");
    sh(&format!("head -c 20M /dev/urandom > {}/var/big", root.display()));
    let err = build(&["--data-size", "16M", "-f", "raw"]);
    assert!(err.contains("the data partition of 16.0 MiB cannot hold the image's /var"), "{err}");
    assert!(err.contains("raise --data-size"), "{err}");
    // Without the kernel's modules, the loop device and squashfs cannot be had: asked for, that is an error; by
    // default, the OS runs from RAM with a warning.
    sh(&format!("rm -rf {}/lib/modules/*/kernel", root.display()));
    let err = build(&["--root", "compressed", "-f", "efi"]);
    assert!(err.contains("has no module `loop`"), "{err}");
    let fallback = clay_ok(&["build", root.to_str().unwrap(), "-o", work.path().join("ram").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&fallback.stderr);
    assert!(stderr.contains("has no module `loop`") && stderr.contains("runs from RAM uncompressed"), "{stderr}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing is left in the output directory");
}
