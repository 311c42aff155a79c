//! Loading the signing key and certificates: PEM (PKCS#1, PKCS#8, PBES2-encrypted PKCS#8) and DER.
//!
//! PEM per RFC 7468; PKCS#1 per RFC 8017 appendix A.1.2; PKCS#8 and its encrypted form per RFC 5208 / RFC 5958 with
//! PBES2 (RFC 8018), which is what `openssl genrsa -aes256` and `openssl pkcs8 -topk8 -v2 aes-256-cbc` write.

use std::fmt;
use std::time::SystemTime;

use der::{Decode, Encode};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::name::Name;

use crate::error::{AuthenticodeError, Result};
use crate::spc::RSA_ENCRYPTION;

/// PEM labels (RFC 7468 section 5, 10, 11; PKCS#1's from OpenSSL).
const LABEL_CERTIFICATE: &str = "CERTIFICATE";
const LABEL_PKCS1: &str = "RSA PRIVATE KEY";
const LABEL_PKCS8: &str = "PRIVATE KEY";
const LABEL_PKCS8_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";
/// OpenSSL's traditional elliptic-curve key: found only to say that it is not RSA.
const LABEL_EC: &str = "EC PRIVATE KEY";
/// The header OpenSSL's legacy ("traditional") PEM encryption puts inside the block.
const LEGACY_ENCRYPTION_HEADER: &str = "Proc-Type: 4,ENCRYPTED";

/// An RSA private key to sign with.
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) key: RsaPrivateKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use rsa::traits::PublicKeyParts;
        f.debug_struct("SigningKey").field("bits", &(self.key.size() * 8)).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads an RSA private key from PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`), PKCS#8 (`BEGIN PRIVATE KEY`) or
    /// PBES2-encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`), which needs `passphrase`. The first key block in the
    /// text is used, so a file holding a certificate and its key works too.
    pub fn from_pem(pem: &[u8], passphrase: Option<&[u8]>) -> Result<Self> {
        const WHAT: &str = "private key";
        let expected = "PRIVATE KEY";
        let (label, block) = pem_blocks(pem)
            .into_iter()
            .find(|(label, _)| [LABEL_PKCS1, LABEL_PKCS8, LABEL_PKCS8_ENCRYPTED, LABEL_EC].contains(label))
            .ok_or(AuthenticodeError::NoPemBlock { what: WHAT, expected })?;
        if block.contains(LEGACY_ENCRYPTION_HEADER) {
            return Err(AuthenticodeError::LegacyEncryptedKey);
        }
        if label == LABEL_EC {
            return Err(AuthenticodeError::KeyNotRsa { algorithm: "elliptic-curve".to_owned() });
        }
        let (_, der) = der::pem::decode_vec(block.as_bytes())
            .map_err(|e| AuthenticodeError::BadPem { what: WHAT, reason: e.to_string() })?;
        let bad = |e: &dyn fmt::Display| AuthenticodeError::BadKey { reason: e.to_string() };
        let key = match label {
            LABEL_PKCS1 => RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| bad(&e))?,
            LABEL_PKCS8 => from_pkcs8(&der)?,
            _ => {
                let passphrase = passphrase.ok_or(AuthenticodeError::PassphraseRequired)?;
                let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| bad(&e))?;
                let plain = encrypted.decrypt(passphrase).map_err(|e| match e {
                    pkcs8::Error::EncryptedPrivateKey(
                        pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }
                        | pkcs8::pkcs5::Error::NoPbes1CryptSupport
                        | pkcs8::pkcs5::Error::AlgorithmParametersInvalid { .. },
                    ) => AuthenticodeError::UnsupportedKeyEncryption { reason: e.to_string() },
                    // A wrong passphrase shows as bad padding or, rarely, as padding that fits around garbage.
                    _ => AuthenticodeError::WrongPassphrase,
                })?;
                from_pkcs8(plain.as_bytes()).map_err(|e| match e {
                    AuthenticodeError::BadKey { .. } => AuthenticodeError::WrongPassphrase,
                    other => other,
                })?
            }
        };
        Ok(SigningKey { key })
    }

    /// Checks that this key is the private half of `cert`'s public key.
    pub fn check_matches(&self, cert: &Certificate) -> Result<()> {
        if RsaPublicKey::from(&self.key) == cert.public_key()? {
            Ok(())
        } else {
            Err(AuthenticodeError::KeyMismatch { subject: cert.subject() })
        }
    }
}

fn from_pkcs8(der: &[u8]) -> Result<RsaPrivateKey> {
    let bad = |e: &dyn fmt::Display| AuthenticodeError::BadKey { reason: e.to_string() };
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| bad(&e))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(AuthenticodeError::KeyNotRsa { algorithm: key_algorithm_name(&info.algorithm.oid) });
    }
    RsaPrivateKey::try_from(info).map_err(|e| bad(&e))
}

/// An X.509 certificate: the signer's, a trusted one to verify against, or one of a chain.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    pub(crate) cert: x509_cert::Certificate,
    der: Vec<u8>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate").field("subject", &self.subject()).finish_non_exhaustive()
    }
}

impl Certificate {
    /// Loads the first certificate (`BEGIN CERTIFICATE`) of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        Self::all_from_pem(pem)?
            .into_iter()
            .next()
            .ok_or(AuthenticodeError::NoPemBlock { what: "certificate", expected: LABEL_CERTIFICATE })
    }

    /// Loads every certificate of a PEM text, in order (a chain file), failing if there is none.
    pub fn all_from_pem(pem: &[u8]) -> Result<Vec<Self>> {
        let certs = pem_blocks(pem)
            .into_iter()
            .filter(|(label, _)| *label == LABEL_CERTIFICATE)
            .map(|(_, block)| {
                let (_, der) = der::pem::decode_vec(block.as_bytes())
                    .map_err(|e| AuthenticodeError::BadPem { what: "certificate", reason: e.to_string() })?;
                Self::from_der(&der)
            })
            .collect::<Result<Vec<_>>>()?;
        if certs.is_empty() {
            return Err(AuthenticodeError::NoPemBlock { what: "certificate", expected: LABEL_CERTIFICATE });
        }
        Ok(certs)
    }

    /// Loads a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| AuthenticodeError::BadCertificate { reason: e.to_string() })?;
        Ok(Certificate { cert, der: der.to_vec() })
    }

    /// Loads a certificate in PEM (the first one) or DER, whichever `bytes` is.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(&[0x30]) {
            Self::from_der(bytes)
        } else {
            Self::from_pem(bytes)
        }
    }

    pub(crate) fn from_x509(cert: x509_cert::Certificate) -> Result<Self> {
        let der = cert.to_der().map_err(crate::error::encode)?;
        Ok(Certificate { cert, der })
    }

    /// The DER encoding (what an `EFI_CERT_X509_GUID` signature list holds).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject, readable: `CN=Test Key, O=Example` (RFC 4514 attributes in certificate order).
    pub fn subject(&self) -> String {
        name_string(&self.cert.tbs_certificate.subject)
    }

    pub fn issuer(&self) -> String {
        name_string(&self.cert.tbs_certificate.issuer)
    }

    /// The serial number in hexadecimal, as `openssl x509 -serial` prints it.
    pub fn serial(&self) -> String {
        hex(self.cert.tbs_certificate.serial_number.as_bytes())
    }

    pub fn not_before(&self) -> SystemTime {
        self.cert.tbs_certificate.validity.not_before.to_system_time()
    }

    pub fn not_after(&self) -> SystemTime {
        self.cert.tbs_certificate.validity.not_after.to_system_time()
    }

    /// Checks that the certificate is valid at `at` (UEFI firmware has no trusted clock and ignores validity, but a
    /// signer should not use an expired certificate).
    pub fn check_validity(&self, at: SystemTime) -> Result<()> {
        let validity = &self.cert.tbs_certificate.validity;
        if at < validity.not_before.to_system_time() {
            return Err(AuthenticodeError::NotYetValid {
                subject: self.subject(),
                not_before: date_string(&validity.not_before.to_date_time()),
            });
        }
        if at > validity.not_after.to_system_time() {
            return Err(AuthenticodeError::Expired {
                subject: self.subject(),
                not_after: date_string(&validity.not_after.to_date_time()),
            });
        }
        Ok(())
    }

    /// The RSA public key.
    pub(crate) fn public_key(&self) -> Result<RsaPublicKey> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(AuthenticodeError::CertificateNotRsa {
                subject: self.subject(),
                algorithm: key_algorithm_name(&spki.algorithm.oid),
            });
        }
        let der = spki.to_der().map_err(crate::error::encode)?;
        RsaPublicKey::from_public_key_der(&der)
            .map_err(|e| AuthenticodeError::BadCertificate { reason: format!("its RSA public key is malformed: {e}") })
    }

    pub(crate) fn subject_name(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }
}

/// A distinguished name as `CN=…, O=…`: each attribute as RFC 4514 writes it, in the certificate's order (which
/// for most certificates puts the country or the common name first, as `openssl x509 -subject` does).
pub(crate) fn name_string(name: &Name) -> String {
    let parts: Vec<String> = name.0.iter().map(ToString::to_string).collect();
    parts.join(", ")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn date_string(t: &der::DateTime) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", t.year(), t.month(), t.day(), t.hour(), t.minutes(), t.seconds())
}

fn key_algorithm_name(oid: &der::asn1::ObjectIdentifier) -> String {
    match const_oid::db::DB.by_oid(oid) {
        Some("id-ecPublicKey") => "elliptic-curve".to_owned(),
        Some("id-Ed25519") => "Ed25519".to_owned(),
        Some(name) => name.to_owned(),
        None => oid.to_string(),
    }
}

/// The PEM blocks of a text, as (label, block from `-----BEGIN` to the end of its `-----END` line), in order.
/// Text around and between blocks (OpenSSL's "Bag Attributes", comments) is skipped.
fn pem_blocks(text: &[u8]) -> Vec<(&str, &str)> {
    let Ok(text) = std::str::from_utf8(text) else { return Vec::new() };
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else { break };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else { break };
        let end = start + end + end_marker.len();
        blocks.push((label, &rest[start..end]));
        rest = &rest[end..];
    }
    blocks
}
