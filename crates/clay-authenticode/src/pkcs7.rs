//! PKCS#7 SignedData: building one (Authenticode or detached), and taking one apart to check it.
//!
//! PKCS#7 v1.5 (RFC 2315) as Authenticode uses it: version 1, the content inside `[0] EXPLICIT` untagged (not in an
//! OCTET STRING as CMS would put it), one SignerInfo identified by issuer and serial number, RSA PKCS#1 v1.5 with
//! SHA-256. Signed attributes are sorted as DER requires and never include a signing time, so the same key and
//! content give the same bytes.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::attr::Attribute;

use crate::error::{encode, AuthenticodeError, Result};
use crate::keys::{Certificate, SigningKey};
use crate::spc::{self, ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, SPC_SP_OPUS_INFO};

/// Builds a DER ContentInfo holding a SignedData by `key`/`cert` (and `chain` embedded after `cert`).
///
/// With `attributes`, the signed attributes are contentType (`content_type`), messageDigest (SHA-256 of
/// `signed_content`) and those given, and the signature covers them; without, the signature covers
/// `signed_content` itself.
pub(crate) fn build(
    key: &SigningKey,
    cert: &Certificate,
    chain: &[Certificate],
    content_type: ObjectIdentifier,
    econtent: Option<Any>,
    signed_content: &[u8],
    attributes: Option<Vec<Attribute>>,
) -> Result<Vec<u8>> {
    let (signed_attrs, to_sign) = match attributes {
        Some(mut extra) => {
            extra.push(attribute(ID_CONTENT_TYPE, Any::encode_from(&content_type).map_err(encode)?)?);
            let digest = OctetString::new(Sha256::digest(signed_content).as_slice()).map_err(encode)?;
            extra.push(attribute(ID_MESSAGE_DIGEST, Any::encode_from(&digest).map_err(encode)?)?);
            let attrs = SignedAttributes::try_from(extra).map_err(encode)?;
            // The signature covers the attributes' DER as a SET OF, not as the [0] they are tagged with in place.
            let der = attrs.to_der().map_err(encode)?;
            (Some(attrs), der)
        }
        None => (None, signed_content.to_vec()),
    };
    let signature =
        key.key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&to_sign)).map_err(AuthenticodeError::Sign)?;

    let tbs = &cert.cert.tbs_certificate;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: spc::sha256_algorithm(),
        signed_attrs,
        signature_algorithm: spc::rsa_algorithm(),
        signature: OctetString::new(signature).map_err(encode)?,
        unsigned_attrs: None,
    };
    let certificates: Vec<CertificateChoices> =
        std::iter::once(cert).chain(chain).map(|c| CertificateChoices::Certificate(c.cert.clone())).collect();
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![spc::sha256_algorithm()]).map_err(encode)?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: content_type, econtent },
        certificates: Some(CertificateSet(SetOfVec::try_from(certificates).map_err(encode)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(encode)?),
    };
    let info = ContentInfo { content_type: ID_SIGNED_DATA, content: Any::encode_from(&signed_data).map_err(encode)? };
    info.to_der().map_err(encode)
}

/// A SpcSpOpusInfo signed attribute with neither program name nor URL, as osslsigncode writes it.
pub(crate) fn empty_opus_info() -> Result<Attribute> {
    attribute(SPC_SP_OPUS_INFO, Any::new(Tag::Sequence, Vec::new()).map_err(encode)?)
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![value]).map_err(encode)? })
}

/// One PKCS#7 SignedData taken apart.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) signed_data: SignedData,
    /// Each SignerInfo with its signed attributes' DER exactly as the signer encoded it (as a SET), which is what
    /// the signature covers and what decoding then re-encoding might not reproduce.
    pub(crate) signers: Vec<(SignerInfo, Option<Vec<u8>>)>,
}

/// Parses a DER ContentInfo holding a SignedData; bytes after it (the certificate table's padding) are ignored.
pub(crate) fn parse(bytes: &[u8], number: usize) -> Result<Parsed> {
    let bad = |what: &str, e: der::Error| AuthenticodeError::BadSignature { number, reason: format!("{what}: {e}") };
    let mut reader = SliceReader::new(bytes).map_err(|e| bad("its PKCS#7 ContentInfo", e))?;
    let info = ContentInfo::decode(&mut reader).map_err(|e| bad("its PKCS#7 ContentInfo", e))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(AuthenticodeError::BadSignature {
            number,
            reason: format!("its content type is {}, not PKCS#7 SignedData", info.content_type),
        });
    }
    let signed_data: SignedData = info.content.decode_as().map_err(|e| bad("its SignedData", e))?;
    let signers = raw_signer_infos(info.content.value())
        .map_err(|e| bad("its SignerInfos", e))?
        .into_iter()
        .map(|raw| {
            let signer: SignerInfo = raw.decode_as()?;
            Ok((signer, raw_signed_attributes(raw.value())?))
        })
        .collect::<der::Result<Vec<_>>>()
        .map_err(|e| bad("its SignerInfo", e))?;
    if signers.is_empty() {
        return Err(AuthenticodeError::BadSignature { number, reason: "it has no SignerInfo".to_owned() });
    }
    Ok(Parsed { signed_data, signers })
}

/// The SignerInfos of a SignedData's contents, in their encoded order: the last element of the SEQUENCE.
fn raw_signer_infos(signed_data: &[u8]) -> der::Result<Vec<Any>> {
    let last = elements(signed_data)?.pop().ok_or_else(|| Tag::Set.value_error())?;
    if last.tag() != Tag::Set {
        return Err(last.tag().unexpected_error(Some(Tag::Set)));
    }
    elements(last.value())
}

/// The `[0] IMPLICIT` signed attributes of a SignerInfo's contents, re-tagged as the SET OF they are signed as.
fn raw_signed_attributes(signer_info: &[u8]) -> der::Result<Option<Vec<u8>>> {
    let signed = Tag::ContextSpecific { constructed: true, number: der::TagNumber::N0 };
    elements(signer_info)?
        .into_iter()
        .find(|e| e.tag() == signed)
        .map(|e| Any::new(Tag::Set, e.value())?.to_der())
        .transpose()
}

/// The TLV elements of a constructed value's contents.
fn elements(contents: &[u8]) -> der::Result<Vec<Any>> {
    let mut reader = SliceReader::new(contents)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(Any::decode(&mut reader)?);
    }
    Ok(out)
}

/// The single value of the signed attribute `oid`.
pub(crate) fn signed_attribute<'a>(signer: &'a SignerInfo, oid: &ObjectIdentifier) -> Option<&'a Any> {
    signer.signed_attrs.as_ref()?.iter().find(|a| a.oid == *oid)?.values.get(0)
}

/// The certificate a SignerInfo names, among those the SignedData carries.
pub(crate) fn signer_certificate<'a>(
    signed_data: &'a SignedData,
    signer: &SignerInfo,
) -> Option<&'a x509_cert::Certificate> {
    let SignerIdentifier::IssuerAndSerialNumber(id) = &signer.sid else { return None };
    embedded(signed_data)
        .find(|c| c.tbs_certificate.issuer == id.issuer && c.tbs_certificate.serial_number == id.serial_number)
}

pub(crate) fn embedded(signed_data: &SignedData) -> impl Iterator<Item = &x509_cert::Certificate> {
    signed_data.certificates.iter().flat_map(|set| set.0.iter()).filter_map(|choice| match choice {
        CertificateChoices::Certificate(c) => Some(c),
        CertificateChoices::Other(_) => None,
    })
}

/// Finds the signer's public key if the signer is `trusted`, or its certificate was issued by `trusted` directly or
/// through certificates the SignedData carries. Validity dates are not checked: UEFI firmware has no trusted
/// clock and ignores them too.
pub(crate) fn chain_to(
    signed_data: &SignedData,
    signer: &SignerInfo,
    trusted: &Certificate,
) -> Result<Option<RsaPublicKey>> {
    /// Deeper chains than this are not followed (real ones have one or two intermediates).
    const MAX_DEPTH: usize = 8;
    let trusted_key = trusted.public_key()?;
    let Some(leaf) = signer_certificate(signed_data, signer) else {
        // A signature that does not carry its certificate can still be by `trusted` itself.
        let SignerIdentifier::IssuerAndSerialNumber(id) = &signer.sid else { return Ok(None) };
        let t = &trusted.cert.tbs_certificate;
        return Ok((t.issuer == id.issuer && t.serial_number == id.serial_number).then_some(trusted_key));
    };
    let leaf_key = Certificate::from_x509(leaf.clone())?.public_key()?;
    let mut current = leaf;
    for _ in 0..MAX_DEPTH {
        let same = current.tbs_certificate.subject == *trusted.subject_name()
            && current.tbs_certificate.subject_public_key_info == trusted.cert.tbs_certificate.subject_public_key_info;
        if same || (current.tbs_certificate.issuer == *trusted.subject_name() && issued_by(current, &trusted_key)) {
            return Ok(Some(leaf_key));
        }
        let issuer = embedded(signed_data).find(|c| {
            *c != current && c.tbs_certificate.subject == current.tbs_certificate.issuer && {
                Certificate::from_x509((*c).clone()).and_then(|c| c.public_key()).is_ok_and(|k| issued_by(current, &k))
            }
        });
        match issuer {
            Some(next) => current = next,
            None => break,
        }
    }
    Ok(None)
}

/// Whether `cert`'s signature verifies with `issuer_key` (RSA PKCS#1 v1.5 with SHA-256, -384 or -512).
fn issued_by(cert: &x509_cert::Certificate, issuer_key: &RsaPublicKey) -> bool {
    let Ok(tbs) = cert.tbs_certificate.to_der() else { return false };
    let signature = cert.signature.raw_bytes();
    let result = match cert.signature_algorithm.oid {
        spc::SHA_256_WITH_RSA_ENCRYPTION => {
            issuer_key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&tbs), signature)
        }
        spc::SHA_384_WITH_RSA_ENCRYPTION => {
            issuer_key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(&tbs), signature)
        }
        spc::SHA_512_WITH_RSA_ENCRYPTION => {
            issuer_key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(&tbs), signature)
        }
        _ => return false,
    };
    result.is_ok()
}

/// Whether `signature` is `key`'s RSA PKCS#1 v1.5 SHA-256 signature of `message`.
pub(crate) fn signature_verifies(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message), signature).is_ok()
}
