//! `clay run`: boot an image in QEMU with the serial console on this terminal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use clay_qemu::{Accel, Boot, DiskFormat, Firmware, RunOptions, Vm};

use crate::output::{status_of, ScratchDir};

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
    /// Boot with UEFI Secure Boot enforcing: OVMF's Secure Boot build with a fresh variable store in which PK, KEK
    /// and db are enrolled (from --keys; without it, the image's own signer becomes db, under a throwaway PK and
    /// KEK).
    #[arg(long)]
    pub secure_boot: bool,
    /// The key set to enroll, as `clay keys generate` writes it: PK.crt, KEK.crt and db.crt (PEM or DER).
    #[arg(long, requires = "secure_boot")]
    pub keys: Option<PathBuf>,
    /// Let the guest's writes reach the disk image, so a data partition (`clay build --data-size`) keeps them
    /// across runs. Without it, writes go to a throwaway overlay and the image stays as built.
    #[arg(long)]
    pub persist: bool,
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
    opts.extra_args = args.qemu_args.clone();
    opts.snapshot = !args.persist;
    // The VM's files (its variable store, the ESP of a UKI) live in here, which goes when clay ends, however it
    // ends: QEMU is stopped first when clay is interrupted.
    let scratch = ScratchDir::create("clay-run-")?;
    opts.temp_dir = Some(scratch.path().to_owned());
    if args.secure_boot {
        opts.secure_boot = Some(secure_boot_store(&args, scratch.path())?);
    }
    let vm = Vm::prepare(&opts, &mut |notice| eprintln!("clay: {notice}"))?;
    eprintln!("clay: booting {}; {}", args.image.display(), clay_qemu::ESCAPE_HELP);
    let status = status_of(&mut vm.command()).map_err(clay_qemu::QemuError::Spawn)?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
    })
}

/// A variable store for OVMF's Secure Boot build with PK, KEK and db enrolled and Secure Boot turned on, written
/// into `dir`; its path.
fn secure_boot_store(args: &RunArgs, dir: &Path) -> Result<PathBuf> {
    use clay_authenticode::{generate_self_signed, Certificate};
    use clay_efivars::{EfiTime, Guid, SecureBootKeys, VarStore};
    use std::time::{Duration, SystemTime};

    let template = clay_qemu::secure_boot_vars_template()?;
    let bytes = std::fs::read(&template).with_context(|| format!("cannot read `{}`", template.display()))?;
    let mut store =
        VarStore::parse(&bytes).with_context(|| format!("`{}` is not an OVMF variable store", template.display()))?;
    let now = SystemTime::now();
    let (owner, pk, kek, db) = match &args.keys {
        Some(dir) => {
            let cert = |name: &str| -> Result<Vec<u8>> {
                let path = dir.join(format!("{name}.crt"));
                let bytes = std::fs::read(&path).with_context(|| {
                    format!("cannot read `{}`; --keys takes a directory made by `clay keys generate`", path.display())
                })?;
                let cert =
                    Certificate::parse(&bytes).with_context(|| format!("`{}` is not a certificate", path.display()))?;
                Ok(cert.der().to_vec())
            };
            let owner = std::fs::read_to_string(dir.join("owner-guid.txt"))
                .ok()
                .and_then(|text| text.trim().parse::<Guid>().ok())
                .unwrap_or_default();
            (owner, cert("PK")?, cert("KEK")?, cert("db")?)
        }
        None => {
            let signers = match boot_for(&args.image)? {
                Boot::Efi(path) => {
                    let mut file = std::fs::File::open(&path)?;
                    clay_authenticode::signer_certificates(&mut file)
                        .with_context(|| format!("cannot read the signatures of `{}`", path.display()))?
                }
                _ => bail!("--secure-boot without --keys takes the signer from a .efi image; for a disk or an ISO, give --keys DIR"),
            };
            let Some(signer) = signers.first() else {
                bail!("`{}` is not signed, so without --keys there is no certificate to enroll; sign it (clay build --sign-key, clay sign) or give --keys DIR", args.image.display())
            };
            eprintln!("clay: enrolling the image's signer `{}` as db, under a throwaway PK and KEK", signer.subject());
            let day = Duration::from_secs(86_400);
            let (_, pk) = generate_self_signed("clay run throwaway PK", 2048, now, day)?;
            let (_, kek) = generate_self_signed("clay run throwaway KEK", 2048, now, day)?;
            (Guid::default(), pk.der().to_vec(), kek.der().to_vec(), signer.der().to_vec())
        }
    };
    let keys = SecureBootKeys::from_certificates(owner, &pk, &kek, &db)?;
    let seconds = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    store.enroll_secure_boot(&keys, EfiTime::from_unix_seconds(seconds)?)?;
    let path = dir.join("secure-boot-vars.fd");
    std::fs::write(&path, store.to_bytes()?).context("cannot write the variable store")?;
    Ok(path)
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
