//! Writing the protective MBR and both copies of the GPT (UEFI 2.10 §5.3.1: primary at LBA 1, backup at the last
//! LBA, each with its own entry array).

use std::io::{Seek, SeekFrom, Write};

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::ondisk::{
    chs, GptEntry, GptHeader, Mbr, MbrPartitionRecord, BACKUP_SECTORS, ENTRY_ARRAY_LEN, ENTRY_COUNT, ENTRY_SIZE,
    FIRST_USABLE_LBA, GPT_HEADER_SIZE, GPT_REVISION, GPT_SIGNATURE, MBR_BOOT_CODE_LEN, MBR_SIGNATURE, NAME_UNITS,
    PMBR_OS_TYPE, PMBR_STARTING_CHS, PRIMARY_ENTRIES_LBA, PRIMARY_HEADER_LBA, SECTOR_LEN, SECTOR_SIZE,
};
use crate::plan::validate_layout;
use crate::{GptError, Guid, Layout};

/// Writes the protective MBR (with `mbr_boot_code`, at most 440 bytes such as syslinux's `gptmbr.bin`, in front),
/// the primary GPT header and entries at LBA 1-33, and the backup entries and header in the last 33 sectors of
/// `layout.disk_size`. Only those sectors are written; partition contents are the caller's. Writing the last
/// sector makes a file `disk_size` bytes long.
pub fn write_gpt(
    out: &mut (impl Write + Seek),
    layout: &Layout,
    disk_guid: Guid,
    mbr_boot_code: Option<&[u8]>,
) -> Result<(), GptError> {
    validate_layout(layout)?;
    let code = mbr_boot_code.unwrap_or_default();
    if code.len() > MBR_BOOT_CODE_LEN {
        return Err(GptError::BootCodeTooLong { len: code.len(), max: MBR_BOOT_CODE_LEN });
    }
    let last_lba = layout.sectors() - 1;
    let entries = entry_array(layout);
    let entries_crc = crc32fast::hash(&entries);
    let backup_entries_lba = last_lba + 1 - BACKUP_SECTORS;
    let header = |my_lba: u64, alternate_lba: u64, partition_entry_lba: u64| {
        header_sector(&GptHeader {
            signature: GPT_SIGNATURE,
            revision: U32::new(GPT_REVISION),
            header_size: U32::new(GPT_HEADER_SIZE),
            header_crc32: U32::ZERO,
            reserved: U32::ZERO,
            my_lba: U64::new(my_lba),
            alternate_lba: U64::new(alternate_lba),
            first_usable_lba: U64::new(FIRST_USABLE_LBA),
            last_usable_lba: U64::new(layout.last_usable_lba()),
            disk_guid,
            partition_entry_lba: U64::new(partition_entry_lba),
            number_of_partition_entries: U32::new(ENTRY_COUNT),
            size_of_partition_entry: U32::new(ENTRY_SIZE),
            partition_entry_array_crc32: U32::new(entries_crc),
        })
    };

    out.seek(SeekFrom::Start(0))?;
    out.write_all(protective_mbr(code, last_lba).as_bytes())?;
    out.write_all(&header(PRIMARY_HEADER_LBA, last_lba, PRIMARY_ENTRIES_LBA))?;
    out.write_all(&entries)?;
    out.seek(SeekFrom::Start(backup_entries_lba * SECTOR_SIZE))?;
    out.write_all(&entries)?;
    out.write_all(&header(last_lba, PRIMARY_HEADER_LBA, backup_entries_lba))?;
    out.flush()?;
    Ok(())
}

/// UEFI 2.10 §5.2.3: one record of type 0xEE from LBA 1 to the end of the disk (capped at 2^32 - 1 sectors).
fn protective_mbr(code: &[u8], last_lba: u64) -> Mbr {
    let mut mbr = Mbr {
        boot_code: [0; MBR_BOOT_CODE_LEN],
        disk_signature: U32::ZERO,
        unknown: [0; 2],
        partitions: [MbrPartitionRecord::default(); 4],
        signature: U16::new(MBR_SIGNATURE),
    };
    mbr.boot_code[..code.len()].copy_from_slice(code);
    mbr.partitions[0] = MbrPartitionRecord {
        boot_indicator: 0,
        starting_chs: PMBR_STARTING_CHS,
        os_type: PMBR_OS_TYPE,
        ending_chs: chs(last_lba),
        starting_lba: U32::new(1),
        size_in_lba: U32::new(u32::try_from(last_lba).unwrap_or(u32::MAX)),
    };
    mbr
}

/// The 128-entry array: the layout's partitions in order, then unused (zero) entries.
fn entry_array(layout: &Layout) -> Vec<u8> {
    let mut array = Vec::with_capacity(ENTRY_ARRAY_LEN);
    for p in &layout.partitions {
        let mut name = [U16::ZERO; NAME_UNITS];
        for (slot, unit) in name.iter_mut().zip(p.spec.name.encode_utf16()) {
            *slot = U16::new(unit);
        }
        let entry = GptEntry {
            partition_type_guid: p.spec.type_guid,
            unique_partition_guid: p.spec.guid,
            starting_lba: U64::new(p.first_lba),
            ending_lba: U64::new(p.last_lba),
            attributes: U64::new(p.spec.attributes),
            partition_name: name,
        };
        array.extend_from_slice(entry.as_bytes());
    }
    array.resize(ENTRY_ARRAY_LEN, 0);
    array
}

/// A header sector: the header with its CRC32 (computed with the CRC field zero, UEFI 2.10 §5.3.2), then zeros.
fn header_sector(header: &GptHeader) -> Vec<u8> {
    let mut h = *header;
    h.header_crc32 = U32::new(crc32fast::hash(h.as_bytes()));
    let mut sector = h.as_bytes().to_vec();
    sector.resize(SECTOR_LEN, 0);
    sector
}
