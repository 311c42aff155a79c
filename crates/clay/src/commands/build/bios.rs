//! Legacy BIOS boot for disks: syslinux on the ESP. The MBR holds syslinux's `gptmbr.bin`, which boots the GPT
//! partition marked legacy-BIOS-bootable; that partition's boot sector and `ldlinux.sys` (installed by
//! clay-syslinux, without running syslinux's installer) load `ldlinux.c32`, which reads `syslinux.cfg` and boots
//! the kernel and initramfs stored beside it with the UKI's command line.

use anyhow::{bail, Context, Result};
use clay_syslinux::Syslinux;
use clay_tree::Tree;

use super::read_file;

/// syslinux's installers, which hold the boot sector, `ldlinux.sys` and the matching `ldlinux.c32` (Debian and
/// Ubuntu: package syslinux; Fedora and Arch: syslinux).
const INSTALLERS: &[&str] = &["/usr/bin/syslinux", "/usr/bin/extlinux", "/usr/sbin/extlinux", "/sbin/extlinux"];
/// syslinux's MBR code for GPT disks (Debian/Ubuntu: syslinux-common or syslinux).
const GPTMBR: &[&str] = &[
    "/usr/lib/syslinux/mbr/gptmbr.bin",
    "/usr/lib/SYSLINUX/gptmbr.bin",
    "/usr/share/syslinux/gptmbr.bin",
    "/usr/lib/syslinux/bios/gptmbr.bin",
];

/// Where syslinux's files go on the ESP; `ldlinux.sys` starts there and finds its configuration there first.
pub const SYSLINUX_DIR: &str = "/syslinux";
pub const LDLINUX_SYS: &str = "syslinux/ldlinux.sys";
pub const LDLINUX_C32: &str = "syslinux/ldlinux.c32";
pub const SYSLINUX_CFG: &str = "syslinux/syslinux.cfg";
pub const KERNEL: &str = "syslinux/vmlinuz";
pub const INITRD: &str = "syslinux/initrd.img";

/// syslinux's boot code for a disk, from the image or this machine.
pub struct DiskBiosCode {
    pub syslinux: Syslinux,
    /// At most 440 bytes, for the protective MBR.
    pub gptmbr: Vec<u8>,
}

impl DiskBiosCode {
    /// Takes the image's syslinux, else this machine's; the installer is read as data, never run.
    pub fn find(tree: &Tree) -> Result<Self> {
        let installer = find_file(tree, INSTALLERS)?;
        let gptmbr = find_file(tree, GPTMBR)?;
        let (Some((installer_path, installer)), Some((_, gptmbr))) = (installer, gptmbr) else {
            bail!(
                "BIOS boot of a disk needs syslinux (its installer, which holds ldlinux.sys, and gptmbr.bin), found \
                 neither in the image nor on this machine; install the syslinux and syslinux-common packages \
                 (Debian/Ubuntu) or syslinux (Fedora/Arch)"
            )
        };
        let syslinux = Syslinux::from_installer(&installer)
            .with_context(|| format!("{installer_path} does not hold syslinux's boot code as expected"))?;
        if gptmbr.len() > 440 {
            bail!("`gptmbr.bin` is {} bytes, but MBR boot code is at most 440; is it syslinux's?", gptmbr.len());
        }
        Ok(DiskBiosCode { syslinux, gptmbr })
    }
}

/// The first of `paths` in the image, else on this machine, with where it was found.
fn find_file(tree: &Tree, paths: &[&str]) -> Result<Option<(String, Vec<u8>)>> {
    for path in paths {
        if let Some(bytes) = read_file(tree, &[path])? {
            return Ok(Some((format!("`{path}` in the image"), bytes)));
        }
    }
    Ok(paths.iter().find_map(|p| std::fs::read(p).ok().map(|b| (format!("`{p}` on this machine"), b))))
}

/// A syslinux/isolinux configuration that boots straight into the OS with the UKI's own command line.
pub fn syslinux_cfg(kernel: &str, initrd: &str, cmdline: &str) -> String {
    format!(
        "DEFAULT claylinux\nPROMPT 0\nTIMEOUT 0\nLABEL claylinux\n  KERNEL {kernel}\n  APPEND initrd={initrd} {cmdline}\n"
    )
}
