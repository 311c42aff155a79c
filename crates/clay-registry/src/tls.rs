//! Whose certificates to trust, and which certificate to show, when talking TLS to a registry: the system's CA
//! bundle, and the per-registry directories podman, skopeo and docker read (containers-certs.d(5)).
//!
//! A certificate directory holds `*.crt` files (CA certificates, trusted besides the system's), and `NAME.cert` with
//! `NAME.key` (a client certificate and its key, for registries that ask for one). The directory for a registry is
//! `--cert-dir` when given, else the first of `~/.config/containers/certs.d/HOST[:PORT]`,
//! `/etc/containers/certs.d/HOST[:PORT]` and `/etc/docker/certs.d/HOST[:PORT]` that exists.
//!
//! The system's CAs are what OpenSSL would read (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else the distribution's bundle);
//! a host without any, such as a `FROM scratch` container, gets the Mozilla roots built into the binary.

use std::ffi::OsString;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::error::{RegistryError, Result};

/// Certificate and key files are small; refuse to read more.
const MAX_CERT_FILE_SIZE: u64 = 1 << 20;
/// The per-registry directories, after the user's own, in the order podman searches them.
const SYSTEM_CERT_DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];
/// The user's per-registry directory, under `$HOME`.
const USER_CERT_DIR: &str = ".config/containers/certs.d";

/// Where the certificate directory of a registry is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertDirs {
    /// One directory for every registry (`--cert-dir`), instead of the per-registry ones.
    fixed: Option<PathBuf>,
    /// Searched in order for a subdirectory named like the registry (`host` or `host:port`).
    per_registry: Vec<PathBuf>,
}

impl Default for CertDirs {
    fn default() -> Self {
        Self::from_env()
    }
}

/// What a certificate directory gave: CAs to trust and a client certificate to show.
#[derive(Debug, Default)]
pub(crate) struct RegistryCerts {
    /// The directory they came from, when one exists.
    pub dir: Option<PathBuf>,
    pub cas: Vec<Certificate<'static>>,
    pub client: Option<ClientCert>,
}

impl CertDirs {
    /// This one directory for every registry, as podman's and skopeo's `--cert-dir` (the files are directly in it).
    pub fn fixed(dir: impl Into<PathBuf>) -> Self {
        Self { fixed: Some(dir.into()), per_registry: Vec::new() }
    }

    /// These directories, searched in order for one named like the registry.
    pub fn per_registry(dirs: Vec<PathBuf>) -> Self {
        Self { fixed: None, per_registry: dirs }
    }

    /// No certificate directories: the system's CAs only.
    pub fn none() -> Self {
        Self::per_registry(Vec::new())
    }

    /// podman's directories, with `$HOME` from the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// `$HOME/.config/containers/certs.d`, `/etc/containers/certs.d`, `/etc/docker/certs.d`.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        let home = var("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let mut dirs: Vec<PathBuf> = home.map(|h| h.join(USER_CERT_DIR)).into_iter().collect();
        dirs.extend(SYSTEM_CERT_DIRS.iter().map(PathBuf::from));
        Self::per_registry(dirs)
    }

    /// The directory for `host` (`host` or `host:port`, as the reference names the registry's API host): the fixed
    /// one, else the first per-registry one that exists.
    pub fn dir_for(&self, host: &str) -> Option<PathBuf> {
        if let Some(fixed) = &self.fixed {
            return Some(fixed.clone());
        }
        self.per_registry.iter().map(|d| d.join(host)).find(|d| d.is_dir())
    }

    /// The end of the sentence saying that `host` failed the TLS handshake: which certificate directory was
    /// trusted (`used`), where a CA would go, and how to turn verification off.
    pub(crate) fn advice(&self, host: &str, used: Option<&Path>) -> String {
        let trusted = used.map(|d| format!(" (trusting the CAs of {} besides the system's)", d.display()));
        let place = match (&self.fixed, self.per_registry.iter().find(|d| d.starts_with("/etc"))) {
            (Some(fixed), _) => format!("{}/ca.crt", fixed.display()),
            (None, dir) => match dir.or(self.per_registry.first()) {
                Some(dir) => format!("{}/ca.crt (or name a directory with --cert-dir)", dir.join(host).display()),
                None => "ca.crt in a directory named with --cert-dir".to_owned(),
            },
        };
        format!(
            "{}; if a private CA signed its certificate, put the CA in {place}; for a self-signed certificate or plain \
             HTTP, turn TLS verification off (--tls-verify=false)",
            trusted.unwrap_or_default()
        )
    }

    /// Reads the certificate directory of `host`. A fixed directory must exist; a per-registry one is optional.
    pub(crate) fn load(&self, host: &str) -> Result<RegistryCerts> {
        let Some(dir) = self.dir_for(host) else {
            return Ok(RegistryCerts::default());
        };
        let unusable = |reason: String| RegistryError::CertDir { dir: dir.clone(), reason };
        let entries = fs::read_dir(&dir).map_err(|e| unusable(format!("it cannot be read ({e})")))?;
        let mut names: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| unusable(format!("it cannot be listed ({e})")))?;
            // A name that is not UTF-8 is skipped: no certificate or key is named so.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        let mut certs = RegistryCerts { dir: Some(dir.clone()), ..RegistryCerts::default() };
        for name in &names {
            if name.ends_with(".crt") {
                let found = read_certs(&dir.join(name))?;
                certs.cas.extend(found);
            } else if let Some(stem) = name.strip_suffix(".cert") {
                let key_name = format!("{stem}.key");
                if !names.contains(&key_name) {
                    return Err(bad_file(
                        &dir.join(name),
                        &format!(
                            "the client certificate has no key {key_name} beside it (CA certificates end in .crt)"
                        ),
                    ));
                }
                // The first pair by name is shown, as a server that asks for a client certificate takes one.
                if certs.client.is_none() {
                    certs.client = Some(client_cert(&dir.join(name), &dir.join(&key_name))?);
                }
            } else if let Some(stem) = name.strip_suffix(".key") {
                if !names.contains(&format!("{stem}.cert")) {
                    return Err(bad_file(
                        &dir.join(name),
                        &format!("the client key has no certificate {stem}.cert beside it"),
                    ));
                }
            }
        }
        Ok(certs)
    }
}

fn bad_file(path: &Path, reason: &str) -> RegistryError {
    RegistryError::CertFile { path: path.to_owned(), reason: reason.to_owned() }
}

/// A certificate or key file's bytes (at most [`MAX_CERT_FILE_SIZE`]).
fn read_small(path: &Path) -> Result<Vec<u8>> {
    let file = fs::File::open(path).map_err(|e| bad_file(path, &format!("it cannot be opened ({e})")))?;
    let mut text = Vec::new();
    file.take(MAX_CERT_FILE_SIZE + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad_file(path, &format!("it cannot be read ({e})")))?;
    if text.len() as u64 > MAX_CERT_FILE_SIZE {
        return Err(bad_file(path, "it is larger than 1 MiB, too large for a certificate or key"));
    }
    Ok(text)
}

/// The PEM certificates of a file; there must be at least one.
fn read_certs(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let text = read_small(path)?;
    let mut certs = Vec::new();
    for item in parse_pem(&text) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(bad_file(path, &format!("it is not valid PEM ({e})"))),
        }
    }
    if certs.is_empty() {
        return Err(bad_file(path, "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(certs)
}

/// A client certificate (chain) and its key, checked to belong together, so that the TLS stack can take them.
fn client_cert(cert_path: &Path, key_path: &Path) -> Result<ClientCert> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = read_certs(cert_path)?;
    let text = read_small(key_path)?;
    let no_key = || bad_file(key_path, "it holds no PEM private key (-----BEGIN PRIVATE KEY-----)");
    let key = PrivateKey::from_pem(&text).map_err(|_| no_key())?;
    // ureq panics on a certificate and key that rustls refuses, so rustls is asked first, the same way: the key
    // must be one it can sign with, and match the certificate.
    let der = PrivateKeyDer::from_pem_slice(&text).map_err(|_| no_key())?;
    let ders = chain.iter().map(|c| CertificateDer::from(c.der().to_vec())).collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_client_auth_cert(ders, der))
        .map_err(|e| {
            bad_file(key_path, &format!("it cannot be used with the client certificate {}: {e}", cert_path.display()))
        })?;
    Ok(ClientCert::new_with_certs(&chain, key))
}

/// The system's CA certificates, read once; empty when the host has none.
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        // Unreadable files are skipped, as OpenSSL and Go skip them; what could be read is used.
        let found = rustls_native_certs::load_native_certs();
        found.certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()).collect()
    })
}

/// The TLS configuration for one registry: with `verify`, the system's CAs (or the built-in Mozilla roots when the
/// host has none) and the directory's; without, any certificate. The directory's client certificate either way.
pub(crate) fn config(verify: bool, certs: &RegistryCerts) -> TlsConfig {
    let system = system_roots();
    let roots = if certs.cas.is_empty() && system.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::from(system.iter().chain(&certs.cas).cloned())
    };
    TlsConfig::builder().disable_verification(!verify).root_certs(roots).client_cert(certs.client.clone()).build()
}
