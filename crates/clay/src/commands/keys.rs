//! `clay keys generate DIR`: a Secure Boot key set of one's own (PK, KEK, db), with everything needed to enroll it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use clay_authenticode::{generate_self_signed, pkcs7_sign_detached, Certificate, SigningKey};
use clay_efivars::{EfiTime, Guid, SecureBootKeys, SecureBootVariable};

use super::build::status;
use crate::output::ScratchDir;

/// RSA-2048: the size every UEFI implementation verifies (UEFI 2.10 §32.2.4 requires it; larger keys are optional).
const KEY_BITS: usize = 2048;
/// The three keys, in the order they are made and enrolled.
const KEYS: [(SecureBootVariable, &str); 3] =
    [(SecureBootVariable::Pk, "PK"), (SecureBootVariable::Kek, "KEK"), (SecureBootVariable::Db, "db")];
/// The file holding the owner GUID of the signature lists.
const OWNER_FILE: &str = "owner-guid.txt";

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a Secure Boot key set in DIR: PK, KEK and db, each as a private key (NAME.key), a self-signed
    /// certificate (NAME.crt), an EFI signature list (NAME.esl) and a signed variable update (NAME.auth: PK and KEK
    /// signed by PK, db by KEK) for enrolling it in firmware.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The directory to create; it must not exist yet or be empty.
    pub dir: PathBuf,
    /// The certificates' common names are "NAME PK", "NAME KEK" and "NAME db".
    #[arg(long, default_value = "claylinux")]
    pub common_name: String,
    /// How long the certificates are valid, in years.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub years: u32,
}

pub fn run(args: KeysArgs) -> Result<ExitCode> {
    match args.command {
        KeysCommand::Generate(args) => generate(&args),
    }
}

/// A random (version 4) GUID for the owner of the signature lists, as `uuidgen` makes them.
fn random_guid() -> Result<Guid> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read random bytes from /dev/urandom")?;
    // Mixed-endian layout: the version is the high nibble of the third field (stored little-endian), the variant
    // the top bits of the fourth.
    bytes[7] = (bytes[7] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Ok(Guid(bytes))
}

fn generate(args: &GenerateArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("`{}` already holds files; keys are never overwritten, so name a new directory", dir.display());
    }
    // Made in a private directory beside the target and renamed into place whole: no half key set is left
    // behind, and the private keys are never readable by others, not even for a moment.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = ScratchDir::create_in(parent, ".clay-keys-")?;

    let now = SystemTime::now();
    let epoch = super::build::source_date_epoch()?;
    let valid_for = Duration::from_secs(u64::from(args.years) * 365 * 86_400 + u64::from(args.years / 4) * 86_400);
    let mut made: Vec<(SigningKey, Certificate)> = Vec::new();
    for (_, name) in KEYS {
        let cn = format!("{} {name}", args.common_name);
        status(&format!("generating {name} (RSA-{KEY_BITS}, CN={cn})"));
        made.push(generate_self_signed(&cn, KEY_BITS, now, valid_for)?);
    }
    let owner = random_guid()?;
    let der = |i: usize| made[i].1.der();
    let set = SecureBootKeys::from_certificates(owner, der(0), der(1), der(2))?;
    // The updates carry the time they were made (or SOURCE_DATE_EPOCH): firmware refuses an update older than
    // the variable's current one.
    let seconds = epoch.map_or_else(
        || now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        |e| u64::try_from(e).unwrap_or(0),
    );
    let timestamp = EfiTime::from_unix_seconds(seconds)?;
    let variables = set.variables(timestamp)?;

    let write = |name: &str, bytes: &[u8], mode: u32| -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = temp.path().join(name);
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&path)?;
        file.write_all(bytes).with_context(|| format!("cannot write `{}`", path.display()))
    };
    for (i, (which, name)) in KEYS.into_iter().enumerate() {
        let (key, cert) = &made[i];
        write(&format!("{name}.key"), key.to_pkcs8_pem()?.as_bytes(), 0o600)?;
        write(&format!("{name}.crt"), cert.to_pem()?.as_bytes(), 0o644)?;
        let variable = variables
            .iter()
            .find(|v| v.name() == which.name())
            .with_context(|| format!("internal error: no {name} variable"))?;
        write(&format!("{name}.esl"), variable.data(), 0o644)?;
        let signer = KEYS.iter().position(|(v, _)| *v == which.signed_by()).unwrap_or_default();
        let (signer_key, signer_cert) = &made[signer];
        let auth = variable
            .signed_auth_file(|data| -> Result<Vec<u8>> { Ok(pkcs7_sign_detached(data, signer_key, signer_cert)?) })?;
        write(&format!("{name}.auth"), &auth, 0o644)?;
    }
    write(OWNER_FILE, format!("{owner}\n").as_bytes(), 0o644)?;

    if dir.exists() {
        // An empty directory: replaced by the full one.
        fs::remove_dir(dir).with_context(|| format!("cannot replace the empty directory `{}`", dir.display()))?;
    }
    // Renamed while still tracked, so an interrupt at any moment leaves either the whole set in place or nothing.
    fs::rename(temp.path(), dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    temp.keep();
    status(&format!(
        "wrote {}: PK, KEK and db as .key (private: keep them off the machines you build on), .crt, .esl and .auth",
        dir.display()
    ));
    Ok(ExitCode::SUCCESS)
}
