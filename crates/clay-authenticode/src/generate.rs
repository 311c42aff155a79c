//! New keys: an RSA key and a self-signed certificate for it, the shape of each key of a Secure Boot key set
//! (PK, KEK, db), as `openssl req -x509 -newkey rsa:2048` makes them.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use der::referenced::OwnedToRef;
use der::{Encode, EncodePem};
use rand_core::{OsRng, RngCore};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use sha2::Sha256;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

use crate::error::{AuthenticodeError, Result};
use crate::keys::{Certificate, SigningKey};

/// A new `bits`-bit RSA key (2048 is what every UEFI firmware verifies) and a self-signed certificate for it with
/// subject `CN=common_name`, a random serial, valid from `not_before` for `valid_for`, marked as a CA (like
/// `openssl req -x509`) so the same shape serves PK, KEK and db.
pub fn generate_self_signed(
    common_name: &str,
    bits: usize,
    not_before: SystemTime,
    valid_for: Duration,
) -> Result<(SigningKey, Certificate)> {
    let failed = |e: &dyn std::fmt::Display| AuthenticodeError::KeyGeneration { reason: e.to_string() };
    if common_name.is_empty() || common_name.contains(['\0', '\n']) {
        return Err(AuthenticodeError::KeyGeneration {
            reason: format!("`{common_name}` is not a usable common name"),
        });
    }
    let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(|e| failed(&e))?;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // positive, as DER INTEGER serials must be
    serial[0] |= 0x01; // and never with a leading zero byte to strip
    let serial = SerialNumber::new(&serial).map_err(|e| failed(&e))?;
    let start = der::asn1::GeneralizedTime::from_system_time(not_before).map_err(|e| failed(&e))?;
    let end = der::asn1::GeneralizedTime::from_system_time(not_before + valid_for).map_err(|e| failed(&e))?;
    let validity = Validity { not_before: x509_time(start), not_after: x509_time(end) };
    // RFC 4514 string form; quotes and commas in the name are escaped by `Name::from_str`'s rules.
    let subject = Name::from_str(&format!("CN={}", escape_rdn(common_name))).map_err(|e| failed(&e))?;
    let public = rsa::RsaPublicKey::from(&key);
    let spki = SubjectPublicKeyInfoOwned::from_key(public).map_err(|e| failed(&e))?;
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
    // Not Profile::Root: its key usage (certificate and CRL signing only) makes verifiers such as sbverify refuse
    // the key's signatures on images. The shape of `openssl req -x509`, plus digitalSignature.
    let ski = SubjectKeyIdentifier::try_from(spki.owned_to_ref()).map_err(|e| failed(&e))?;
    let mut builder =
        CertificateBuilder::new(Profile::Manual { issuer: None }, serial, validity, subject, spki, &signer)
            .map_err(|e| failed(&e))?;
    builder.add_extension(&BasicConstraints { ca: true, path_len_constraint: None }).map_err(|e| failed(&e))?;
    let usage = KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign;
    builder.add_extension(&KeyUsage(usage)).map_err(|e| failed(&e))?;
    builder.add_extension(&ski).map_err(|e| failed(&e))?;
    let cert = builder.build::<rsa::pkcs1v15::Signature>().map_err(|e| failed(&e))?;
    let der = cert.to_der().map_err(|e| failed(&e))?;
    Ok((SigningKey { key }, Certificate::from_der(&der)?))
}

/// UTCTime until 2049, GeneralizedTime after, as RFC 5280 §4.1.2.5 requires.
fn x509_time(t: der::asn1::GeneralizedTime) -> x509_cert::time::Time {
    match der::asn1::UtcTime::from_date_time(t.to_date_time()) {
        Ok(utc) => x509_cert::time::Time::UtcTime(utc),
        Err(_) => x509_cert::time::Time::GeneralTime(t),
    }
}

/// Escapes the characters RFC 4514 §2.4 reserves in an attribute value.
fn escape_rdn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.chars().count() && c == ' ');
        if edge || matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl SigningKey {
    /// The key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), what `openssl genpkey` writes.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| AuthenticodeError::KeyGeneration { reason: e.to_string() })?;
        Ok(pem.as_str().to_owned())
    }
}

impl Certificate {
    /// The certificate as PEM (`BEGIN CERTIFICATE`).
    pub fn to_pem(&self) -> Result<String> {
        self.cert.to_pem(LineEnding::LF).map_err(|e| AuthenticodeError::KeyGeneration { reason: e.to_string() })
    }
}
