//! Real boots under QEMU (TCG; KVM is not used): one hybrid ISO with isolinux for BIOS and a UKI in an embedded ESP
//! for UEFI, booted as a CD-ROM and as a disk under SeaBIOS and OVMF, each until the initramfs prints its marker.
//! A missing qemu, OVMF, kernel or tool fails the test, naming the package.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;

/// Printed by the test initramfs's /init; built by the shell from `40+2` so only a running /init can print it.
const MARKER: &str = "CLAY-ISO-42-OK";
const INIT: &str = "#!/bin/busybox sh\n/bin/busybox echo \"CLAY-ISO-$((40+2))-OK\"\n/bin/busybox poweroff -f\n";
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";
const ISOLINUX_CFG: &str =
    "DEFAULT linux\nLABEL linux\n  KERNEL /boot/vmlinuz\n  APPEND initrd=/boot/initrd.img console=ttyS0 panic=-1 quiet\n";
const SYSTEMD_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Generous for TCG on two cores; a boot takes 10-40 s.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// One boot at a time: TCG on two cores is slow enough without sharing them.
static QEMU: Mutex<()> = Mutex::new(());

/// Reads SizeOfImage from a PE file's optional header (PE/COFF spec, "Optional Header Windows-Specific Fields").
fn pe_size_of_image(pe: &[u8]) -> u64 {
    let at = |offset: usize| u32::from_le_bytes(pe[offset..offset + 4].try_into().unwrap());
    let optional_header = usize::try_from(at(0x3c)).unwrap() + 24;
    u64::from(at(optional_header + 56))
}

/// A UKI (systemd-stub + kernel + initrd + cmdline) laid out as ukify does, with objcopy.
fn test_uki(dir: &Path, kernel: &Path, initrd: &Path) -> PathBuf {
    let stub = Path::new(SYSTEMD_STUB);
    let stub_bytes = require(SYSTEMD_STUB, "systemd-boot-efi");
    let cmdline = write_temp(dir, "cmdline", CMDLINE.as_bytes());
    let cmdline_vma = pe_size_of_image(&stub_bytes).next_multiple_of(0x1000);
    let linux_vma = (cmdline_vma + 0x1000).next_multiple_of(0x20_0000);
    let initrd_vma = (linux_vma + std::fs::metadata(kernel).unwrap().len()).next_multiple_of(0x1000);
    let uki = dir.join("BOOTX64.EFI");
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
        .args(section(".linux", kernel, linux_vma))
        .args(section(".initrd", initrd, initrd_vma))
        .arg(stub)
        .arg(&uki)
        .status()
        .unwrap_or_else(|e| panic!("objcopy could not be run ({e}); install the binutils package"));
    assert!(status.success(), "objcopy failed to build the test UKI");
    uki
}

/// Builds the hybrid test ISO, streaming the kernel from its file; `esp_mib` sizes the embedded ESP.
fn build_iso(dir: &Path, esp_mib: u32) -> PathBuf {
    let kernel = clay_testkit::example_kernel();
    let initrd = write_temp(dir, "initrd.img", &clay_testkit::busybox_initramfs(INIT));
    let uki = test_uki(dir, &kernel, &initrd);
    let esp = fat_image(dir, esp_mib * 1024, &[(&uki, "EFI/BOOT/BOOTX64.EFI")]);
    let files = [
        file("boot/isolinux/isolinux.bin", require(ISOLINUX_BIN, "isolinux"), 0o644),
        file("boot/isolinux/ldlinux.c32", require(LDLINUX_C32, "syslinux-common"), 0o644),
        file("boot/isolinux/isolinux.cfg", ISOLINUX_CFG, 0o644),
        file("boot/initrd.img", std::fs::read(&initrd).unwrap(), 0o644),
        file("boot/efiboot.img", esp, 0o644),
    ];
    let mut kernel_file = std::fs::File::open(&kernel).unwrap();
    let kernel_len = kernel_file.metadata().unwrap().len();
    let mut readers: Vec<std::io::Cursor<&[u8]>> = files.iter().map(|f| std::io::Cursor::new(&f.data[..])).collect();
    let mut iso_files: Vec<clay_iso::IsoFile<'_>> = files
        .iter()
        .zip(readers.iter_mut())
        .map(|(f, r)| clay_iso::IsoFile { path: &f.path, len: f.data.len() as u64, data: r, mode: f.mode })
        .collect();
    iso_files.push(clay_iso::IsoFile { path: "boot/vmlinuz", len: kernel_len, data: &mut kernel_file, mode: 0o644 });
    let path = dir.join(format!("boot-{esp_mib}.iso"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    clay_iso::write_iso(&mut iso_files, &boot_options(isohdpfx(), true), &mut out).unwrap();
    drop(out);
    path
}

/// The shared test image (built once per test run) with an ESP small enough for a real El Torito sector count.
/// It lives in cargo's per-target temporary directory, replaced on each run, so runs do not pile up images.
fn test_iso() -> &'static Path {
    static ISO: OnceLock<PathBuf> = OnceLock::new();
    ISO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clay-iso-boot");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        build_iso(&dir, 24)
    })
}

/// Runs qemu until the marker appears (then kills it) or the timeout passes (then kills it and fails).
fn boot(args: &[String]) -> String {
    let _one_at_a_time = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "512", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("qemu-system-x86_64 could not be run ({e}); install the qemu-system-x86 package"));
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut console = Vec::new();
    let outcome = loop {
        if String::from_utf8_lossy(&console).contains(MARKER) {
            break Ok(());
        }
        let left = BOOT_TIMEOUT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(chunk) => console.extend_from_slice(&chunk),
            Err(mpsc::RecvTimeoutError::Timeout) => break Err("timed out"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Err("qemu exited"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let console = String::from_utf8_lossy(&console).into_owned();
    let tail: Vec<&str> = console.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    match outcome {
        Ok(()) => {
            eprintln!("reached the marker in {:.1?}", started.elapsed());
            console
        }
        Err(why) => panic!(
            "{why} after {:.1?} before printing {MARKER}; last console lines:\n{}",
            started.elapsed(),
            tail.join("\n")
        ),
    }
}

fn ovmf_args(dir: &Path) -> Vec<String> {
    require(OVMF_CODE, "ovmf");
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::write(&vars, require(OVMF_VARS, "ovmf")).unwrap();
    vec![
        "-machine".into(),
        "q35".into(),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
    ]
}

fn cdrom_args(iso: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format=raw,media=cdrom,if=none,id=cd,readonly=on", iso.display()),
        "-device".into(),
        "ide-cd,drive=cd,bootindex=0".into(),
    ]
}

fn disk_args(iso: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format=raw,if=none,id=disk,readonly=on", iso.display()),
        "-device".into(),
        "virtio-blk-pci,drive=disk,bootindex=0".into(),
    ]
}

#[test]
fn bios_boots_the_cdrom_through_isolinux() {
    let iso = test_iso();
    let console = boot(&["-cdrom".to_owned(), iso.display().to_string()]);
    assert!(console.contains(MARKER));
}

#[test]
fn bios_boots_the_image_as_a_disk_through_the_hybrid_mbr() {
    let console = boot(&disk_args(test_iso()));
    assert!(console.contains(MARKER));
}

#[test]
fn uefi_boots_the_cdrom_through_the_el_torito_efi_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = ovmf_args(dir.path());
    args.extend(cdrom_args(test_iso()));
    let console = boot(&args);
    assert!(console.contains("BdsDxe: starting Boot"), "{console}");
}

#[test]
fn uefi_boots_the_image_as_a_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = ovmf_args(dir.path());
    args.extend(disk_args(test_iso()));
    let console = boot(&args);
    assert!(console.contains("BdsDxe: starting Boot"), "{console}");
}

/// OVMF also finds El Torito entries on a disk, so the test above cannot tell which way it went. Here the boot
/// record (sector 17) is blanked in a copy: only the GPT's ESP is left to boot from.
#[test]
fn uefi_boots_the_image_as_a_disk_through_the_gpt_esp_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut iso = std::fs::read(test_iso()).unwrap();
    assert_eq!(&iso[17 * 2048 + 1..17 * 2048 + 6], b"CD001");
    iso[17 * 2048..18 * 2048].fill(0);
    let info = clay_iso::read_iso_info(&mut std::io::Cursor::new(&iso)).unwrap();
    assert!(info.boot_catalog.is_none() && info.gpt, "{info:?}");
    let copy = write_temp(dir.path(), "no-el-torito.iso", &iso);
    let mut args = ovmf_args(dir.path());
    args.extend(disk_args(&copy));
    let console = boot(&args);
    assert!(console.contains("BdsDxe: starting Boot"), "{console}");
}

/// An ESP over 65535 sectors gets sector count 0 in the catalog, as xorriso writes; OVMF must still boot it.
#[test]
fn uefi_boots_the_cdrom_with_an_esp_too_big_to_count() {
    let dir = tempfile::tempdir().unwrap();
    let iso = build_iso(dir.path(), 40);
    let info = clay_iso::read_iso_info(&mut std::fs::File::open(&iso).unwrap()).unwrap();
    assert_eq!(info.boot_entries[1].sector_count, 0, "{info:?}");
    let mut args = ovmf_args(dir.path());
    args.extend(cdrom_args(&iso));
    boot(&args);
}
