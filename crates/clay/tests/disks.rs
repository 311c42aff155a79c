//! Disks and VM images: each proven by its reference tool and by booting it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

#[test]
fn raw_disk_passes_sgdisk_and_fsck_and_boots_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["efi", "raw"], &[]);
    let img = with_ext(&base, "img");
    let verify = sh(&format!("sgdisk -v {}", img.display()));
    assert!(verify.contains("No problems found"), "{verify}");
    let table = sh(&format!("sgdisk -p {}", img.display()));
    assert!(table.contains("EF00") && table.contains("ESP"), "{table}");
    // The ESP alone passes fsck.vfat, and holds the UKI byte for byte at the removable-media path.
    let esp = extract_esp(work.path(), &img);
    sh(&format!("fsck.vfat -n {}", esp.display()));
    let copied = sh(&format!("mcopy -n -i {} ::/EFI/BOOT/BOOTX64.EFI - | sha256sum", esp.display()));
    let original = sh(&format!("sha256sum < {}", with_ext(&base, "efi").display()));
    assert_eq!(copied, original, "the ESP holds the UKI");
    // Sparse: far fewer blocks allocated than the disk's size.
    let allocated = sh(&format!("du -B1 {} | cut -f1", img.display())).trim().parse::<u64>().unwrap();
    assert!(allocated < std::fs::metadata(&img).unwrap().len() / 2, "the raw disk is sparse");

    let shown = String::from_utf8(clay_ok(&["inspect", img.to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("GPT disk") && shown.contains("EFI System Partition"), "{shown}");
    assert!(shown.contains("EFI/BOOT/BOOTX64.EFI"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_slice(&clay_ok(&["inspect", "--json", img.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(json["partitions"][0]["files"][0]["path"], "EFI/BOOT/BOOTX64.EFI");

    let (status, console, stderr) = clay_run(&[img.to_str().unwrap()], 240);
    assert!(status.success() && console.contains(TINY_MARKER), "{stderr}\n{console}");
}

/// The ESP of a raw disk, copied out of it into `esp.img` in `work`.
fn extract_esp(work: &Path, img: &Path) -> PathBuf {
    let esp = work.join("esp.img");
    sh(&format!(
        "start=$(sgdisk -i 1 {img} | awk '/First sector/ {{print $3}}'); end=$(sgdisk -i 1 {img} | awk '/Last sector/ {{print $3}}')
         dd if={img} of={esp} bs=512 skip=$start count=$((end - start + 1)) status=none",
        img = img.display(),
        esp = esp.display()
    ));
    esp
}

#[test]
fn hybrid_raw_disk_boots_under_ovmf_and_seabios() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["raw"], &["--firmware", "hybrid"]);
    let img = with_ext(&base, "img");
    let verify = sh(&format!("sgdisk -v {}", img.display()));
    assert!(verify.contains("No problems found"), "{verify}");
    // gptmbr.bin boots the partition marked legacy BIOS bootable (attribute bit 2).
    let esp_info = sh(&format!("sgdisk -i 1 {}", img.display()));
    assert!(esp_info.contains("Attribute flags: 0000000000000004"), "{esp_info}");
    let mbr = std::fs::read(&img).unwrap()[..440].to_vec();
    let gptmbr = std::fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").unwrap();
    assert!(mbr.starts_with(&gptmbr), "the MBR holds syslinux's gptmbr.bin");
    // The ESP with syslinux's boot sector still passes fsck.vfat (boot sector and its backup agree), and
    // syslinux boots the kernel with the UKI's command line.
    let esp = extract_esp(work.path(), &img);
    sh(&format!("fsck.vfat -n {}", esp.display()));
    let cfg = sh(&format!("mcopy -n -i {} ::/syslinux/syslinux.cfg -", esp.display()));
    assert!(cfg.contains(&format!("APPEND initrd=/syslinux/initrd.img {TINY_CMDLINE}")), "{cfg}");
    for firmware in ["bios", "uefi"] {
        let (status, console, stderr) = clay_run(&[img.to_str().unwrap(), "--firmware", firmware], 240);
        assert!(status.success() && console.contains(TINY_MARKER), "under {firmware}: {stderr}\n{console}");
    }
}

#[test]
fn bios_only_qcow2_boots_under_seabios_and_has_no_uki() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["raw", "qcow2"], &["--firmware", "bios"]);
    let shown = String::from_utf8(clay_ok(&["inspect", with_ext(&base, "img").to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("syslinux/ldlinux.sys") && !shown.contains("BOOTX64.EFI"), "{shown}");
    let (status, console, stderr) = clay_run(&[with_ext(&base, "qcow2").to_str().unwrap(), "--firmware", "bios"], 240);
    assert!(status.success() && console.contains(TINY_MARKER), "{stderr}\n{console}");
}

#[test]
fn vm_formats_hold_the_raw_disk_and_qcow2_boots() {
    let work = tempfile::tempdir().unwrap();
    let formats = ["raw", "qcow2", "vmdk", "vhdx", "vdi", "vhd"];
    let base = build_tiny(work.path(), "tiny", &formats, &[]);
    let img = with_ext(&base, "img");
    for (ext, qemu_name) in [("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vhdx", "vhdx"), ("vdi", "vdi"), ("vhd", "vpc")] {
        let file = with_ext(&base, ext);
        let info = sh(&format!("qemu-img info --output=json {}", file.display()));
        assert!(info.contains(&format!("\"format\": \"{qemu_name}\"")), "{ext}: {info}");
        if ext != "vhd" {
            // qemu has no consistency check for VHD; compare covers it.
            sh(&format!("qemu-img check -f {qemu_name} {}", file.display()));
        }
        let same = sh(&format!("qemu-img compare -f raw -F {qemu_name} {} {}", img.display(), file.display()));
        assert!(same.contains("Images are identical"), "{ext}: {same}");
    }
    let shown = String::from_utf8(clay_ok(&["inspect", with_ext(&base, "vdi").to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("vdi image"), "{shown}");
    let (status, console, stderr) = clay_run(&[with_ext(&base, "qcow2").to_str().unwrap()], 240);
    assert!(status.success() && console.contains(TINY_MARKER), "{stderr}\n{console}");
}

#[test]
fn disks_are_bit_identical_across_builds_and_grow_with_size() {
    let work = tempfile::tempdir().unwrap();
    // Hybrid disks carry everything a UEFI disk does, plus syslinux patched for where it landed.
    let a = build_tiny(work.path(), "a", &["raw", "qcow2"], &["--firmware", "hybrid"]);
    sh(&format!("find {} -exec touch -h {{}} +", work.path().join("rootfs").display()));
    let b = build_tiny(work.path(), "b", &["raw", "qcow2"], &["--firmware", "hybrid"]);
    for ext in ["img", "qcow2"] {
        let (x, y) = (std::fs::read(with_ext(&a, ext)).unwrap(), std::fs::read(with_ext(&b, ext)).unwrap());
        assert!(x == y, "two .{ext} builds differ");
    }
    let big = build_tiny(work.path(), "big", &["raw"], &["--size", "1G"]);
    assert_eq!(std::fs::metadata(with_ext(&big, "img")).unwrap().len(), 1 << 30);
    let verify = sh(&format!("sgdisk -v {}", with_ext(&big, "img").display()));
    assert!(verify.contains("No problems found"), "{verify}");
}

#[test]
fn a_size_too_small_or_an_unknown_format_is_refused_with_nothing_written() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let out = work.path().join("out");
    let err =
        clay_err(clay().args(["build", root.to_str().unwrap(), "-f", "raw", "--size", "10M", "-o"]).arg(out.join("x")));
    assert!(err.contains("the partitions need a disk of at least"), "{err}");
    assert!(err.contains("but the requested size is 10485760 bytes"), "{err}");
    let err = clay_err(clay().args(["build", root.to_str().unwrap(), "-f", "floppy", "-o"]).arg(out.join("x")));
    assert!(err.contains("invalid value 'floppy'"), "{err}");
    let err = clay_err(
        clay().args(["build", root.to_str().unwrap(), "-f", "raw", "--size", "lots", "-o"]).arg(out.join("x")),
    );
    assert!(err.contains("`lots` is not a size; write it like 512M or 2G"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn hybrid_iso_boots_as_cdrom_on_both_firmwares_and_as_a_disk_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let base = build_tiny(work.path(), "tiny", &["iso"], &["--firmware", "hybrid"]);
    let iso = with_ext(&base, "iso");
    let report = sh(&format!("xorriso -indev {} -report_el_torito plain 2>/dev/null", iso.display()));
    let entries: Vec<&str> = report.lines().filter(|l| l.starts_with("El Torito boot img :")).collect();
    assert!(entries.iter().any(|l| l.contains(" BIOS ")) && entries.iter().any(|l| l.contains(" UEFI ")), "{report}");
    let verify = sh(&format!("sgdisk -v {}", iso.display()));
    assert!(verify.contains("No problems found"), "{verify}");
    // clay inspect finds the same two entries, and the UKI in the hybrid GPT's ESP.
    let shown = String::from_utf8(clay_ok(&["inspect", iso.to_str().unwrap()]).stdout).unwrap();
    assert!(shown.contains("ISO 9660 image") && shown.contains("volume CLAYLINUX"), "{shown}");
    assert!(shown.contains("El Torito BIOS entry") && shown.contains("El Torito UEFI entry"), "{shown}");
    assert!(shown.contains("hybrid: MBR and GPT") && shown.contains("EFI/BOOT/BOOTX64.EFI"), "{shown}");
    for firmware in ["bios", "uefi"] {
        let (status, console, stderr) = clay_run(&[iso.to_str().unwrap(), "--firmware", firmware], 240);
        assert!(status.success() && console.contains(TINY_MARKER), "CD-ROM under {firmware}: {stderr}\n{console}");
    }
    // The same file written to a USB stick: a disk, booted by OVMF through the hybrid GPT.
    let boot = clay_qemu::Boot::Disk { path: iso.clone(), format: clay_qemu::DiskFormat::Raw };
    let vm = clay_qemu::Vm::prepare(&clay_qemu::RunOptions::new(boot), &mut |n| eprintln!("{n}")).unwrap();
    let console = vm.run_until(TINY_MARKER, std::time::Duration::from_secs(240)).unwrap();
    assert!(console.contains("tiny: pid 1"), "{console}");
}

#[test]
fn isos_are_bit_identical_across_builds() {
    let work = tempfile::tempdir().unwrap();
    let a = build_tiny(work.path(), "a", &["iso"], &["--firmware", "hybrid"]);
    sh(&format!("find {} -exec touch -h {{}} +", work.path().join("rootfs").display()));
    let b = build_tiny(work.path(), "b", &["iso"], &["--firmware", "hybrid"]);
    assert!(std::fs::read(with_ext(&a, "iso")).unwrap() == std::fs::read(with_ext(&b, "iso")).unwrap());
}

/// Runs clay in a private mount namespace where `hidden` directories of this machine are empty: a machine without
/// the package that installs them. Needs root, as CI has.
fn clay_without(hidden: &[&str], args: &[&str]) -> (bool, String) {
    let mounts: String = hidden.iter().map(|d| format!("mount -t tmpfs clay-hidden {d} && ")).collect();
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!("{mounts}exec {} {}", env!("CARGO_BIN_EXE_clay"), quoted.join(" "));
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn missing_boot_code_packages_are_named() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let out = work.path().join("out");
    let target = out.join("x");
    let (ok, err) = clay_without(
        &["/usr/lib/ISOLINUX"],
        &["build", root.to_str().unwrap(), "-f", "iso", "--firmware", "bios", "-o", target.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("install the isolinux and syslinux-common packages"), "{err}");
    let (ok, err) = clay_without(
        &["/usr/lib/systemd/boot/efi"],
        &["build", root.to_str().unwrap(), "-f", "efi", "-o", target.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("no systemd EFI stub found in the image or on this machine"), "{err}");
    assert!(err.contains("install systemd-boot-efi"), "{err}");
    let (ok, err) = clay_without(
        &["/usr/lib/syslinux/mbr", "/usr/lib/SYSLINUX"],
        &["build", root.to_str().unwrap(), "-f", "raw", "--firmware", "hybrid", "-o", target.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("BIOS boot of a disk needs syslinux"), "{err}");
    assert!(err.contains("install the syslinux and syslinux-common packages"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}
