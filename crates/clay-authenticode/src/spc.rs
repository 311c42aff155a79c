//! The Authenticode-specific ASN.1 structures that the `cms` crate does not define, and the object identifiers used.
//!
//! From Microsoft's "Windows Authenticode Portable Executable Signature Format", section "Authenticode-Specific
//! Structures" (SpcIndirectDataContent and what it holds), and RFC 2315 / RFC 8017 for DigestInfo.

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, BmpString, ContextSpecific, OctetString};
use der::{Sequence, TagMode, TagNumber};
use spki::AlgorithmIdentifierOwned;

/// `SPC_INDIRECT_DATA_OBJID`: the content type of an Authenticode signature.
pub(crate) const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `SPC_PE_IMAGE_DATAOBJ`: the SpcAttributeTypeAndOptionalValue type saying a PE image was hashed.
pub(crate) const SPC_PE_IMAGE_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// `SPC_SP_OPUS_INFO_OBJID`: the signed attribute with the program name and URL, written empty.
pub(crate) const SPC_SP_OPUS_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");

pub(crate) use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
pub(crate) use const_oid::db::rfc5912::{
    ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512, RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION,
    SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};

/// What the specification asks for in SpcPeImageData's `file` link, which carries no information: the string
/// `<<<Obsolete>>>` as a Unicode SpcString.
const OBSOLETE: &str = "<<<Obsolete>>>";
/// SpcLink's `file` alternative and SpcString's `unicode` alternative.
const SPC_LINK_FILE: u8 = 2;
const SPC_STRING_UNICODE: u8 = 0;

/// ```text
/// SpcIndirectDataContent ::= SEQUENCE {
///     data                    SpcAttributeTypeAndOptionalValue,
///     messageDigest           DigestInfo }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SpcIndirectDataContent {
    pub(crate) data: SpcAttributeTypeAndOptionalValue,
    pub(crate) message_digest: DigestInfo,
}

/// ```text
/// SpcAttributeTypeAndOptionalValue ::= SEQUENCE {
///     type                    ObjectID,
///     value                   ANY OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SpcAttributeTypeAndOptionalValue {
    pub(crate) value_type: ObjectIdentifier,
    pub(crate) value: Option<Any>,
}

/// ```text
/// DigestInfo ::= SEQUENCE {
///     digestAlgorithm         AlgorithmIdentifier,
///     digest                  OCTETSTRING }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct DigestInfo {
    pub(crate) digest_algorithm: AlgorithmIdentifierOwned,
    pub(crate) digest: OctetString,
}

/// ```text
/// SpcPeImageData ::= SEQUENCE {
///     flags                   SpcPeImageFlags DEFAULT { includeResources },
///     file                    [0] EXPLICIT SpcLink OPTIONAL }
/// SpcLink ::= CHOICE { ..., file [2] EXPLICIT SpcString }
/// SpcString ::= CHOICE { unicode [0] IMPLICIT BMPSTRING, ... }
/// ```
/// Only ever written, with empty flags and the obsolete file link, as signtool and sbsign write it.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SpcPeImageData {
    flags: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    file: Option<ContextSpecific<ContextSpecific<BmpString>>>,
}

/// SHA-256's AlgorithmIdentifier with the NULL parameters that signtool, sbsign and osslsigncode write.
pub(crate) fn sha256_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: ID_SHA_256, parameters: Some(Any::null()) }
}

/// The `rsaEncryption` signature algorithm (with NULL parameters) of PKCS#7 SignerInfos.
pub(crate) fn rsa_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(Any::null()) }
}

/// The SpcIndirectDataContent for a PE image whose Authenticode SHA-256 digest is `digest`.
pub(crate) fn indirect_data(digest: &[u8; 32]) -> der::Result<SpcIndirectDataContent> {
    let link = ContextSpecific {
        tag_number: TagNumber::new(SPC_LINK_FILE),
        tag_mode: TagMode::Explicit,
        value: ContextSpecific {
            tag_number: TagNumber::new(SPC_STRING_UNICODE),
            tag_mode: TagMode::Implicit,
            value: BmpString::from_utf8(OBSOLETE)?,
        },
    };
    let image_data = SpcPeImageData { flags: BitString::new(0, [])?, file: Some(link) };
    Ok(SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue {
            value_type: SPC_PE_IMAGE_DATA,
            value: Some(Any::encode_from(&image_data)?),
        },
        message_digest: DigestInfo {
            digest_algorithm: sha256_algorithm(),
            digest: OctetString::new(digest.as_slice())?,
        },
    })
}

/// A readable name for a digest algorithm.
pub(crate) fn digest_name(oid: &ObjectIdentifier) -> String {
    match *oid {
        ID_SHA_1 => "SHA-1".to_owned(),
        ID_SHA_256 => "SHA-256".to_owned(),
        ID_SHA_384 => "SHA-384".to_owned(),
        ID_SHA_512 => "SHA-512".to_owned(),
        other => other.to_string(),
    }
}
