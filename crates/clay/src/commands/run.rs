//! `clay run`: boot an image in QEMU with the serial console on this terminal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use clay_qemu::{Accel, Boot, Firmware, RunOptions, Vm};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when it works here, else TCG (tried, not guessed).
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image to boot: a Unified Kernel Image (.efi).
    pub image: PathBuf,
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
    let extension = args.image.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let boot = match extension.as_str() {
        "efi" => Boot::Efi(args.image.clone()),
        _ => bail!("`{}` is not an image clay can boot yet; pass a .efi Unified Kernel Image", args.image.display()),
    };
    if !args.image.is_file() {
        bail!("`{}` does not exist", args.image.display());
    }
    let mut opts = RunOptions::new(boot);
    opts.firmware = Firmware::Uefi;
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
