//! EFI_SIGNATURE_LIST (UEFI 2.10 §32.4.1): the contents of PK, KEK, db and dbx, and of the `.esl` files
//! `cert-to-efi-sig-list` writes.

use std::mem::size_of;

use clay_gpt::Guid;
use sha2::{Digest, Sha256};
use zerocopy::little_endian::U32;
use zerocopy::IntoBytes;

use crate::ondisk::{read_at, slice_at, u32_len, usize_from, SignatureListHeader};
use crate::{guids, EfiVarsError, Result};

/// UEFI 2.10 §32.4.1: EFI_SIGNATURE_DATA starts with its SignatureOwner GUID.
const OWNER_LEN: usize = size_of::<Guid>();

/// One EFI_SIGNATURE_LIST: signatures of one type, each as large as the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureList {
    /// SignatureType, e.g. [`guids::CERT_X509`] or [`guids::CERT_SHA256`].
    pub signature_type: Guid,
    /// SignatureHeader; empty for every type UEFI defines today.
    pub header: Vec<u8>,
    pub signatures: Vec<SignatureData>,
}

/// One EFI_SIGNATURE_DATA: who owns the signature, and the signature itself (a DER certificate, a hash, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureData {
    pub owner: Guid,
    pub data: Vec<u8>,
}

impl SignatureList {
    /// A list holding one X.509 certificate (DER), as `cert-to-efi-sig-list -g OWNER` writes it.
    pub fn x509(owner: Guid, der_cert: &[u8]) -> SignatureList {
        SignatureList {
            signature_type: guids::CERT_X509,
            header: Vec::new(),
            signatures: vec![SignatureData { owner, data: der_cert.to_vec() }],
        }
    }

    /// A list holding one SHA-256 digest (of an image, for db or dbx).
    pub fn sha256(owner: Guid, digest: [u8; 32]) -> SignatureList {
        SignatureList {
            signature_type: guids::CERT_SHA256,
            header: Vec::new(),
            signatures: vec![SignatureData { owner, data: digest.to_vec() }],
        }
    }

    /// The dbx OVMF's own key enrollment and `virt-fw-vars` write when there is nothing to revoke: the SHA-256 of
    /// the empty string, which no image has. It gives tools that append revocations an existing dbx to extend.
    pub fn placeholder_dbx(owner: Guid) -> SignatureList {
        SignatureList::sha256(owner, Sha256::digest(b"").into())
    }

    /// The list's bytes. Fails when the signatures differ in size (one list holds equal-sized signatures, so
    /// certificates of different lengths need one list each) or the list exceeds 4 GiB.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let data_len = self.signatures.first().map_or(0, |s| s.data.len());
        if let Some(other) = self.signatures.iter().find(|s| s.data.len() != data_len) {
            return Err(EfiVarsError::MixedSignatureSizes { first: data_len, other: other.data.len() });
        }
        let signature_size = OWNER_LEN + data_len;
        let total =
            size_of::<SignatureListHeader>() + self.header.len() + signature_size.saturating_mul(self.signatures.len());
        let header = SignatureListHeader {
            signature_type: self.signature_type,
            signature_list_size: U32::new(u32_len(total, "signature list")?),
            signature_header_size: U32::new(u32_len(self.header.len(), "signature list header")?),
            signature_size: U32::new(u32_len(signature_size, "signature")?),
        };
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.header);
        for signature in &self.signatures {
            out.extend_from_slice(signature.owner.as_bytes());
            out.extend_from_slice(&signature.data);
        }
        Ok(out)
    }

    /// A name for the signature type: `X509`, `SHA256`, ... or the GUID.
    pub fn type_name(&self) -> String {
        guids::signature_type_name(self.signature_type).map_or_else(|| self.signature_type.to_string(), str::to_owned)
    }
}

/// The bytes of several lists one after the other: the data of a PK, KEK, db or dbx variable.
pub fn signature_lists_to_bytes(lists: &[SignatureList]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for list in lists {
        out.extend_from_slice(&list.to_bytes()?);
    }
    Ok(out)
}

/// Parses the data of a PK, KEK, db or dbx variable (or an `.esl` file): zero or more signature lists filling
/// `bytes` exactly.
pub fn parse_signature_lists(bytes: &[u8]) -> Result<Vec<SignatureList>> {
    let mut lists = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let bad = |reason: String| EfiVarsError::BadSignatureList { offset, reason };
        let header: SignatureListHeader = read_at(bytes, offset, "signature list header")?;
        let list_size = usize_from(header.signature_list_size.get());
        let header_size = usize_from(header.signature_header_size.get());
        let signature_size = usize_from(header.signature_size.get());
        let list = slice_at(bytes, offset, list_size, "signature list")?;
        if signature_size < OWNER_LEN {
            return Err(bad(format!("its SignatureSize {signature_size} is smaller than the owner GUID")));
        }
        let fixed = size_of::<SignatureListHeader>().saturating_add(header_size);
        let body = list.get(fixed..).ok_or_else(|| {
            bad(format!("its SignatureListSize {list_size} leaves no room for a {header_size}-byte SignatureHeader"))
        })?;
        if body.len() % signature_size != 0 {
            return Err(bad(format!(
                "its {} bytes of signatures are not a multiple of SignatureSize {signature_size}",
                body.len()
            )));
        }
        let signatures = body
            .chunks_exact(signature_size)
            .map(|chunk| {
                let (owner, data) = chunk.split_at(OWNER_LEN);
                let mut guid = [0u8; OWNER_LEN];
                guid.copy_from_slice(owner);
                SignatureData { owner: Guid(guid), data: data.to_vec() }
            })
            .collect();
        lists.push(SignatureList {
            signature_type: header.signature_type,
            header: list[size_of::<SignatureListHeader>()..fixed].to_vec(),
            signatures,
        });
        offset += list_size;
    }
    Ok(lists)
}
