//! Time-based authenticated variable updates (UEFI 2.10 §8.2.2): EFI_VARIABLE_AUTHENTICATION_2 followed by the
//! new data, the `.auth` files `sign-efi-sig-list` writes and firmware accepts through SetVariable().
//!
//! The signature is a PKCS#7 SignedData made by the caller (this crate signs nothing): detached, SHA-256, over
//! the bytes [`AuthVariable::to_be_signed`] returns, i.e. VariableName (UTF-16LE, no terminator) ‖ VendorGuid ‖
//! Attributes ‖ TimeStamp ‖ Data. The firmware recomputes that digest and checks it against the SignedData.

use std::mem::size_of;

use clay_gpt::Guid;
use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

use crate::ondisk::{read_at, u32_len, usize_from, utf16_name, RawTime, WinCertificateUefiGuid};
use crate::ondisk::{WIN_CERT_REVISION, WIN_CERT_TYPE_EFI_GUID};
use crate::{attributes, guids, EfiTime, EfiVarsError, Result};

/// The four Secure Boot policy variables (UEFI 2.10 §32.3, §32.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecureBootVariable {
    /// The platform key: one X.509 certificate; its holder may change KEK (and PK).
    Pk,
    /// Key exchange keys: may change db and dbx.
    Kek,
    /// The allowed signature database: certificates and hashes of images that may run.
    Db,
    /// The forbidden signature database: revoked certificates and hashes.
    Dbx,
}

impl SecureBootVariable {
    /// UEFI 2.10 §3.3 and §32.6.1: NV, BS, RT and time-based authenticated write access.
    pub const ATTRIBUTES: u32 = attributes::NON_VOLATILE
        | attributes::BOOTSERVICE_ACCESS
        | attributes::RUNTIME_ACCESS
        | attributes::TIME_BASED_AUTHENTICATED_WRITE_ACCESS;

    /// The variable's name: `PK`, `KEK`, `db` or `dbx`.
    pub fn name(self) -> &'static str {
        match self {
            SecureBootVariable::Pk => "PK",
            SecureBootVariable::Kek => "KEK",
            SecureBootVariable::Db => "db",
            SecureBootVariable::Dbx => "dbx",
        }
    }

    /// Its vendor GUID: EFI_GLOBAL_VARIABLE for PK and KEK, EFI_IMAGE_SECURITY_DATABASE_GUID for db and dbx.
    pub fn guid(self) -> Guid {
        match self {
            SecureBootVariable::Pk | SecureBootVariable::Kek => guids::GLOBAL_VARIABLE,
            SecureBootVariable::Db | SecureBootVariable::Dbx => guids::IMAGE_SECURITY_DATABASE,
        }
    }

    /// Whose key signs an update of it: PK signs PK and KEK, a KEK signs db and dbx (UEFI 2.10 §32.3.3).
    pub fn signed_by(self) -> SecureBootVariable {
        match self {
            SecureBootVariable::Pk | SecureBootVariable::Kek => SecureBootVariable::Pk,
            SecureBootVariable::Db | SecureBootVariable::Dbx => SecureBootVariable::Kek,
        }
    }
}

/// A time-based authenticated variable and its new value, checked on construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthVariable {
    name: String,
    guid: Guid,
    attributes: u32,
    timestamp: EfiTime,
    data: Vec<u8>,
}

impl AuthVariable {
    /// Checks that the name is a valid variable name, the attributes ask for time-based authenticated write
    /// access, and the timestamp is what UEFI 2.10 §8.2.2 allows (see [`EfiTime::check_authenticated`]).
    pub fn new(name: &str, guid: Guid, attributes: u32, timestamp: EfiTime, data: Vec<u8>) -> Result<AuthVariable> {
        utf16_name(name)?;
        if attributes & attributes::TIME_BASED_AUTHENTICATED_WRITE_ACCESS == 0 {
            return Err(EfiVarsError::NotTimeBased { name: name.to_owned() });
        }
        timestamp.check_authenticated()?;
        Ok(AuthVariable { name: name.to_owned(), guid, attributes, timestamp, data })
    }

    /// PK, KEK, db or dbx set to `data` (its signature lists), with the attributes `sign-efi-sig-list` uses.
    pub fn secure_boot(variable: SecureBootVariable, timestamp: EfiTime, data: Vec<u8>) -> Result<AuthVariable> {
        AuthVariable::new(variable.name(), variable.guid(), SecureBootVariable::ATTRIBUTES, timestamp, data)
    }

    /// The same update with EFI_VARIABLE_APPEND_WRITE: the firmware adds the signatures to the variable instead
    /// of replacing it (`sign-efi-sig-list -a`).
    pub fn appending(mut self) -> AuthVariable {
        self.attributes |= attributes::APPEND_WRITE;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn guid(&self) -> Guid {
        self.guid
    }

    pub fn attributes(&self) -> u32 {
        self.attributes
    }

    pub fn timestamp(&self) -> EfiTime {
        self.timestamp
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The bytes to sign (UEFI 2.10 §8.2.2, step 2 of "constructing an authenticated variable"): VariableName
    /// without its terminator ‖ VendorGuid ‖ Attributes ‖ TimeStamp ‖ Data. Identical to what
    /// `sign-efi-sig-list -o` writes.
    pub fn to_be_signed(&self) -> Vec<u8> {
        // The name was checked in `new`; an empty fallback cannot occur.
        let name = utf16_name(&self.name).unwrap_or_default();
        let mut out = Vec::with_capacity(name.len() + 16 + 4 + 16 + self.data.len());
        out.extend_from_slice(&name);
        out.extend_from_slice(self.guid.as_bytes());
        out.extend_from_slice(&self.attributes.to_le_bytes());
        out.extend_from_slice(self.timestamp.to_raw().as_bytes());
        out.extend_from_slice(&self.data);
        out
    }

    /// The `.auth` file: EFI_VARIABLE_AUTHENTICATION_2 (TimeStamp, then WIN_CERTIFICATE_UEFI_GUID with CertType
    /// EFI_CERT_TYPE_PKCS7_GUID holding `signed_data`) followed by the data. `signed_data` is the DER PKCS#7
    /// SignedData over [`to_be_signed`](Self::to_be_signed), bare or wrapped in a ContentInfo (as `openssl cms`
    /// and `openssl smime` write it); it is stored bare, as UEFI 2.10 §8.2.2 specifies and `sign-efi-sig-list`
    /// writes.
    pub fn auth_file(&self, signed_data: &[u8]) -> Result<Vec<u8>> {
        let signed_data = bare_signed_data(signed_data)?;
        let length = size_of::<WinCertificateUefiGuid>() + signed_data.len();
        let cert = WinCertificateUefiGuid {
            length: U32::new(u32_len(length, "PKCS#7 signature")?),
            revision: U16::new(WIN_CERT_REVISION),
            certificate_type: U16::new(WIN_CERT_TYPE_EFI_GUID),
            cert_type: guids::CERT_TYPE_PKCS7,
        };
        let mut out = Vec::with_capacity(size_of::<RawTime>() + length + self.data.len());
        out.extend_from_slice(self.timestamp.to_raw().as_bytes());
        out.extend_from_slice(cert.as_bytes());
        out.extend_from_slice(signed_data);
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    /// [`auth_file`](Self::auth_file) with the signature made by `sign`, which gets the bytes to be signed and
    /// returns the DER SignedData (e.g. the PKCS#7 signer of `clay-authenticode`, or an HSM).
    pub fn signed_auth_file<E: From<EfiVarsError>>(
        &self,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let signed_data = sign(&self.to_be_signed())?;
        Ok(self.auth_file(&signed_data)?)
    }
}

/// A parsed `.auth` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFile<'a> {
    pub timestamp: EfiTime,
    /// The DER SignedData as stored (normally bare, see [`AuthVariable::auth_file`]).
    pub signed_data: &'a [u8],
    /// The new value of the variable: signature lists for PK, KEK, db and dbx.
    pub data: &'a [u8],
}

/// Parses EFI_VARIABLE_AUTHENTICATION_2 and the data after it; the CertType must be EFI_CERT_TYPE_PKCS7_GUID.
pub fn parse_auth_file(bytes: &[u8]) -> Result<AuthFile<'_>> {
    let raw_time: RawTime = read_at(bytes, 0, "EFI_TIME")?;
    let cert_offset = size_of::<RawTime>();
    let cert: WinCertificateUefiGuid = read_at(bytes, cert_offset, "WIN_CERTIFICATE_UEFI_GUID")?;
    let bad = |reason: String| EfiVarsError::BadAuthFile(reason);
    if cert.revision.get() != WIN_CERT_REVISION || cert.certificate_type.get() != WIN_CERT_TYPE_EFI_GUID {
        return Err(bad(format!(
            "its WIN_CERTIFICATE has revision {:#06x} and type {:#06x} where {WIN_CERT_REVISION:#06x} and \
             {WIN_CERT_TYPE_EFI_GUID:#06x} (WIN_CERT_TYPE_EFI_GUID) are required",
            cert.revision.get(),
            cert.certificate_type.get()
        )));
    }
    if cert.cert_type != guids::CERT_TYPE_PKCS7 {
        return Err(bad(format!("its CertType is {} instead of EFI_CERT_TYPE_PKCS7_GUID", cert.cert_type)));
    }
    let length = usize_from(cert.length.get());
    let data_offset = cert_offset.saturating_add(length);
    if length < size_of::<WinCertificateUefiGuid>() || data_offset > bytes.len() {
        return Err(bad(format!("its dwLength {length} does not fit the file's {} bytes", bytes.len())));
    }
    Ok(AuthFile {
        timestamp: EfiTime::from_raw(&raw_time),
        signed_data: &bytes[cert_offset + size_of::<WinCertificateUefiGuid>()..data_offset],
        data: &bytes[data_offset..],
    })
}

/// X.690: the tags this reads.
const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_CONTEXT_0: u8 = 0xA0;
/// RFC 5652 §5.1: id-signedData, 1.2.840.113549.1.7.2, as DER content bytes.
const OID_SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];

/// The SignedData inside `der`: `der` itself when it is one, its content when it is a ContentInfo (RFC 5652 §3)
/// of type id-signedData.
pub(crate) fn bare_signed_data(der: &[u8]) -> Result<&[u8]> {
    let (tag, outer, rest) = der_element(der)?;
    if tag != TAG_SEQUENCE || !rest.is_empty() {
        return Err(EfiVarsError::NotSignedData("it is not a single DER SEQUENCE"));
    }
    let (tag, oid, after_oid) = der_element(outer)?;
    if tag != TAG_OID {
        // A SignedData starts with its version INTEGER, a ContentInfo with the content type OID.
        return Ok(der);
    }
    if oid != OID_SIGNED_DATA {
        return Err(EfiVarsError::NotSignedData("its ContentInfo holds something other than SignedData"));
    }
    let (tag, explicit, rest) = der_element(after_oid)?;
    if tag != TAG_CONTEXT_0 || !rest.is_empty() {
        return Err(EfiVarsError::NotSignedData("its ContentInfo has no [0] content"));
    }
    let (tag, _, rest) = der_element(explicit)?;
    if tag != TAG_SEQUENCE || !rest.is_empty() {
        return Err(EfiVarsError::NotSignedData("its ContentInfo content is not one SEQUENCE"));
    }
    Ok(explicit)
}

/// Splits one DER element (X.690 §8.1, definite length) off `bytes`: (tag, content, rest).
fn der_element(bytes: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    let truncated = || EfiVarsError::NotSignedData("a DER element is truncated");
    let (&tag, rest) = bytes.split_first().ok_or(EfiVarsError::NotSignedData("it is empty"))?;
    let (&first, mut rest) = rest.split_first().ok_or_else(truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > size_of::<u32>() || rest.len() < count {
            return Err(EfiVarsError::NotSignedData("a DER length is indefinite or malformed"));
        }
        let (len_bytes, after) = rest.split_at(count);
        rest = after;
        len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return Err(truncated());
    }
    let (content, rest) = rest.split_at(len);
    Ok((tag, content, rest))
}
