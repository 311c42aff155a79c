//! `clay sign` and `clay verify`: Secure Boot signatures on a UKI built elsewhere, alone or inside a raw disk's ESP
//! or an ISO's ESP image, so the machine that builds never holds the keys.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use clay_authenticode::Certificate;

use super::build::disk::{copy_range, ESP_BOOT_PATH};
use super::build::sign::Signer;
use super::build::status;
use crate::output::PendingOutput;

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image: a UKI (.efi), a raw disk (.img) or an ISO whose ESP holds \EFI\BOOT\BOOTX64.EFI.
    pub image: PathBuf,
    /// The private key (PEM; an encrypted key's passphrase comes from CLAY_SIGN_PASSPHRASE or a prompt).
    #[arg(long)]
    pub key: PathBuf,
    /// The key's certificate (PEM or DER).
    #[arg(long)]
    pub cert: PathBuf,
    /// Where to write the signed image [default: replace IMAGE].
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Replace the UKI's existing signatures instead of refusing an image that is already signed.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: a UKI (.efi), a raw disk (.img) or an ISO.
    pub image: PathBuf,
    /// The certificate that must have signed the UKI, directly or as the CA of its signer (PEM or DER).
    #[arg(long)]
    pub cert: PathBuf,
}

/// Where an image keeps its UKI.
enum UkiPlace {
    /// The image is the UKI.
    Whole,
    /// In the FAT volume at this offset and length (a disk's ESP, an ISO's El Torito UEFI image).
    Esp { offset: u64, len: u64, what: &'static str },
}

fn locate(file: &File, image: &Path) -> Result<UkiPlace> {
    let size = file.metadata()?.len();
    let mut head = vec![0u8; usize::try_from(size.min(64 * 1024)).unwrap_or(0)];
    let mut reader = file;
    reader.read_exact(&mut head).with_context(|| format!("cannot read `{}`", image.display()))?;
    if head.starts_with(b"MZ") {
        return Ok(UkiPlace::Whole);
    }
    if head.get(0x8001..0x8006) == Some(b"CD001") {
        let info = clay_iso::read_iso_info(&mut std::io::BufReader::new(file))
            .with_context(|| format!("`{}` is a damaged ISO 9660 image", image.display()))?;
        let Some(entry) = info.boot_entries.iter().find(|e| e.platform == 0xef) else {
            bail!("`{}` has no UEFI boot entry, so it holds no UKI to sign", image.display())
        };
        let offset = u64::from(entry.load_rba) * 2048;
        let len = fat_volume_len(file, offset).with_context(|| format!("`{}`'s UEFI boot image", image.display()))?;
        return Ok(UkiPlace::Esp { offset, len, what: "the ISO's ESP image" });
    }
    if head.get(512..520) == Some(b"EFI PART") {
        let mut first = vec![0u8; clay_gpt::READ_LEN];
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut first, 0)?;
        let table =
            clay_gpt::read_gpt(&first, size).with_context(|| format!("`{}` has a damaged GPT", image.display()))?;
        let Some(esp) = table.partitions.iter().find(|p| p.type_guid == clay_gpt::types::ESP) else {
            bail!("`{}` has no EFI System Partition, so it holds no UKI to sign", image.display())
        };
        return Ok(UkiPlace::Esp { offset: esp.offset(), len: esp.len(), what: "the disk's ESP" });
    }
    bail!(
        "`{}` is not a UKI, a raw GPT disk or an ISO; VM images (qcow2, vmdk, ...) cannot be signed in place: sign \
         the .img or rebuild with --sign-key",
        image.display()
    )
}

/// The size of the FAT volume starting at `offset`, from its boot sector.
fn fat_volume_len(file: &File, offset: u64) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut bs = [0u8; 512];
    file.read_exact_at(&mut bs, offset)?;
    let bytes_per_sector = u64::from(u16::from_le_bytes([bs[11], bs[12]]));
    let total16 = u64::from(u16::from_le_bytes([bs[19], bs[20]]));
    let total32 = u64::from(u32::from_le_bytes([bs[32], bs[33], bs[34], bs[35]]));
    let total = if total16 != 0 { total16 } else { total32 };
    if bs[510..512] != [0x55, 0xaa] || bytes_per_sector == 0 || total == 0 {
        bail!("it is not a FAT volume");
    }
    Ok(total * bytes_per_sector)
}

/// The UKI of `file` in a temporary file of its own.
fn extract_uki(file: &File, place: &UkiPlace, image: &Path) -> Result<File> {
    let mut temp = tempfile::tempfile().context("cannot create a temporary file for the UKI")?;
    match place {
        UkiPlace::Whole => {
            let mut from = file;
            from.seek(SeekFrom::Start(0))?;
            std::io::copy(&mut from, &mut temp).with_context(|| format!("cannot read `{}`", image.display()))?;
        }
        UkiPlace::Esp { offset, len, what } => {
            let mut window = clay_fat::Window::new(file, *offset, *len)?;
            clay_fat::copy_file(&mut window, ESP_BOOT_PATH, &mut temp)
                .with_context(|| format!("cannot read \\{} from {what} of `{}`", ESP_BOOT_PATH, image.display()))?;
        }
    }
    temp.seek(SeekFrom::Start(0))?;
    Ok(temp)
}

pub fn sign(args: SignArgs) -> Result<ExitCode> {
    let signer = Signer::load(&args.key, &args.cert)?;
    let source = File::open(&args.image).with_context(|| format!("cannot open `{}`", args.image.display()))?;
    let place = locate(&source, &args.image)?;
    let target = args.output.clone().unwrap_or_else(|| args.image.clone());
    let mut out = PendingOutput::create(&target)?;
    let name = target.display().to_string();

    // The UKI, signed in a file of its own: the signature covers the whole file.
    let uki = extract_uki(&source, &place, &args.image)?;
    if !clay_authenticode::signatures(&mut &uki)?.is_empty() {
        if !args.replace {
            bail!("the UKI in `{}` is already signed; pass --replace to replace its signatures", args.image.display());
        }
        clay_authenticode::strip_signatures(&mut uki.try_clone()?)?;
    }
    let len = signer.sign_file(&uki, "the UKI")?;

    match place {
        UkiPlace::Whole => {
            copy_range(&uki, 0, out.file()?, 0, len).with_context(|| format!("cannot write `{name}`"))?;
        }
        UkiPlace::Esp { offset, len: esp_len, what } => {
            let size = source.metadata()?.len();
            let file = out.file()?;
            copy_sparse(&source, file, size).with_context(|| format!("cannot write `{name}`"))?;
            let mtime = super::build::source_date_epoch()?.unwrap_or_else(now_seconds);
            let mut window = clay_fat::Window::new(&*file, offset, esp_len)?;
            let mut reader = &uki;
            reader.seek(SeekFrom::Start(0))?;
            clay_fat::replace_file(&mut window, ESP_BOOT_PATH, len, &mut reader, mtime)
                .with_context(|| format!("cannot put the signed UKI into {what} of `{name}`"))?;
        }
    }
    let written = out.commit()?;
    status(&format!("signed the UKI in {} for `{}`", written.display(), signer.subject()));
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let bytes =
        std::fs::read(&args.cert).with_context(|| format!("cannot read the certificate `{}`", args.cert.display()))?;
    let cert = Certificate::parse(&bytes).with_context(|| format!("`{}` is not a certificate", args.cert.display()))?;
    let file = File::open(&args.image).with_context(|| format!("cannot open `{}`", args.image.display()))?;
    let place = locate(&file, &args.image)?;
    let mut uki = extract_uki(&file, &place, &args.image)?;
    clay_authenticode::verify(&mut uki, &cert)
        .with_context(|| format!("the UKI in `{}` does not verify", args.image.display()))?;
    println!("{}: signed by `{}` or a certificate it issued: OK", args.image.display(), cert.subject());
    Ok(ExitCode::SUCCESS)
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Copies `size` bytes of `from` into the empty file `to`, only where `from` has data: holes stay holes.
fn copy_sparse(from: &File, to: &File, size: u64) -> std::io::Result<()> {
    use rustix::fs::{seek, SeekFrom as RSeek};
    to.set_len(size)?;
    let mut pos = 0;
    while pos < size {
        let data = match seek(from, RSeek::Data(pos)) {
            Ok(data) => data,
            Err(rustix::io::Errno::NXIO) => break,
            // No SEEK_DATA here: copy everything.
            Err(_) => return copy_range(from, 0, to, 0, size),
        };
        let hole = seek(from, RSeek::Hole(data)).unwrap_or(size).min(size);
        copy_range(from, data, to, data, hole.saturating_sub(data))?;
        pos = hole.max(data + 1);
    }
    Ok(())
}
