//! The on-disk structures, declared once with explicit little-endian fields, and the byte-reading helpers every
//! parser here uses.

use std::mem::size_of;

use clay_gpt::Guid;
use zerocopy::little_endian::{I16, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{EfiVarsError, Result};

/// UEFI 2.10 §8.3 (GetTime): EFI_TIME.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawTime {
    pub year: U16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub pad1: u8,
    pub nanosecond: U32,
    pub time_zone: I16,
    pub daylight: u8,
    pub pad2: u8,
}

/// UEFI 2.10 §32.4.1: EFI_SIGNATURE_LIST without its variable-length SignatureHeader and Signatures.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct SignatureListHeader {
    pub signature_type: Guid,
    pub signature_list_size: U32,
    pub signature_header_size: U32,
    pub signature_size: U32,
}

/// UEFI 2.10 §32.2.4: WIN_CERTIFICATE_UEFI_GUID without its CertData.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct WinCertificateUefiGuid {
    /// dwLength: the whole structure, CertData included.
    pub length: U32,
    pub revision: U16,
    pub certificate_type: U16,
    pub cert_type: Guid,
}

/// UEFI 2.10 §32.2.4: wRevision of WIN_CERTIFICATE.
pub const WIN_CERT_REVISION: u16 = 0x0200;
/// UEFI 2.10 §32.2.4: wCertificateType WIN_CERT_TYPE_EFI_GUID.
pub const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0EF1;

/// PI 1.8 Vol. 3 §3.2.1: EFI_FIRMWARE_VOLUME_HEADER up to (not including) its BlockMap.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FvHeader {
    pub zero_vector: [u8; 16],
    pub file_system_guid: Guid,
    pub fv_length: U64,
    pub signature: [u8; 4],
    pub attributes: U32,
    pub header_length: U16,
    pub checksum: U16,
    pub ext_header_offset: U16,
    pub reserved: u8,
    pub revision: u8,
}

/// PI 1.8 Vol. 3 §3.2.1: one EFI_FV_BLOCK_MAP_ENTRY; a zero entry ends the map.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FvBlockMapEntry {
    pub num_blocks: U32,
    pub length: U32,
}

/// PI 1.8 Vol. 3 §3.2.1: Signature of a firmware volume header.
pub const FV_SIGNATURE: [u8; 4] = *b"_FVH";

/// EDK II MdeModulePkg/Include/Guid/VariableFormat.h: VARIABLE_STORE_HEADER.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct VarStoreHeader {
    pub signature: Guid,
    /// Size of the store, this header included.
    pub size: U32,
    pub format: u8,
    pub state: u8,
    pub reserved: U16,
    pub reserved1: U32,
}

/// VariableFormat.h: VARIABLE_STORE_FORMATTED.
pub const VARSTORE_FORMATTED: u8 = 0x5A;
/// VariableFormat.h: VARIABLE_STORE_HEALTHY.
pub const VARSTORE_HEALTHY: u8 = 0xFE;

/// VariableFormat.h: AUTHENTICATED_VARIABLE_HEADER (packed); the NUL-terminated UTF-16 name and the data follow.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct AuthVariableHeader {
    pub start_id: U16,
    pub state: u8,
    pub reserved: u8,
    pub attributes: U32,
    pub monotonic_count: U64,
    pub timestamp: RawTime,
    pub pubkey_index: U32,
    pub name_size: U32,
    pub data_size: U32,
    pub vendor_guid: Guid,
}

/// VariableFormat.h: VARIABLE_DATA, the StartId of every variable header.
pub const VARIABLE_START_ID: u16 = 0x55AA;
/// VariableFormat.h: VAR_ADDED, the State of a live variable.
pub const VAR_ADDED: u8 = 0x3F;
/// VariableFormat.h: VAR_IN_DELETED_TRANSITION; states are cleared bit by bit, so a variable being replaced reads
/// `VAR_ADDED & VAR_IN_DELETED_TRANSITION` and still counts until its successor is complete.
pub const VAR_IN_DELETED_TRANSITION: u8 = 0xFE;
/// VariableFormat.h: HEADER_ALIGNMENT on IA32/X64: each variable header starts on a 4-byte boundary. The data
/// follows the name without padding there (GET_PAD_SIZE is 0 unless ALIGNMENT is 8).
pub const VARIABLE_ALIGNMENT: usize = 4;
/// The byte erased flash reads as; the store's free space and padding between variables.
pub const ERASED: u8 = 0xFF;

/// EDK II MdeModulePkg/Include/Guid/SystemNvDataGuid.h: EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER; the write queue
/// of WriteQueueSize bytes follows.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FtwWorkingBlockHeader {
    pub signature: Guid,
    /// CRC32 of this header with Crc and the state byte taken as erased (all ones).
    pub crc: U32,
    /// Bit 0 WorkingBlockValid, bit 1 WorkingBlockInvalid, cleared to set (FTW_VALID_STATE is 0).
    pub state: u8,
    pub reserved: [u8; 3],
    pub write_queue_size: U64,
}

const _: () = assert!(size_of::<RawTime>() == 16);
const _: () = assert!(size_of::<SignatureListHeader>() == 28);
const _: () = assert!(size_of::<WinCertificateUefiGuid>() == 24);
const _: () = assert!(size_of::<FvHeader>() == 56);
const _: () = assert!(size_of::<FvBlockMapEntry>() == 8);
const _: () = assert!(size_of::<VarStoreHeader>() == 28);
const _: () = assert!(size_of::<AuthVariableHeader>() == 60);
const _: () = assert!(size_of::<FtwWorkingBlockHeader>() == 32);

/// Reads a `T` at `offset` of `bytes`, or says which structure did not fit.
pub fn read_at<T: FromBytes + KnownLayout + Immutable + Unaligned + Copy>(
    bytes: &[u8],
    offset: usize,
    what: &'static str,
) -> Result<T> {
    let rest = bytes.get(offset..).unwrap_or_default();
    T::read_from_prefix(rest).map(|(value, _)| value).map_err(|_| EfiVarsError::Truncated {
        what,
        offset,
        needed: size_of::<T>(),
        available: rest.len(),
    })
}

/// `bytes[offset..offset + len]`, or says which field did not fit.
pub fn slice_at<'a>(bytes: &'a [u8], offset: usize, len: usize, what: &'static str) -> Result<&'a [u8]> {
    let rest = bytes.get(offset..).unwrap_or_default();
    rest.get(..len).ok_or(EfiVarsError::Truncated { what, offset, needed: len, available: rest.len() })
}

/// A size as the u32 of a header field.
pub fn u32_len(len: usize, what: &'static str) -> Result<u32> {
    u32::try_from(len).map_err(|_| EfiVarsError::TooLarge { what, len })
}

/// A u32 header field as a size. Every target this crate runs on has a usize of at least 32 bits.
pub fn usize_from(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The name of a variable as UEFI stores it: UTF-16LE, without a terminator.
pub fn utf16_name(name: &str) -> Result<Vec<u8>> {
    if name.is_empty() || name.contains('\0') {
        return Err(EfiVarsError::BadName { name: name.to_owned() });
    }
    Ok(name.encode_utf16().flat_map(u16::to_le_bytes).collect())
}
