//! Shared by the integration tests: building images from in-memory files and making the boot payloads.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use clay_iso::{BiosBoot, IsoFile, IsoOptions, UefiBoot};

pub const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
pub const ISOHDPFX_BIN: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
pub const LDLINUX_C32: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
pub const TIMESTAMP: i64 = 1_700_000_000;

pub fn require(path: &str, package: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path} is needed ({e}); install the {package} package"))
}

/// An in-memory file for [`build`]: path, content, permission bits.
pub struct MemFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

pub fn file(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> MemFile {
    MemFile { path: path.to_owned(), data: data.into(), mode }
}

pub fn options() -> IsoOptions<'static> {
    IsoOptions {
        volume_id: "CLAYLINUX".to_owned(),
        timestamp: TIMESTAMP,
        bios: None,
        uefi: None,
        hybrid: false,
        seed: [7; 16],
    }
}

/// Options booting `boot/isolinux/isolinux.bin` (with isohdpfx.bin when hybrid) and `boot/efiboot.img`.
pub fn boot_options(mbr: &'static [u8], hybrid: bool) -> IsoOptions<'static> {
    IsoOptions {
        bios: Some(BiosBoot { isolinux_bin_path: "boot/isolinux/isolinux.bin", mbr: Some(mbr) }),
        uefi: Some(UefiBoot { efi_image_path: "boot/efiboot.img" }),
        hybrid,
        ..options()
    }
}

pub fn build(files: &[MemFile], opts: &IsoOptions<'_>) -> Vec<u8> {
    try_build(files, opts).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_build(files: &[MemFile], opts: &IsoOptions<'_>) -> Result<Vec<u8>, clay_iso::IsoError> {
    let mut readers: Vec<Cursor<&[u8]>> = files.iter().map(|f| Cursor::new(&f.data[..])).collect();
    let mut iso_files: Vec<IsoFile<'_>> = files
        .iter()
        .zip(readers.iter_mut())
        .map(|(f, r)| IsoFile { path: &f.path, len: f.data.len() as u64, data: r, mode: f.mode })
        .collect();
    let mut out = Vec::new();
    let n = clay_iso::write_iso(&mut iso_files, opts, &mut out)?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

/// A FAT image of `kib` KiB made with mkfs.vfat, holding `files` (host path, path in the image).
pub fn fat_image(dir: &Path, kib: u32, files: &[(&Path, &str)]) -> Vec<u8> {
    let img = dir.join(format!("esp-{kib}.img"));
    let _ = std::fs::remove_file(&img);
    let mut script = format!("mkfs.vfat -i 12345678 -n ESP -C {img} {kib} >/dev/null\n", img = img.display());
    for (host, inside) in files {
        let parent = Path::new(inside).parent().unwrap();
        let mut at = PathBuf::new();
        for part in parent.components() {
            at.push(part);
            script += &format!("mmd -D s -i {} ::/{} 2>/dev/null || true\n", img.display(), at.display());
        }
        script += &format!("mcopy -i {} {} ::/{}\n", img.display(), host.display(), inside);
    }
    clay_testkit::sh(&script);
    std::fs::read(&img).unwrap()
}

/// The files of a BIOS+UEFI boot tree with a placeholder kernel, for the structural tests.
pub fn boot_tree(esp: Vec<u8>) -> Vec<MemFile> {
    vec![
        file("boot/isolinux/isolinux.bin", require(ISOLINUX_BIN, "isolinux"), 0o644),
        file("boot/isolinux/ldlinux.c32", require(LDLINUX_C32, "syslinux-common"), 0o644),
        file("boot/isolinux/isolinux.cfg", "DEFAULT linux\n", 0o644),
        file("boot/efiboot.img", esp, 0o644),
        file("boot/vmlinuz", vec![0x5a; 5000], 0o644),
    ]
}

pub fn isohdpfx() -> &'static [u8] {
    Box::leak(require(ISOHDPFX_BIN, "isolinux").into_boxed_slice())
}

pub fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}
