//! Authenticode signing and verification of PE/COFF images (UEFI executables: Unified Kernel Images, kernels with
//! an EFI stub, boot loaders) for UEFI Secure Boot, in-process.
//!
//! Implements Microsoft's "Windows Authenticode Portable Executable Signature Format" on the "PE Format"
//! specification: the image digest ([`authenticode_digest`]), the PKCS#7 SignedData with its
//! SpcIndirectDataContent that carries it, and the `WIN_CERTIFICATE` entry appended to the image ([`sign`]). What
//! it writes is what `sbsign` writes, minus the signing time: the same key and image always give the same bytes.
//! Images are streamed, never held in memory: a UKI with a large initramfs costs one buffer.
//!
//! Reading back: [`signatures`] lists who signed an image and whether the image still matches;
//! [`verify`] checks it the way firmware does against one trusted certificate (the signer itself, or a CA that
//! issued it).
//!
//! RSA PKCS#1 v1.5 with SHA-256 only: that is what UEFI firmware and shim verify.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod generate;
mod keys;
mod pe;
mod pkcs7;
mod spc;

use std::fs::File;
use std::io::{Read, Seek, Write};

use der::asn1::{Any, OctetString};
use sha2::{Digest, Sha256};

pub use error::{AuthenticodeError, Result};
pub use generate::generate_self_signed;
pub use keys::{Certificate, SigningKey};

use error::encode;
use keys::{hex, name_string};
use pe::{
    Layout, CERTIFICATE_ALIGNMENT, WIN_CERTIFICATE_HEADER_LEN, WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_PKCS_SIGNED_DATA,
};
use spc::{SpcIndirectDataContent, ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SHA_256, SPC_INDIRECT_DATA};

/// How to sign.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SignOptions {
    /// Certificates embedded after the signer's, such as the intermediate CA that issued it, so that a verifier
    /// trusting only the root can build the chain.
    pub chain: Vec<Certificate>,
}

/// One signature found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    /// The signer certificate's subject, when the signature carries that certificate (it normally does).
    pub subject: Option<String>,
    /// The signer certificate's issuer.
    pub issuer: String,
    /// The signer certificate's serial number in hexadecimal.
    pub serial: String,
    /// The algorithm of the image digest: `SHA-256`, or another name or OID.
    pub digest_algorithm: String,
    /// Whether the signed image digest is this image's; `None` when the algorithm is not SHA-256.
    pub digest_matches: Option<bool>,
}

/// The Authenticode SHA-256 digest of a PE image: its headers except the CheckSum field and the Certificate Table
/// entry, its sections' raw data in file order, then what follows them up to the certificate table (or the end).
///
/// Streams the image. Refuses images whose sections leave gaps or overlap, which verifiers hash differently.
pub fn authenticode_digest<R: Read + Seek>(image: &mut R) -> Result<[u8; 32]> {
    Layout::read(image)?.digest(image, 0)
}

/// Signs the PE image in `image` in place with `key` and `cert`: pads the file with zeros to a multiple of 8
/// bytes, appends a `WIN_CERTIFICATE` holding the PKCS#7 signature, points the Certificate Table entry at it and
/// recomputes the CheckSum.
///
/// Refuses an image that is already signed (see [`strip_signatures`]) and a key that does not match `cert`.
/// Validity dates are the caller's business ([`Certificate::check_validity`]): this never reads a clock. On an
/// error after writing has begun the image is left half-signed; sign a temporary copy when that matters.
pub fn sign<F: Read + Write + Seek>(
    image: &mut F,
    key: &SigningKey,
    cert: &Certificate,
    opts: &SignOptions,
) -> Result<()> {
    let layout = Layout::read(image)?;
    if layout.cert_table.is_some() {
        return Err(AuthenticodeError::AlreadySigned);
    }
    key.check_matches(cert)?;
    let padding = layout.len.next_multiple_of(8) - layout.len;
    let digest = layout.digest(image, padding)?;
    let signature = authenticode_signed_data(&digest, key, cert, &opts.chain)?;

    let entry_len = (WIN_CERTIFICATE_HEADER_LEN + signature.len()).next_multiple_of(CERTIFICATE_ALIGNMENT);
    let table_offset = layout.len + padding;
    let end = table_offset + u64::try_from(entry_len).unwrap_or(u64::MAX);
    let too_large = || AuthenticodeError::ImageTooLarge { end };
    let (offset32, len32) =
        (u32::try_from(table_offset).map_err(|_| too_large())?, u32::try_from(entry_len).map_err(|_| too_large())?);
    if u32::try_from(end).is_err() {
        return Err(too_large());
    }
    // dwLength counts the padding too, as osslsigncode writes it: the table is exactly its entries.
    let mut tail = vec![0; usize::try_from(padding).unwrap_or(0)];
    tail.extend_from_slice(&len32.to_le_bytes());
    tail.extend_from_slice(&WIN_CERT_REVISION_2_0.to_le_bytes());
    tail.extend_from_slice(&WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    tail.extend_from_slice(&signature);
    tail.resize(usize::try_from(padding).unwrap_or(0) + entry_len, 0);
    pe::write_at(image, layout.len, &tail)?;
    pe::write_directory_and_checksum(image, &layout, (offset32, len32))
}

/// Removes every signature from a signed image: truncates the file at its certificate table, clears the Certificate
/// Table entry and recomputes the CheckSum, as `sbattach --remove` does. Returns whether there was anything to
/// remove. The zero padding signing added before the table stays (it is part of what was signed).
pub fn strip_signatures(image: &mut File) -> Result<bool> {
    let layout = Layout::read(image)?;
    let Some((offset, _)) = layout.cert_table else { return Ok(false) };
    image.set_len(offset).map_err(AuthenticodeError::Write)?;
    pe::write_directory_and_checksum(image, &layout, (0, 0))?;
    Ok(true)
}

/// The signatures of an image, in certificate-table order: who signed and whether the image still matches.
/// An unsigned image has none.
pub fn signatures<R: Read + Seek>(image: &mut R) -> Result<Vec<SignatureInfo>> {
    let layout = Layout::read(image)?;
    if layout.cert_table.is_none() {
        return Ok(Vec::new());
    }
    let digest = layout.digest(image, 0)?;
    let table = layout.read_cert_table(image)?;
    let mut infos = Vec::new();
    for (index, entry) in pe::pkcs7_entries(&table)?.into_iter().enumerate() {
        let number = index + 1;
        let parsed = pkcs7::parse(entry, number)?;
        let indirect = indirect_data(&parsed, number)?;
        let algorithm = &indirect.message_digest.digest_algorithm.oid;
        let digest_matches = (*algorithm == ID_SHA_256).then(|| indirect.message_digest.digest.as_bytes() == digest);
        for (signer, _) in &parsed.signers {
            let (subject, issuer, serial) = describe_signer(&parsed, signer);
            infos.push(SignatureInfo {
                subject,
                issuer,
                serial,
                digest_algorithm: spc::digest_name(algorithm),
                digest_matches,
            });
        }
    }
    Ok(infos)
}

/// The certificates of the image's signers, as their signatures carry them (a signature that does not carry its
/// signer's certificate contributes none): what firmware must trust for the image to boot.
pub fn signer_certificates<R: Read + Seek>(image: &mut R) -> Result<Vec<Certificate>> {
    let layout = Layout::read(image)?;
    if layout.cert_table.is_none() {
        return Ok(Vec::new());
    }
    let table = layout.read_cert_table(image)?;
    let mut certs = Vec::new();
    for (index, entry) in pe::pkcs7_entries(&table)?.into_iter().enumerate() {
        let parsed = pkcs7::parse(entry, index + 1)?;
        for (signer, _) in &parsed.signers {
            if let Some(cert) = pkcs7::signer_certificate(&parsed.signed_data, signer) {
                certs.push(Certificate::from_x509(cert.clone())?);
            }
        }
    }
    Ok(certs)
}

/// Checks that the image is signed by `trusted`, or by a certificate `trusted` issued (directly or through
/// certificates the signature carries), the way UEFI firmware checks an image against a `db` certificate: the image
/// digest matches the signed one, the messageDigest attribute matches the signed content, and the RSA signature
/// over the signed attributes verifies. One good signature is enough. Validity dates are not checked.
pub fn verify<R: Read + Seek>(image: &mut R, trusted: &Certificate) -> Result<()> {
    let layout = Layout::read(image)?;
    let digest = layout.digest(image, 0)?;
    let table = layout.read_cert_table(image)?;
    let mut failure: Option<AuthenticodeError> = None;
    let mut signers = Vec::new();
    for (index, entry) in pe::pkcs7_entries(&table)?.into_iter().enumerate() {
        let number = index + 1;
        let result = pkcs7::parse(entry, number).and_then(|parsed| {
            for (signer, _) in &parsed.signers {
                let (subject, issuer, _) = describe_signer(&parsed, signer);
                signers.push(format!("`{}`", subject.unwrap_or_else(|| format!("issued by {issuer}"))));
            }
            verify_one(&parsed, &digest, trusted, number)
        });
        match result {
            Ok(()) => return Ok(()),
            // The most telling failure wins: the first that is not "not signed by this certificate".
            Err(e) => {
                if failure.as_ref().is_none_or(|f| matches!(f, AuthenticodeError::NotSignedBy { .. })) {
                    failure = Some(e);
                }
            }
        }
    }
    Err(match failure {
        Some(AuthenticodeError::NotSignedBy { trusted, .. }) => {
            AuthenticodeError::NotSignedBy { trusted, signers: signers.join(", ") }
        }
        Some(other) => other,
        None => AuthenticodeError::BadCertificateTable { reason: "it holds no PKCS#7 signature".to_owned() },
    })
}

/// Signs `data` with a detached PKCS#7 SignedData, returned as a DER ContentInfo: content type id-data and no
/// encapsulated content, the signer identified by issuer and serial number with its certificate included, and an
/// RSA PKCS#1 v1.5 signature over the SHA-256 of `data` directly (no signed attributes, so no signing time: the same
/// key and data give the same bytes). This is the shape UEFI authenticated variables carry
/// (`EFI_VARIABLE_AUTHENTICATION_2`). `openssl cms -verify -binary -inform DER -content DATA` checks it.
pub fn pkcs7_sign_detached(data: &[u8], key: &SigningKey, cert: &Certificate) -> Result<Vec<u8>> {
    key.check_matches(cert)?;
    pkcs7::build(key, cert, &[], ID_DATA, None, data, None)
}

/// The DER ContentInfo of an Authenticode signature over an image with this digest.
fn authenticode_signed_data(
    digest: &[u8; 32],
    key: &SigningKey,
    cert: &Certificate,
    chain: &[Certificate],
) -> Result<Vec<u8>> {
    let indirect = spc::indirect_data(digest).map_err(encode)?;
    let econtent = Any::encode_from(&indirect).map_err(encode)?;
    // What messageDigest covers: the content's value, without its SEQUENCE tag and length (RFC 2315 9.3).
    let signed_content = econtent.value().to_vec();
    let attributes = vec![pkcs7::empty_opus_info()?];
    pkcs7::build(key, cert, chain, SPC_INDIRECT_DATA, Some(econtent), &signed_content, Some(attributes))
}

fn indirect_data(parsed: &pkcs7::Parsed, number: usize) -> Result<SpcIndirectDataContent> {
    let bad = |reason: String| AuthenticodeError::BadSignature { number, reason };
    let content = &parsed.signed_data.encap_content_info;
    if content.econtent_type != SPC_INDIRECT_DATA {
        return Err(bad(format!("its content type is {}, not SpcIndirectDataContent", content.econtent_type)));
    }
    let econtent = content.econtent.as_ref().ok_or_else(|| bad("it has no SpcIndirectDataContent".to_owned()))?;
    econtent.decode_as().map_err(|e| bad(format!("its SpcIndirectDataContent: {e}")))
}

fn verify_one(parsed: &pkcs7::Parsed, image_digest: &[u8; 32], trusted: &Certificate, number: usize) -> Result<()> {
    let bad = |reason: &str| AuthenticodeError::BadSignature { number, reason: reason.to_owned() };
    let indirect = indirect_data(parsed, number)?;
    let algorithm = &indirect.message_digest.digest_algorithm.oid;
    if *algorithm != ID_SHA_256 {
        return Err(AuthenticodeError::UnsupportedDigest { number, algorithm: spc::digest_name(algorithm) });
    }
    if indirect.message_digest.digest.as_bytes() != image_digest {
        return Err(AuthenticodeError::ImageDigestMismatch { number });
    }
    let econtent = parsed.signed_data.encap_content_info.econtent.as_ref().ok_or_else(|| bad("no content"))?;
    let content_digest = OctetString::new(Sha256::digest(econtent.value()).as_slice()).map_err(encode)?;

    let mut not_signed_by = None;
    for (signer, raw_attributes) in &parsed.signers {
        if signer.digest_alg.oid != ID_SHA_256 {
            return Err(AuthenticodeError::UnsupportedDigest {
                number,
                algorithm: spc::digest_name(&signer.digest_alg.oid),
            });
        }
        let raw_attributes = raw_attributes.as_ref().ok_or_else(|| bad("its SignerInfo has no signed attributes"))?;
        let content_type = pkcs7::signed_attribute(signer, &ID_CONTENT_TYPE).and_then(|v| v.decode_as().ok());
        if content_type != Some(SPC_INDIRECT_DATA) {
            return Err(bad("its contentType attribute is missing or not SpcIndirectDataContent"));
        }
        let message_digest: Option<OctetString> =
            pkcs7::signed_attribute(signer, &ID_MESSAGE_DIGEST).and_then(|v| v.decode_as().ok());
        if message_digest.as_ref() != Some(&content_digest) {
            return Err(AuthenticodeError::ContentDigestMismatch { number });
        }
        let (subject, issuer, _) = describe_signer(parsed, signer);
        let Some(key) = pkcs7::chain_to(&parsed.signed_data, signer, trusted)? else {
            not_signed_by = Some(AuthenticodeError::NotSignedBy { trusted: trusted.subject(), signers: String::new() });
            continue;
        };
        if !pkcs7::signature_verifies(&key, raw_attributes, signer.signature.as_bytes()) {
            let signer = subject.unwrap_or(issuer);
            return Err(AuthenticodeError::SignatureInvalid { number, signer });
        }
        return Ok(());
    }
    Err(not_signed_by.unwrap_or_else(|| bad("it has no SignerInfo")))
}

/// Subject (when the certificate is carried), issuer and serial of a signer.
fn describe_signer(parsed: &pkcs7::Parsed, signer: &cms::signed_data::SignerInfo) -> (Option<String>, String, String) {
    use cms::signed_data::SignerIdentifier;
    let subject =
        pkcs7::signer_certificate(&parsed.signed_data, signer).map(|c| name_string(&c.tbs_certificate.subject));
    match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => {
            (subject, name_string(&id.issuer), hex(id.serial_number.as_bytes()))
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            (subject, format!("(the issuer of subject key identifier {})", hex(ski.0.as_bytes())), String::new())
        }
    }
}

#[cfg(test)]
mod tests;
