//! Reading the primary GPT back, for `clay inspect` and tests. Every field is checked before use; bad input is
//! an error, never a panic.

use zerocopy::FromBytes;

use crate::ondisk::{
    GptEntry, GptHeader, Mbr, ENTRY_SIZE, GPT_HEADER_SIZE, GPT_SIGNATURE, MBR_SIGNATURE, PMBR_OS_TYPE,
    PRIMARY_HEADER_LBA, SECTOR_LEN, SECTOR_SIZE,
};
use crate::{GptError, Guid};

/// How many leading bytes of a disk [`read_gpt`] needs for a table written by this crate: LBA 0-33.
pub const READ_LEN: usize = 34 * SECTOR_LEN;

/// The partition table as read from the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadTable {
    pub disk_guid: Guid,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// Where the header says the backup header is.
    pub alternate_lba: u64,
    /// The used entries, in table order.
    pub partitions: Vec<ReadPartition>,
}

/// One used partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPartition {
    /// 1-based entry number, as `sgdisk` and Linux (`sda1`) count.
    pub number: u32,
    pub type_guid: Guid,
    pub guid: Guid,
    pub name: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
}

impl ReadPartition {
    pub fn offset(&self) -> u64 {
        crate::plan::lba_offset(self.first_lba)
    }

    pub fn len(&self) -> u64 {
        crate::plan::lba_len(self.first_lba, self.last_lba)
    }

    pub fn is_empty(&self) -> bool {
        self.last_lba < self.first_lba
    }
}

/// Parses the protective MBR and the primary GPT from the first sectors of a disk ([`READ_LEN`] bytes suffice
/// for tables with 128 entries at LBA 2) and checks both CRC32s. `disk_size` is the disk's length in bytes; the
/// backup header must lie inside it.
pub fn read_gpt(first_sectors: &[u8], disk_size: u64) -> Result<ReadTable, GptError> {
    let got = first_sectors.len() as u64;
    let truncated = |needed: u64| GptError::Truncated { needed, got };
    let sector = SECTOR_LEN;

    let (mbr, _) = Mbr::read_from_prefix(first_sectors).map_err(|_| truncated(SECTOR_SIZE))?;
    if mbr.signature.get() != MBR_SIGNATURE {
        return Err(GptError::NotGpt("LBA 0 has no MBR signature"));
    }
    if !mbr.partitions.iter().any(|p| p.os_type == PMBR_OS_TYPE) {
        return Err(GptError::NotGpt("the MBR has no protective partition of type 0xEE"));
    }

    let header_bytes = first_sectors.get(sector..2 * sector).ok_or_else(|| truncated(2 * SECTOR_SIZE))?;
    let (header, _) = GptHeader::read_from_prefix(header_bytes).map_err(|_| truncated(2 * SECTOR_SIZE))?;
    if header.signature != GPT_SIGNATURE {
        return Err(GptError::NotGpt("LBA 1 has no `EFI PART` signature"));
    }
    let header_size = header.header_size.get();
    if !(GPT_HEADER_SIZE as usize..=SECTOR_LEN).contains(&(header_size as usize)) {
        return Err(GptError::BadHeader(format!("HeaderSize is {header_size}")));
    }
    let mut covered = header_bytes.get(..header_size as usize).unwrap_or_default().to_vec();
    covered.get_mut(16..20).unwrap_or_default().fill(0);
    let computed = crc32fast::hash(&covered);
    if computed != header.header_crc32.get() {
        return Err(GptError::BadCrc { what: "header", stored: header.header_crc32.get(), computed });
    }
    if header.my_lba.get() != PRIMARY_HEADER_LBA {
        return Err(GptError::BadHeader(format!("MyLBA is {}, not 1", header.my_lba.get())));
    }
    let disk_sectors = disk_size / SECTOR_SIZE;
    let alternate_lba = header.alternate_lba.get();
    if alternate_lba >= disk_sectors {
        return Err(GptError::BadHeader(format!(
            "the backup header is at LBA {alternate_lba}, past the end of the {disk_size}-byte disk"
        )));
    }
    let (first_usable_lba, last_usable_lba) = (header.first_usable_lba.get(), header.last_usable_lba.get());
    if first_usable_lba > last_usable_lba || last_usable_lba >= disk_sectors {
        return Err(GptError::BadHeader(format!(
            "the usable LBAs {first_usable_lba}-{last_usable_lba} do not fit a {disk_sectors}-sector disk"
        )));
    }

    let entry_size = header.size_of_partition_entry.get();
    if entry_size < ENTRY_SIZE || !(entry_size / ENTRY_SIZE).is_power_of_two() || entry_size % ENTRY_SIZE != 0 {
        return Err(GptError::BadHeader(format!("SizeOfPartitionEntry is {entry_size}")));
    }
    let count = header.number_of_partition_entries.get();
    let array_start = header.partition_entry_lba.get().checked_mul(SECTOR_SIZE);
    let array_len = u64::from(count) * u64::from(entry_size);
    let array_end = array_start.and_then(|s| s.checked_add(array_len)).unwrap_or(u64::MAX);
    let array = usize::try_from(array_end)
        .ok()
        .and_then(|end| first_sectors.get(usize::try_from(array_start.unwrap_or(u64::MAX)).ok()?..end))
        .ok_or_else(|| truncated(array_end))?;
    let computed = crc32fast::hash(array);
    if computed != header.partition_entry_array_crc32.get() {
        return Err(GptError::BadCrc {
            what: "partition entry array",
            stored: header.partition_entry_array_crc32.get(),
            computed,
        });
    }

    let mut partitions = Vec::new();
    for (number, raw) in (1..=count).zip(array.chunks_exact(entry_size as usize)) {
        let (entry, _) = GptEntry::read_from_prefix(raw).map_err(|_| truncated(array_end))?;
        if entry.partition_type_guid.is_nil() {
            continue;
        }
        let (first_lba, last_lba) = (entry.starting_lba.get(), entry.ending_lba.get());
        if first_lba > last_lba || first_lba < first_usable_lba || last_lba > last_usable_lba {
            return Err(GptError::BadHeader(format!(
                "partition {number} spans LBA {first_lba}-{last_lba}, outside the usable {first_usable_lba}-{last_usable_lba}"
            )));
        }
        let units: Vec<u16> = entry.partition_name.iter().map(|u| u.get()).take_while(|&u| u != 0).collect();
        partitions.push(ReadPartition {
            number,
            type_guid: entry.partition_type_guid,
            guid: entry.unique_partition_guid,
            name: String::from_utf16_lossy(&units),
            first_lba,
            last_lba,
            attributes: entry.attributes.get(),
        });
    }
    Ok(ReadTable { disk_guid: header.disk_guid, first_usable_lba, last_usable_lba, alternate_lba, partitions })
}
