//! `--sign-key`/`--sign-cert`: Secure Boot signatures made in-process (clay-authenticode), for the kernel inside
//! the UKI when it is unsigned and for the UKI itself.

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use clay_authenticode::{AuthenticodeError, Certificate, SignOptions, SigningKey};

/// The environment variable a passphrase-protected key's passphrase comes from (else a prompt on a terminal).
pub const PASSPHRASE_VAR: &str = "CLAY_SIGN_PASSPHRASE";

/// A signing key and its certificate, checked to belong together and to be valid now.
pub struct Signer {
    key: SigningKey,
    cert: Certificate,
}

impl Signer {
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<Signer> {
        let cert_bytes = std::fs::read(cert_path)
            .with_context(|| format!("cannot read the certificate `{}`", cert_path.display()))?;
        let cert = Certificate::parse(&cert_bytes)
            .with_context(|| format!("`{}` is not a usable certificate", cert_path.display()))?;
        let key = load_key(key_path)?;
        key.check_matches(&cert).with_context(|| format!("`{}` cannot sign for it", key_path.display()))?;
        cert.check_validity(SystemTime::now())
            .with_context(|| format!("`{}` cannot be used to sign", cert_path.display()))?;
        Ok(Signer { key, cert })
    }

    /// The certificate's subject, for messages.
    pub fn subject(&self) -> String {
        self.cert.subject()
    }

    /// A signed copy of `kernel` when it is an EFI-stub kernel without a signature (shim-based chains verify the
    /// kernel on its own); `None` when it is signed already, or not a PE image at all (nothing to sign).
    pub fn sign_kernel(&self, kernel: &[u8]) -> Result<Option<Vec<u8>>> {
        match clay_authenticode::signatures(&mut Cursor::new(kernel)) {
            Ok(signatures) if signatures.is_empty() => {
                let mut image = Cursor::new(kernel.to_vec());
                clay_authenticode::sign(&mut image, &self.key, &self.cert, &SignOptions::default())
                    .context("cannot sign the kernel")?;
                Ok(Some(image.into_inner()))
            }
            _ => Ok(None),
        }
    }

    /// Signs the PE image that fills `file` (from offset 0) and returns its new length.
    pub fn sign_file(&self, file: &File, name: &str) -> Result<u64> {
        let mut handle = file;
        clay_authenticode::sign(&mut handle, &self.key, &self.cert, &SignOptions::default())
            .with_context(|| format!("cannot sign `{name}`"))?;
        Ok(file.metadata().with_context(|| format!("cannot read back `{name}`"))?.len())
    }
}

/// Loads the key, with the passphrase from [`PASSPHRASE_VAR`] or, on a terminal, a prompt when it is encrypted.
fn load_key(path: &Path) -> Result<SigningKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the signing key `{}`", path.display()))?;
    let from_env = std::env::var_os(PASSPHRASE_VAR).map(|v| v.into_encoded_bytes());
    let unusable = || format!("`{}` is not a usable signing key", path.display());
    match SigningKey::from_pem(&bytes, from_env.as_deref()) {
        Err(AuthenticodeError::PassphraseRequired) => match prompt_passphrase(path)? {
            Some(passphrase) => SigningKey::from_pem(&bytes, Some(&passphrase)).with_context(unusable),
            None => bail!(
                "the signing key `{}` is encrypted; set {PASSPHRASE_VAR} to its passphrase, or run clay on a \
                 terminal to be asked for it",
                path.display()
            ),
        },
        other => other.with_context(unusable),
    }
}

/// Asks for the passphrase on the terminal without echoing it; `None` when standard input is not a terminal.
fn prompt_passphrase(path: &Path) -> Result<Option<Vec<u8>>> {
    use rustix::termios::{isatty, tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    if !isatty(&stdin) {
        return Ok(None);
    }
    eprint!("Passphrase for {}: ", path.display());
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn off the terminal's echo")?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let restored = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.context("cannot read the passphrase")?;
    restored.context("cannot restore the terminal's echo")?;
    Ok(Some(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec()))
}

/// `--sign-key` and `--sign-cert`, which go together.
pub fn from_args(key: Option<&PathBuf>, cert: Option<&PathBuf>) -> Result<Option<Signer>> {
    match (key, cert) {
        (Some(key), Some(cert)) => Ok(Some(Signer::load(key, cert)?)),
        (None, None) => Ok(None),
        (Some(_), None) => bail!("--sign-key needs --sign-cert, the certificate that goes with the key"),
        (None, Some(_)) => bail!("--sign-cert needs --sign-key, the private key that goes with the certificate"),
    }
}
