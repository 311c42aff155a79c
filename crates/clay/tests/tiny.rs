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
    // The RAM root model, so it stays covered by a boot beside the default (compressed).
    build(&format!("tar:{}", tarball.display()), &efi, &["--root", "ram"]);
    let console = boot_efi(&work.path().join("tiny.efi"), TINY_MARKER, 1024, 180);
    assert_booted_properly(&console);
    assert!(console.contains("clay.test=1"), "{console}");
}

#[test]
fn clay_run_boots_the_uki_with_its_console_on_stdout() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let efi = work.path().join("tiny.efi");
    build(root.to_str().unwrap(), &efi, &["--cmdline", TINY_CMDLINE]);
    // The tiny system powers off by itself (tiny.poweroff), which ends qemu and `clay run` with status 0.
    let (status, console, stderr) = clay_run(&[efi.to_str().unwrap(), "--memory", "1024"], 240);
    assert!(status.success(), "clay run failed: {stderr}\n{console}");
    assert!(console.contains(TINY_MARKER), "{console}");
    assert!(stderr.contains("clay: booting"), "{stderr}");
    // KVM is tried, never assumed: on machines where it cannot boot, one notice says TCG is used instead.
    assert!(stderr.matches("using TCG").count() <= 1, "{stderr}");
}

#[test]
fn the_kernel_unpacks_every_compression() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    for compression in ["zstd", "gzip", "xz", "lz4", "none"] {
        let efi = work.path().join(format!("{compression}.efi"));
        // The RAM root model: the initramfs itself is what the compression applies to.
        let args = ["--root", "ram", "--compression", compression, "--cmdline", TINY_CMDLINE];
        build(root.to_str().unwrap(), &efi, &args);
        // Direct kernel boot with the UKI's own kernel and initramfs: the kernel's unpacker is what is tested.
        let kernel = work.path().join(format!("{compression}.linux"));
        let initrd = work.path().join(format!("{compression}.initrd"));
        std::fs::write(&kernel, pe_section(&efi, ".linux")).unwrap();
        std::fs::write(&initrd, pe_section(&efi, ".initrd")).unwrap();
        let boot = clay_qemu::Boot::Kernel { kernel, initrd: Some(initrd), cmdline: TINY_CMDLINE.into() };
        let mut opts = clay_qemu::RunOptions::new(boot);
        opts.firmware = clay_qemu::Firmware::Bios;
        let vm = clay_qemu::Vm::prepare(&opts, &mut |n| eprintln!("{n}")).unwrap();
        let console = vm.run_until(TINY_MARKER, std::time::Duration::from_secs(120)).unwrap();
        assert!(console.contains("tiny: pid 1"), "{compression}:\n{console}");
    }
}

#[test]
fn several_formats_in_one_run_share_the_work_and_the_kernel_files_boot() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let base = work.path().join("out/tiny");
    let out = clay()
        .args(["build", root.to_str().unwrap(), "-f", "efi", "-f", "kernel", "-f", "tar", "-o", base.to_str().unwrap()])
        .args(["--cmdline", TINY_CMDLINE])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("initramfs:").count(), 1, "one initramfs for every format:\n{stderr}");
    let file = |ext: &str| work.path().join(format!("out/tiny.{ext}"));
    // The kernel files are the UKI's own kernel and initramfs, and they boot by direct kernel boot.
    let efi = file("efi");
    assert!(std::fs::read(file("vmlinuz")).unwrap() == pe_section(&efi, ".linux"));
    assert!(std::fs::read(file("initrd")).unwrap() == pe_section(&efi, ".initrd"));
    assert_eq!(std::fs::read_to_string(file("cmdline")).unwrap(), format!("{TINY_CMDLINE}\n"));
    let boot =
        clay_qemu::Boot::Kernel { kernel: file("vmlinuz"), initrd: Some(file("initrd")), cmdline: TINY_CMDLINE.into() };
    let mut opts = clay_qemu::RunOptions::new(boot);
    opts.firmware = clay_qemu::Firmware::Bios;
    let vm = clay_qemu::Vm::prepare(&opts, &mut |n| eprintln!("{n}")).unwrap();
    let console = vm.run_until(TINY_MARKER, std::time::Duration::from_secs(120)).unwrap();
    assert!(console.contains("tiny: pid 1"), "{console}");
    // The root filesystem tarball holds the same system: building from it gives the same UKI, byte for byte.
    let again = work.path().join("again.efi");
    let st = clay()
        .args([
            "build",
            &format!("tar:{}", file("tar").display()),
            "-o",
            again.to_str().unwrap(),
            "--cmdline",
            TINY_CMDLINE,
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        std::fs::read(&again).unwrap() == std::fs::read(&efi).unwrap(),
        "directory → tar → UKI differs from directory → UKI"
    );
}
