//! The on-disk structures, declared once with explicit little-endian fields (UEFI 2.10 §5.2 and §5.3).

use std::mem::size_of;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::Guid;

/// The logical block size this crate writes and reads. UEFI allows others; 512 is what every disk image uses.
pub const SECTOR_SIZE: u64 = 512;
/// [`SECTOR_SIZE`] for indexing.
pub const SECTOR_LEN: usize = 512;

/// UEFI 2.10 §5.2.1 (Legacy MBR): bytes of boot code before the disk signature.
pub const MBR_BOOT_CODE_LEN: usize = 440;
/// UEFI 2.10 §5.2.1: the MBR signature at offset 510.
pub const MBR_SIGNATURE: u16 = 0xAA55;
/// UEFI 2.10 §5.2.3 (Protective MBR): the OS type of the one partition record that covers the GPT disk.
pub const PMBR_OS_TYPE: u8 = 0xEE;
/// UEFI 2.10 §5.2.3: StartingCHS of the protective record, CHS address of LBA 1.
pub const PMBR_STARTING_CHS: [u8; 3] = [0x00, 0x02, 0x00];
/// UEFI 2.10 §5.2.3: EndingCHS when the last LBA has no CHS address.
pub const CHS_UNREPRESENTABLE: [u8; 3] = [0xFF, 0xFF, 0xFF];
/// Classic BIOS translation geometry used for CHS addresses: 255 heads, 63 sectors per track, 1024 cylinders.
const CHS_HEADS: u64 = 255;
const CHS_SECTORS: u64 = 63;
const CHS_MAX_CYLINDER: u64 = 1023;

/// UEFI 2.10 §5.3.2 (GPT Header): "EFI PART".
pub const GPT_SIGNATURE: [u8; 8] = *b"EFI PART";
/// UEFI 2.10 §5.3.2: Revision 1.0.
pub const GPT_REVISION: u32 = 0x0001_0000;
/// UEFI 2.10 §5.3.2: HeaderSize of the revision 1.0 header.
pub const GPT_HEADER_SIZE: u32 = 92;
/// UEFI 2.10 §5.3.1: the primary header lives at LBA 1.
pub const PRIMARY_HEADER_LBA: u64 = 1;
/// UEFI 2.10 §5.3.1: the primary entry array follows the primary header.
pub const PRIMARY_ENTRIES_LBA: u64 = 2;
/// UEFI 2.10 §5.3.2: SizeOfPartitionEntry is 128 × 2^n; we write 128.
pub const ENTRY_SIZE: u32 = 128;
/// UEFI 2.10 §5.3.2: the array must reserve at least 16,384 bytes, i.e. 128 entries of 128 bytes.
pub const ENTRY_COUNT: u32 = 128;
/// Bytes of one partition entry array.
pub const ENTRY_ARRAY_LEN: usize = (ENTRY_COUNT as usize) * (ENTRY_SIZE as usize);
/// Sectors of one partition entry array (32).
pub const ENTRY_ARRAY_SECTORS: u64 = ENTRY_ARRAY_LEN as u64 / SECTOR_SIZE;
/// The first LBA a partition may use: after the PMBR, the primary header and its array (34).
pub const FIRST_USABLE_LBA: u64 = PRIMARY_ENTRIES_LBA + ENTRY_ARRAY_SECTORS;
/// Sectors the backup array and header take at the end of the disk (33).
pub const BACKUP_SECTORS: u64 = ENTRY_ARRAY_SECTORS + 1;
/// UEFI 2.10 §5.3.3 (GPT Partition Entry): PartitionName holds 36 UTF-16LE code units.
pub const NAME_UNITS: usize = 36;

/// UEFI 2.10 §5.2.1: one of the four MBR partition records.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct MbrPartitionRecord {
    pub boot_indicator: u8,
    pub starting_chs: [u8; 3],
    pub os_type: u8,
    pub ending_chs: [u8; 3],
    pub starting_lba: U32,
    pub size_in_lba: U32,
}

/// UEFI 2.10 §5.2.1/§5.2.3: the (protective) MBR in LBA 0.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Mbr {
    pub boot_code: [u8; MBR_BOOT_CODE_LEN],
    /// UniqueMBRDiskSignature: unused by UEFI, zero in a protective MBR.
    pub disk_signature: U32,
    pub unknown: [u8; 2],
    pub partitions: [MbrPartitionRecord; 4],
    pub signature: U16,
}

/// UEFI 2.10 §5.3.2: the GPT header; the rest of its sector is zero.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct GptHeader {
    pub signature: [u8; 8],
    pub revision: U32,
    pub header_size: U32,
    pub header_crc32: U32,
    pub reserved: U32,
    pub my_lba: U64,
    pub alternate_lba: U64,
    pub first_usable_lba: U64,
    pub last_usable_lba: U64,
    pub disk_guid: Guid,
    pub partition_entry_lba: U64,
    pub number_of_partition_entries: U32,
    pub size_of_partition_entry: U32,
    pub partition_entry_array_crc32: U32,
}

/// UEFI 2.10 §5.3.3: one partition entry.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct GptEntry {
    pub partition_type_guid: Guid,
    pub unique_partition_guid: Guid,
    pub starting_lba: U64,
    pub ending_lba: U64,
    pub attributes: U64,
    pub partition_name: [U16; NAME_UNITS],
}

const _: () = assert!(size_of::<MbrPartitionRecord>() == 16);
const _: () = assert!(size_of::<Mbr>() == SECTOR_LEN && SECTOR_LEN as u64 == SECTOR_SIZE);
const _: () = assert!(size_of::<GptHeader>() == GPT_HEADER_SIZE as usize);
const _: () = assert!(size_of::<GptEntry>() == ENTRY_SIZE as usize);
const _: () = assert!(ENTRY_ARRAY_LEN as u64 % SECTOR_SIZE == 0);

/// The CHS address of `lba` in the 255-head, 63-sector translation, or [`CHS_UNREPRESENTABLE`] past cylinder
/// 1023 (UEFI 2.10 §5.2.3, EndingCHS).
pub fn chs(lba: u64) -> [u8; 3] {
    let cylinder = lba / (CHS_HEADS * CHS_SECTORS);
    if cylinder > CHS_MAX_CYLINDER {
        return CHS_UNREPRESENTABLE;
    }
    let head = (lba / CHS_SECTORS) % CHS_HEADS;
    let sector = lba % CHS_SECTORS + 1;
    // Each value is range-checked above; the byte layout is head, sector | cylinder bits 8-9, cylinder bits 0-7.
    let low = |v: u64| v.to_le_bytes()[0];
    [low(head), low(sector) | (low(cylinder >> 8) << 6), low(cylinder)]
}
