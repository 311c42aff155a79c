//! End to end: a tiny busybox system with a Debian cloud kernel becomes a UKI that boots under OVMF.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;

fn build(source: &str, out: &Path, extra: &[&str]) {
    let mut args = vec!["build", source, "--format", "efi", "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    clay_ok(&args);
}

fn assert_booted_properly(console: &str) {
    assert!(console.contains("tiny: pid 1"), "the system's own /sbin/init runs as PID 1:\n{console}");
    assert!(console.contains("tiny: pivot_root works"), "pivot_root must work on the root:\n{console}");
    let root_line = console.lines().find(|l| l.contains("tiny: root mount")).expect("mountinfo line");
    let fields: Vec<&str> = root_line.split_whitespace().collect();
    // "tiny: root mount ID parent PARENT fs FS": a root whose parent is itself is the kernel's rootfs.
    assert_ne!(fields[3], fields[5], "`/` must not be the kernel's rootfs mount: {root_line}");
    assert!(console.contains("tiny: hosts 127.0.0.1 localhost tiny"), "/etc/hosts.target installed:\n{console}");
}

#[test]
fn tiny_system_from_a_directory_boots_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let efi = work.path().join("out/tiny.efi");
    build(root.to_str().unwrap(), &efi, &["--cmdline", TINY_CMDLINE]);
    let console = boot_efi(&efi, TINY_MARKER, 1024, 180);
    assert_booted_properly(&console);
    assert!(console.contains(&format!("tiny: cmdline {TINY_CMDLINE}")), "{console}");
}

#[test]
fn tiny_system_from_a_zstd_tarball_boots_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    // The image's own command line is used when --cmdline is not given.
    sh(&format!(
        "mkdir -p {0}/etc/kernel && echo 'console=ttyS0 panic=-1 clay.test=1' > {0}/etc/kernel/cmdline",
        root.display()
    ));
    let tarball = work.path().join("rootfs.tar.zst");
    sh(&format!("tar --zstd --numeric-owner --xattrs -cf {} -C {} .", tarball.display(), root.display()));
    let efi = work.path().join("tiny");
    build(&format!("tar:{}", tarball.display()), &efi, &[]);
    let console = boot_efi(&work.path().join("tiny.efi"), TINY_MARKER, 1024, 180);
    assert_booted_properly(&console);
    assert!(console.contains("clay.test=1"), "{console}");
}
