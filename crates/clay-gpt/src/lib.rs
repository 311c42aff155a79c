//! GPT partition tables with a protective MBR, as UEFI 2.10 §5.2.3 and §5.3 define them: plan a layout, write the
//! table, read one back.
//!
//! Pure and deterministic: the disk and partition GUIDs come from the caller (see [`Guid::from_seed`]), nothing
//! depends on the clock or randomness, and [`write_gpt`] writes only the metadata sectors (the protective MBR, the
//! primary header and entries at LBA 0-33, the backup entries and header in the last 33 sectors), seeking between
//! them, so the caller's sparse disk file stays sparse. Sectors are 512 bytes; partitions start at 1 MiB and every
//! start and size is a multiple of 1 MiB.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod guid;
mod ondisk;
mod plan;
mod read;
mod write;

pub use error::GptError;
pub use guid::Guid;
pub use ondisk::{
    ENTRY_COUNT, ENTRY_SIZE, FIRST_USABLE_LBA, GPT_SIGNATURE, MBR_BOOT_CODE_LEN, NAME_UNITS, PMBR_OS_TYPE, SECTOR_SIZE,
};
pub use plan::{plan, Layout, PartitionSpec, PlacedPartition, ALIGNMENT};
pub use read::{read_gpt, ReadPartition, ReadTable, READ_LEN};
pub use write::write_gpt;

/// UEFI 2.10 §5.3.3 (Partition Attributes): the platform needs this partition to function.
pub const ATTR_REQUIRED_PARTITION: u64 = 1 << 0;
/// UEFI 2.10 §5.3.3: firmware must not produce an EFI_BLOCK_IO_PROTOCOL for this partition.
pub const ATTR_NO_BLOCK_IO_PROTOCOL: u64 = 1 << 1;
/// UEFI 2.10 §5.3.3: legacy BIOS bootable; syslinux's `gptmbr.bin` boots the partition that has it.
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;
/// Discoverable Partitions Specification: grow the file system to the partition at first mount.
pub const ATTR_GROWFS: u64 = 1 << 59;
/// Discoverable Partitions Specification: mount read-only.
pub const ATTR_READ_ONLY: u64 = 1 << 60;
/// Discoverable Partitions Specification: do not mount automatically.
pub const ATTR_NO_AUTO: u64 = 1 << 63;

/// Partition type GUIDs from the UAPI Group's Discoverable Partitions Specification (and UEFI 2.10 §5.3.3 for the
/// ESP).
pub mod types {
    use crate::Guid;

    /// EFI System Partition (UEFI 2.10 §5.3.3; sgdisk `ef00`).
    pub const ESP: Guid = Guid::from_u128(0xc12a7328_f81f_11d2_ba4b_00a0c93ec93b);
    /// Generic Linux data (sgdisk `8300`).
    pub const LINUX_DATA: Guid = Guid::from_u128(0x0fc63daf_8483_4772_8e79_3d69d8477de4);
    /// Root file system for x86-64 (sgdisk `8304`).
    pub const ROOT_X86_64: Guid = Guid::from_u128(0x4f68bce3_e8cd_4db1_96e7_fbcaf984b709);
    /// dm-verity hash data of the x86-64 root (sgdisk `830c`).
    pub const ROOT_VERITY_X86_64: Guid = Guid::from_u128(0x2c7357ed_ebd2_46d9_aec1_23d437ec2bf5);
    /// GRUB's BIOS boot partition (sgdisk `ef02`).
    pub const BIOS_BOOT: Guid = Guid::from_u128(0x21686148_6449_6e6f_744e_656564454649);
    /// Extended Boot Loader partition, `/boot` beside the ESP (sgdisk `ea00`).
    pub const XBOOTLDR: Guid = Guid::from_u128(0xbc13c2ff_59e6_4262_a352_b275fd6f7172);
}

#[cfg(test)]
mod tests;
