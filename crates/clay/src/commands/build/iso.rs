//! The hybrid ISO: El Torito entries for UEFI (an ESP image holding the UKI) and BIOS (isolinux loading the same
//! kernel, initramfs and command line), with the MBR and GPT that let the same file boot from a USB stick.

use std::io::{BufReader, BufWriter, Write};

use anyhow::{bail, Context, Result};
use clay_fat::{FatLayout, VolumeReader};
use clay_tree::{Content, Tree};

use super::bios::syslinux_cfg;
use super::disk::{esp_fat_options, ESP_BOOT_PATH};
use super::read_file;
use crate::output::PendingOutput;

/// Where isolinux and its pieces live, in the image or on this machine (Debian/Ubuntu: packages isolinux and
/// syslinux-common; Fedora/Arch keep them in /usr/share/syslinux).
const ISOLINUX_BIN: &[&str] =
    &["/usr/lib/ISOLINUX/isolinux.bin", "/usr/share/syslinux/isolinux.bin", "/usr/lib/syslinux/bios/isolinux.bin"];
const ISOHYBRID_MBR: &[&str] =
    &["/usr/lib/ISOLINUX/isohdpfx.bin", "/usr/share/syslinux/isohdpfx.bin", "/usr/lib/syslinux/bios/isohdpfx.bin"];
const LDLINUX_C32: &[&str] = &[
    "/usr/lib/syslinux/modules/bios/ldlinux.c32",
    "/usr/share/syslinux/ldlinux.c32",
    "/usr/lib/syslinux/bios/ldlinux.c32",
];
/// The ESP image inside the ISO, which the UEFI El Torito entry and the hybrid GPT's ESP both point at.
const EFI_IMAGE: &str = "boot/efiboot.img";
/// A little free space in the ISO's ESP image: it is read-only, so only the UKI has to fit.
const ISO_ESP_HEADROOM: u64 = 1 << 20;

/// The BIOS boot code: isolinux, its core module, and the isohybrid MBR.
pub struct BiosCode {
    isolinux: Vec<u8>,
    ldlinux: Vec<u8>,
    mbr: Vec<u8>,
}

impl BiosCode {
    /// Takes the image's isolinux, else this machine's.
    pub fn find(tree: &Tree) -> Result<Self> {
        let find = |paths: &[&str]| -> Result<Option<Vec<u8>>> {
            match read_file(tree, paths)? {
                Some(bytes) => Ok(Some(bytes)),
                None => Ok(paths.iter().find_map(|p| std::fs::read(p).ok())),
            }
        };
        match (find(ISOLINUX_BIN)?, find(LDLINUX_C32)?, find(ISOHYBRID_MBR)?) {
            (Some(isolinux), Some(ldlinux), Some(mbr)) => Ok(BiosCode { isolinux, ldlinux, mbr }),
            _ => bail!(
                "BIOS boot needs isolinux.bin, isohdpfx.bin and ldlinux.c32, found neither in the image nor on this \
                 machine; install the isolinux and syslinux-common packages (Debian/Ubuntu) or syslinux (Fedora/Arch)"
            ),
        }
    }
}

/// What the ISO boots with.
pub struct IsoInputs<'a> {
    pub uki: &'a Content,
    pub kernel: &'a Content,
    pub initrd: &'a Content,
    pub cmdline: &'a str,
    pub uefi: bool,
    pub bios: Option<&'a BiosCode>,
    pub seed: [u8; 16],
    pub epoch: Option<i64>,
}

pub fn write(output: &mut PendingOutput, inputs: &IsoInputs<'_>) -> Result<()> {
    let target = output.target().display().to_string();
    let write_err = || format!("cannot write `{target}`");
    let esp = if inputs.uefi { Some(esp_layout(inputs)?) } else { None };
    let cfg = inputs.bios.map(|_| isolinux_cfg(inputs.cmdline));

    // Every reader is created up front: IsoFile borrows them for the whole write.
    let mut esp_reader = match &esp {
        Some(layout) => {
            let uki = BufReader::with_capacity(1 << 20, inputs.uki.reader("the UKI")?);
            Some(VolumeReader::new(layout, uki).context("internal error: the ISO's ESP cannot be streamed")?)
        }
        None => None,
    };
    let mut kernel_reader = inputs.kernel.reader("the kernel")?;
    let mut initrd_reader = BufReader::with_capacity(1 << 20, inputs.initrd.reader("the initramfs")?);
    let mut files: Vec<clay_iso::IsoFile<'_>> = Vec::new();
    if let (Some(esp), Some(reader)) = (&esp, esp_reader.as_mut()) {
        files.push(clay_iso::IsoFile { path: EFI_IMAGE, len: esp.size(), data: reader, mode: 0o444 });
    }
    let (mut isolinux_r, mut ldlinux_r, mut cfg_r);
    if let (Some(code), Some(cfg)) = (inputs.bios, &cfg) {
        isolinux_r = code.isolinux.as_slice();
        ldlinux_r = code.ldlinux.as_slice();
        cfg_r = cfg.as_bytes();
        let len = |b: &[u8]| b.len() as u64;
        files.push(clay_iso::IsoFile {
            path: "boot/isolinux/isolinux.bin",
            len: len(&code.isolinux),
            data: &mut isolinux_r,
            mode: 0o444,
        });
        files.push(clay_iso::IsoFile {
            path: "boot/isolinux/ldlinux.c32",
            len: len(&code.ldlinux),
            data: &mut ldlinux_r,
            mode: 0o444,
        });
        files.push(clay_iso::IsoFile {
            path: "boot/isolinux/isolinux.cfg",
            len: len(cfg.as_bytes()),
            data: &mut cfg_r,
            mode: 0o444,
        });
        files.push(clay_iso::IsoFile {
            path: "boot/vmlinuz",
            len: inputs.kernel.len(),
            data: &mut kernel_reader,
            mode: 0o444,
        });
        files.push(clay_iso::IsoFile {
            path: "boot/initrd.img",
            len: inputs.initrd.len(),
            data: &mut initrd_reader,
            mode: 0o444,
        });
    }
    let opts = clay_iso::IsoOptions {
        volume_id: "CLAYLINUX".into(),
        timestamp: inputs.epoch.unwrap_or(0),
        bios: inputs
            .bios
            .map(|code| clay_iso::BiosBoot { isolinux_bin_path: "boot/isolinux/isolinux.bin", mbr: Some(&code.mbr) }),
        uefi: inputs.uefi.then_some(clay_iso::UefiBoot { efi_image_path: EFI_IMAGE }),
        hybrid: true,
        seed: inputs.seed,
    };
    let mut out = BufWriter::with_capacity(1 << 20, output.file()?);
    clay_iso::write_iso(&mut files, &opts, &mut out).with_context(write_err)?;
    out.flush().with_context(write_err)?;
    Ok(())
}

/// The layout of a FAT32 image holding only the UKI; the ISO streams it as metadata, the UKI's bytes and zeros,
/// with no temporary copy.
fn esp_layout(inputs: &IsoInputs<'_>) -> Result<FatLayout> {
    let size = clay_fat::fat_size_for(&[(ESP_BOOT_PATH, inputs.uki.len())], ISO_ESP_HEADROOM);
    let opts = esp_fat_options(&inputs.seed, "iso-esp-volume-id", inputs.epoch);
    FatLayout::plan(size, &[(ESP_BOOT_PATH, inputs.uki.len())], &opts).context("cannot lay out the ISO's ESP image")
}

/// isolinux boots straight into the OS with the UKI's own command line.
fn isolinux_cfg(cmdline: &str) -> String {
    syslinux_cfg("/boot/vmlinuz", "/boot/initrd.img", cmdline)
}
