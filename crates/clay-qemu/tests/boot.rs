//! Real boots under QEMU: direct kernel boot of a busybox initramfs, an EFI application and a UKI from the virtual
//! FAT drive under OVMF, and the KVM probe. A missing qemu, OVMF, kernel or tool fails the test, naming the package.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clay_qemu::{Accel, Boot, Firmware, QemuError, RunOptions, Vm};

/// Printed by the test initramfs's /init; built by the shell from `40+2` so only a running /init can print it.
const MARKER: &str = "CLAY-QEMU-42-OK";
const INIT: &str = "#!/bin/busybox sh\n/bin/busybox echo \"CLAY-QEMU-$((40+2))-OK\"\n/bin/busybox poweroff -f\n";
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";
const SYSTEMD_BOOT: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
const SYSTEMD_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// Generous: two of these boots may share the two cores under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn require(path: &str, package: &str) -> PathBuf {
    assert!(Path::new(path).is_file(), "{path} is missing; install the {package} package");
    PathBuf::from(path)
}

fn test_initramfs(dir: &Path) -> PathBuf {
    let cpio = clay_testkit::busybox_initramfs(INIT);
    let path = dir.join("initrd.cpio");
    std::fs::write(&path, cpio).unwrap();
    path
}

fn kernel_options(dir: &Path) -> RunOptions {
    let mut opts = RunOptions::new(Boot::Kernel {
        kernel: clay_testkit::example_kernel(),
        initrd: Some(test_initramfs(dir)),
        cmdline: CMDLINE.to_owned(),
    });
    // SeaBIOS reaches the kernel in a fraction of OVMF's time.
    opts.firmware = Firmware::Bios;
    opts
}

fn prepare(opts: &RunOptions) -> Vm {
    Vm::prepare(opts, &mut |notice| eprintln!("notice: {notice}")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn direct_kernel_boot_reaches_marker() {
    let dir = tempfile::tempdir().unwrap();
    let vm = prepare(&kernel_options(dir.path()));
    let started = Instant::now();
    let output = vm.run_until(MARKER, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("reached the marker in {:?} under {:?}", started.elapsed(), vm.accel());
    assert!(output.contains(MARKER));
}

#[test]
fn direct_kernel_boot_runs_to_poweroff() {
    let dir = tempfile::tempdir().unwrap();
    let vm = prepare(&kernel_options(dir.path()));
    let output = vm.run_to_exit(BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(output.contains(MARKER), "{output}");
    assert!(output.contains("reboot: Power down"), "{output}");
}

#[test]
fn exit_before_marker_quotes_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let vm = prepare(&kernel_options(dir.path()));
    let err = vm.run_until("NEVER-PRINTED", BOOT_TIMEOUT).unwrap_err();
    assert!(matches!(err, QemuError::ExitedBeforeMarker { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message
            .starts_with("qemu exited with status 0 before printing `NEVER-PRINTED`; its last console lines were:\n"),
        "{message}"
    );
    assert!(message.contains(MARKER), "{message}");
}

#[test]
fn timeout_kills_qemu_and_quotes_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let vm = prepare(&kernel_options(dir.path()));
    let started = Instant::now();
    let err = vm.run_until(MARKER, Duration::from_millis(1500)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(matches!(err, QemuError::MarkerTimeout { .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("qemu did not print `{MARKER}` within 1.5s;")), "{err}");
}

#[test]
fn efi_app_boots_from_the_virtual_fat_drive() {
    let app = require(SYSTEMD_BOOT, "systemd-boot-efi");
    let vm = prepare(&RunOptions::new(Boot::Efi(app)));
    // systemd-boot's menu, which finds no entries but offers to reboot into the firmware: only it prints this.
    let output = vm.run_until("Reboot Into Firmware Interface", BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(output.contains("BdsDxe: starting Boot"), "OVMF started a boot option: {output}");
}

/// Reads SizeOfImage from a PE file's optional header (PE/COFF spec, "Optional Header Windows-Specific Fields").
fn pe_size_of_image(pe: &[u8]) -> u64 {
    let at = |offset: usize| u32::from_le_bytes(pe[offset..offset + 4].try_into().unwrap());
    let optional_header = usize::try_from(at(0x3c)).unwrap() + 24;
    u64::from(at(optional_header + 56))
}

#[test]
fn uki_boots_from_the_virtual_fat_drive() {
    let dir = tempfile::tempdir().unwrap();
    let stub = require(SYSTEMD_STUB, "systemd-boot-efi");
    let kernel = clay_testkit::example_kernel();
    let initrd = test_initramfs(dir.path());
    let cmdline = dir.path().join("cmdline");
    std::fs::write(&cmdline, CMDLINE).unwrap();

    // Sections go after the stub's image, the kernel on a 2 MiB boundary, as ukify lays them out.
    let cmdline_vma = pe_size_of_image(&std::fs::read(&stub).unwrap()).next_multiple_of(0x1000);
    let linux_vma = (cmdline_vma + 0x1000).next_multiple_of(0x20_0000);
    let initrd_vma = (linux_vma + std::fs::metadata(&kernel).unwrap().len()).next_multiple_of(0x1000);
    let uki = dir.path().join("test.efi");
    let section = |name: &str, file: &Path, vma: u64| {
        [
            "--add-section".to_owned(),
            format!("{name}={}", file.display()),
            "--change-section-vma".to_owned(),
            format!("{name}={vma:#x}"),
        ]
    };
    let status = Command::new("objcopy")
        .args(section(".cmdline", &cmdline, cmdline_vma))
        .args(section(".linux", &kernel, linux_vma))
        .args(section(".initrd", &initrd, initrd_vma))
        .arg(&stub)
        .arg(&uki)
        .status()
        .unwrap_or_else(|e| panic!("objcopy could not be run ({e}); install the binutils package"));
    assert!(status.success(), "objcopy failed to build the test UKI");

    let vm = prepare(&RunOptions::new(Boot::Efi(uki)));
    let output = vm.run_until(MARKER, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(output.contains("BdsDxe: starting Boot"), "{output}");
}

/// The probe decides by trying KVM. On this project's machines KVM is broken in a way only a real boot shows, so it
/// must pick TCG and say so once; where it picks KVM, a KVM boot must then really work. `CLAY_TEST_EXPECT_ACCEL`
/// (`kvm` or `tcg`) pins the expected verdict.
#[test]
fn auto_accel_tries_kvm_and_notices_a_fallback_once() {
    let dir = tempfile::tempdir().unwrap();
    let opts = kernel_options(dir.path());
    let mut notices = Vec::new();
    let started = Instant::now();
    let vm = Vm::prepare(&opts, &mut |notice| notices.push(notice.to_owned())).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("prepare (with the probe unless another test ran it first) took {:?}: {notices:?}", started.elapsed());
    match vm.accel() {
        Accel::Tcg => {
            assert_eq!(notices.len(), 1, "{notices:?}");
            let notice = &notices[0];
            assert!(notice.starts_with("KVM is not usable here ("), "{notice}");
            assert!(notice.ends_with("); using TCG software emulation, which is slower"), "{notice}");
            assert!(vm.command().get_args().any(|a| a == "tcg"));
        }
        Accel::Kvm => {
            assert!(notices.is_empty(), "{notices:?}");
            vm.run_until(MARKER, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("the probe chose KVM, but: {e}"));
        }
        Accel::Auto => panic!("prepare must resolve Auto"),
    }
    if let Ok(expected) = std::env::var("CLAY_TEST_EXPECT_ACCEL") {
        let got = if vm.accel() == Accel::Kvm { "kvm" } else { "tcg" };
        assert_eq!(got, expected.to_ascii_lowercase(), "CLAY_TEST_EXPECT_ACCEL");
    }

    // An explicit accelerator skips the probe and says nothing.
    let mut tcg = opts.clone();
    tcg.accel = Accel::Tcg;
    let vm = Vm::prepare(&tcg, &mut |notice| panic!("unexpected notice: {notice}")).unwrap();
    assert_eq!(vm.accel(), Accel::Tcg);
}
