//! The on-disk structures, declared once with explicit little-endian fields. "FAT spec §N" is the "Microsoft FAT
//! Specification" (August 2005), the successor of fatgen103 that UEFI 2.10 §13.3 adopts for the EFI System
//! Partition.

use std::mem::size_of;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes per sector: the one size every ESP consumer supports.
pub const SECTOR_SIZE: u64 = 512;
pub const SECTOR_LEN: usize = 512;
/// BPB_BytsPerSec.
pub const BYTES_PER_SECTOR: u16 = 512;
/// FAT spec §3.1: BS_jmpBoot, a short jump over the BPB to the boot code at offset 0x5A, then NOP.
pub const JMP_BOOT: [u8; 3] = [0xEB, 0x58, 0x90];
/// FAT spec §3.1: BS_OEMName; "MSWIN4.1" is the value the spec recommends for compatibility.
pub const OEM_NAME: [u8; 8] = *b"MSWIN4.1";
/// Boot code for someone who boots the ESP itself by BIOS: `cli; hlt; jmp $-1`, halting quietly.
pub const HALT_CODE: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];
/// FAT spec §3.1: BPB_Media for fixed media; also the low byte of FAT[0].
pub const MEDIA_FIXED: u8 = 0xF8;
/// FAT spec §3.1: BPB_NumFATs; 2 is what every driver expects.
pub const NUM_FATS: u8 = 2;
/// FAT spec §3.1: BPB_RsvdSecCnt is "typically 32" on FAT32.
pub const RESERVED_SECTORS: u32 = 32;
/// FAT spec §3.3: BPB_FSInfo, the FSInfo sector number.
pub const FSINFO_SECTOR: u16 = 1;
/// FAT spec §3.3: BPB_BkBootSec, "6 is the only value recommended".
pub const BACKUP_BOOT_SECTOR: u16 = 6;
/// FAT spec §3.3: BPB_RootClus, "usually 2".
pub const ROOT_CLUSTER: u32 = 2;
/// FAT spec §3.3: BPB_ExtFlags bit 7, set when only one FAT is active (not mirrored), and bits 0-3, which name it.
pub const EXT_FLAGS_NO_MIRROR: u16 = 0x0080;
pub const EXT_FLAGS_ACTIVE_FAT: u16 = 0x000F;
/// FAT spec §3.3: BS_BootSig, meaning the volume ID, label and type fields are present.
pub const EXTENDED_BOOT_SIGNATURE: u8 = 0x29;
/// FAT spec §3.3: BS_DrvNum for a hard disk.
pub const DRIVE_NUMBER: u8 = 0x80;
/// FAT spec §3.3: BS_FilSysType (informational only).
pub const FS_TYPE: [u8; 8] = *b"FAT32   ";
/// FAT spec §3.1: the label of a volume without one.
pub const NO_NAME: [u8; 11] = *b"NO NAME    ";
/// FAT spec §3.1: bytes 510-511 of the boot sector (and, on FAT32, of FSInfo).
pub const BOOT_SIGNATURE: u16 = 0xAA55;
/// Geometry for the BPB's CHS fields, which no ESP reader uses: mkfs.fat's 64 heads × 32 sectors make a cylinder
/// of exactly 1 MiB, so MiB-sized volumes are whole cylinders (mtools checks that).
pub const SECTORS_PER_TRACK: u16 = 32;
pub const NUM_HEADS: u16 = 64;

/// FAT spec §5 (FSInfo): FSI_LeadSig, FSI_StrucSig, FSI_TrailSig.
pub const FSINFO_LEAD_SIG: u32 = 0x4161_5252;
pub const FSINFO_STRUC_SIG: u32 = 0x6141_7272;
pub const FSINFO_TRAIL_SIG: u32 = 0xAA55_0000;
/// FAT spec §5: "unknown" for FSI_Free_Count and FSI_Nxt_Free.
pub const FSINFO_UNKNOWN: u32 = 0xFFFF_FFFF;

/// FAT spec §3.5: a volume with fewer clusters than this is FAT12 or FAT16, whatever its BPB says.
pub const FAT32_MIN_CLUSTERS: u64 = 65_525;
/// FAT spec §4: FAT32 entries are 28 bits; the highest cluster number is 0x0FFFFFF6, so at most this many.
pub const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF5;
/// FAT spec §4: the low 28 bits hold the entry; the high 4 are reserved.
pub const FAT_ENTRY_MASK: u32 = 0x0FFF_FFFF;
/// FAT spec §4: end-of-chain marker written by this crate; any value ≥ 0x0FFFFFF8 ends a chain.
pub const FAT_EOC: u32 = 0x0FFF_FFFF;
pub const FAT_EOC_MIN: u32 = 0x0FFF_FFF8;
/// FAT spec §4: a bad cluster.
pub const FAT_BAD: u32 = 0x0FFF_FFF7;
/// FAT spec §4: FAT[0] is the media byte with all other bits set.
pub const FAT0: u32 = 0x0FFF_FF00 | MEDIA_FIXED as u32;
/// FAT spec §4: FAT[1] is EOC; its bits 27 (ClnShutBitMask) and 26 (HrdErrBitMask) set mean "clean, no errors".
pub const FAT1: u32 = FAT_EOC;
/// Bytes of one FAT32 entry.
pub const FAT_ENTRY_LEN: u64 = 4;

/// FAT spec §6: directory entry attributes.
pub const ATTR_READ_ONLY: u8 = 0x01;
pub const ATTR_HIDDEN: u8 = 0x02;
pub const ATTR_SYSTEM: u8 = 0x04;
pub const ATTR_VOLUME_ID: u8 = 0x08;
pub const ATTR_DIRECTORY: u8 = 0x10;
pub const ATTR_ARCHIVE: u8 = 0x20;
/// FAT spec §7: the attribute of a long-name entry.
pub const ATTR_LONG_NAME: u8 = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;
pub const ATTR_LONG_NAME_MASK: u8 = ATTR_LONG_NAME | ATTR_DIRECTORY | ATTR_ARCHIVE;
/// FAT spec §6: DIR_Name[0] of a free entry, and of a free entry with no used entries after it.
pub const DIR_ENTRY_FREE: u8 = 0xE5;
pub const DIR_ENTRY_END: u8 = 0x00;
/// FAT spec §6: DIR_Name[0] stored for a name whose first byte really is 0xE5.
pub const DIR_ENTRY_KANJI_E5: u8 = 0x05;
/// Windows NT (not in the spec, honoured by Linux and mtools): DIR_NTRes bits for an all-lowercase base and
/// extension.
pub const NTRES_LOWER_BASE: u8 = 0x08;
pub const NTRES_LOWER_EXT: u8 = 0x10;
/// FAT spec §6.1: a directory holds at most 65,536 32-byte entries (2 MiB).
pub const MAX_DIR_ENTRIES: u64 = 65_536;
pub const DIR_ENTRY_LEN: u64 = 32;
pub const DIR_ENTRY_BYTES: usize = 32;
/// FAT spec §7: LDIR_Ord bit marking the last (physically first) long-name entry; 13 UTF-16 units per entry.
pub const LAST_LONG_ENTRY: u8 = 0x40;
pub const LFN_UNITS_PER_ENTRY: usize = 13;
/// FAT spec §7: a long name has at most 255 UTF-16 units.
pub const LFN_MAX_UNITS: usize = 255;

/// FAT spec §3.1 and §3.3: the FAT32 boot sector with its BIOS Parameter Block.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct BootSector {
    pub jmp_boot: [u8; 3],
    pub oem_name: [u8; 8],
    pub bytes_per_sector: U16,
    pub sectors_per_cluster: u8,
    pub reserved_sectors: U16,
    pub num_fats: u8,
    pub root_entry_count: U16,
    pub total_sectors_16: U16,
    pub media: u8,
    pub fat_size_16: U16,
    pub sectors_per_track: U16,
    pub num_heads: U16,
    pub hidden_sectors: U32,
    pub total_sectors_32: U32,
    pub fat_size_32: U32,
    pub ext_flags: U16,
    pub fs_version: U16,
    pub root_cluster: U32,
    pub fs_info: U16,
    pub backup_boot_sector: U16,
    pub reserved: [u8; 12],
    pub drive_number: u8,
    pub reserved1: u8,
    pub boot_signature: u8,
    pub volume_id: U32,
    pub volume_label: [u8; 11],
    pub fs_type: [u8; 8],
    pub boot_code: [u8; 420],
    pub signature: U16,
}

/// FAT spec §5: the FSInfo sector, a hint of the free cluster count and the next free cluster.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct FsInfo {
    pub lead_sig: U32,
    pub reserved1: [u8; 480],
    pub struc_sig: U32,
    pub free_count: U32,
    pub next_free: U32,
    pub reserved2: [u8; 12],
    pub trail_sig: U32,
}

/// FAT spec §6: a short-name directory entry.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct DirEntry {
    pub name: [u8; 11],
    pub attr: u8,
    pub nt_res: u8,
    pub crt_time_tenth: u8,
    pub crt_time: U16,
    pub crt_date: U16,
    pub lst_acc_date: U16,
    pub fst_clus_hi: U16,
    pub wrt_time: U16,
    pub wrt_date: U16,
    pub fst_clus_lo: U16,
    pub file_size: U32,
}

/// FAT spec §7: a long-name directory entry, 13 UTF-16 units of the name in three pieces.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct LfnEntry {
    pub ord: u8,
    pub name1: [U16; 5],
    pub attr: u8,
    pub kind: u8,
    pub checksum: u8,
    pub name2: [U16; 6],
    pub fst_clus_lo: U16,
    pub name3: [U16; 2],
}

const _: () = assert!(size_of::<BootSector>() == SECTOR_LEN && SECTOR_LEN as u64 == SECTOR_SIZE);
const _: () = assert!(BYTES_PER_SECTOR as u64 == SECTOR_SIZE);
const _: () = assert!(size_of::<FsInfo>() == SECTOR_LEN);
const _: () = assert!(size_of::<DirEntry>() == DIR_ENTRY_BYTES && DIR_ENTRY_BYTES as u64 == DIR_ENTRY_LEN);
const _: () = assert!(size_of::<LfnEntry>() == DIR_ENTRY_BYTES);
