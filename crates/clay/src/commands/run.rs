//! `clay run`: boot an image in QEMU with the serial console on this terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use clay_qemu::{Accel, Boot, DiskFormat, Firmware, RunOptions, Vm};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when it works here, else TCG (tried, not guessed).
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FirmwareArg {
    /// OVMF (UEFI).
    Uefi,
    /// SeaBIOS (legacy BIOS).
    Bios,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image to boot: a UKI (.efi), a disk (.img, .qcow2), an ISO (.iso, as a CD-ROM) or the kernel files of
    /// `--format kernel` (.vmlinuz, with its .initrd and .cmdline beside it).
    pub image: PathBuf,
    /// The firmware.
    #[arg(long, value_enum, default_value = "uefi")]
    pub firmware: FirmwareArg,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// The accelerator.
    #[arg(long, value_enum, env = "CLAY_ACCEL", default_value = "auto")]
    pub accel: AccelArg,
    /// Extra arguments passed to qemu as they are (after `--`).
    #[arg(last = true)]
    pub qemu_args: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    if !args.image.is_file() {
        bail!("`{}` does not exist", args.image.display());
    }
    let boot = boot_for(&args.image)?;
    let mut opts = RunOptions::new(boot);
    opts.firmware = match args.firmware {
        FirmwareArg::Uefi => Firmware::Uefi,
        FirmwareArg::Bios => Firmware::Bios,
    };
    opts.memory_mib = args.memory;
    opts.cpus = args.cpus;
    opts.accel = match args.accel {
        AccelArg::Auto => Accel::Auto,
        AccelArg::Kvm => Accel::Kvm,
        AccelArg::Tcg => Accel::Tcg,
    };
    opts.extra_args = args.qemu_args;
    let vm = Vm::prepare(&opts, &mut |notice| eprintln!("clay: {notice}"))?;
    eprintln!("clay: booting {}; {}", args.image.display(), clay_qemu::ESCAPE_HELP);
    let status = vm.run_interactive()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
    })
}

/// How to boot an image, from its extension.
fn boot_for(image: &Path) -> Result<Boot> {
    let extension = image.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    Ok(match extension.as_str() {
        "efi" => Boot::Efi(image.to_owned()),
        "img" | "raw" => Boot::Disk { path: image.to_owned(), format: DiskFormat::Raw },
        "qcow2" => Boot::Disk { path: image.to_owned(), format: DiskFormat::Qcow2 },
        "iso" => Boot::Cdrom(image.to_owned()),
        "vmlinuz" => {
            let sibling = |ext: &str| image.with_extension(ext);
            let initrd = sibling("initrd");
            let cmdline = match std::fs::read_to_string(sibling("cmdline")) {
                Ok(text) => text.trim().to_owned(),
                Err(_) => {
                    bail!("`{}` is missing; --format kernel writes it beside the kernel", sibling("cmdline").display())
                }
            };
            Boot::Kernel { kernel: image.to_owned(), initrd: initrd.is_file().then_some(initrd), cmdline }
        }
        _ => bail!(
            "`{}` is not an image clay can boot; pass a .efi, .img, .qcow2, .iso or .vmlinuz file",
            image.display()
        ),
    })
}
