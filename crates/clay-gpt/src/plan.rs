//! Placing partitions on the disk: 1 MiB alignment, the backup table at the end.

use crate::ondisk::{BACKUP_SECTORS, ENTRY_COUNT, FIRST_USABLE_LBA, NAME_UNITS, SECTOR_SIZE};
use crate::{GptError, Guid};

/// Every partition start and size, and the disk size, is a multiple of this: what partitioning tools have done
/// since 2010, good for 4 KiB-sector and flash media.
pub const ALIGNMENT: u64 = 1 << 20;
const ALIGNMENT_SECTORS: u64 = ALIGNMENT / SECTOR_SIZE;

/// A partition to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub type_guid: Guid,
    pub guid: Guid,
    /// At most [`NAME_UNITS`] UTF-16 code units.
    pub name: String,
    /// Bytes; rounded up to [`ALIGNMENT`].
    pub size: u64,
    /// `ATTR_*` bits.
    pub attributes: u64,
}

/// A partition with its place on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPartition {
    pub spec: PartitionSpec,
    pub first_lba: u64,
    /// Inclusive, as in the GPT entry.
    pub last_lba: u64,
}

/// Byte offset of an inclusive LBA range on the disk.
pub(crate) fn lba_offset(first_lba: u64) -> u64 {
    first_lba.saturating_mul(SECTOR_SIZE)
}

/// Byte length of an inclusive LBA range.
pub(crate) fn lba_len(first_lba: u64, last_lba: u64) -> u64 {
    last_lba.saturating_sub(first_lba).saturating_add(1).saturating_mul(SECTOR_SIZE)
}

impl PlacedPartition {
    /// Byte offset of the partition on the disk.
    pub fn offset(&self) -> u64 {
        lba_offset(self.first_lba)
    }

    /// Length of the partition in bytes (its size rounded up to the alignment).
    pub fn len(&self) -> u64 {
        lba_len(self.first_lba, self.last_lba)
    }

    /// Whether the partition has no sectors; never true for a planned partition.
    pub fn is_empty(&self) -> bool {
        self.last_lba < self.first_lba
    }
}

/// A planned disk: its size and its partitions in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub disk_size: u64,
    pub partitions: Vec<PlacedPartition>,
}

impl Layout {
    /// Number of 512-byte sectors on the disk.
    pub fn sectors(&self) -> u64 {
        self.disk_size / SECTOR_SIZE
    }

    /// The last LBA partitions may use: before the backup entries and header.
    pub fn last_usable_lba(&self) -> u64 {
        self.sectors().saturating_sub(BACKUP_SECTORS + 1)
    }
}

/// Places `partitions` in order: the first at 1 MiB, each start and size a multiple of 1 MiB, the disk sized to
/// hold them and the backup table, rounded up to 1 MiB. `min_disk_size` (the `--size` option) grows the disk to at
/// least that many bytes (rounded up to 1 MiB); it is an error if the partitions do not fit in it. Space past the
/// last partition is left unpartitioned.
pub fn plan(partitions: Vec<PartitionSpec>, min_disk_size: Option<u64>) -> Result<Layout, GptError> {
    validate_specs(&partitions)?;
    let mut next_lba = ALIGNMENT_SECTORS;
    let mut placed = Vec::with_capacity(partitions.len());
    for spec in partitions {
        let sectors = align_up(spec.size, ALIGNMENT).ok_or(GptError::TooLarge)? / SECTOR_SIZE;
        let last_lba = next_lba.checked_add(sectors - 1).ok_or(GptError::TooLarge)?;
        placed.push(PlacedPartition { spec, first_lba: next_lba, last_lba });
        next_lba = last_lba.checked_add(1).ok_or(GptError::TooLarge)?;
    }
    let needed_sectors = next_lba.checked_add(BACKUP_SECTORS).ok_or(GptError::TooLarge)?;
    let needed = needed_sectors
        .checked_mul(SECTOR_SIZE)
        .and_then(|bytes| align_up(bytes, ALIGNMENT))
        .ok_or(GptError::TooLarge)?;
    let disk_size = match min_disk_size {
        None => needed,
        Some(requested) if requested < needed => return Err(GptError::DoesNotFit { needed, requested }),
        Some(requested) => align_up(requested, ALIGNMENT).ok_or(GptError::TooLarge)?,
    };
    Ok(Layout { disk_size, partitions: placed })
}

/// Checks what the GPT entries can hold: count, names, type and unique GUIDs.
pub(crate) fn validate_specs(partitions: &[PartitionSpec]) -> Result<(), GptError> {
    if partitions.len() > ENTRY_COUNT as usize {
        return Err(GptError::TooManyPartitions { count: partitions.len(), max: ENTRY_COUNT });
    }
    let mut guids: Vec<(Guid, usize)> = Vec::with_capacity(partitions.len());
    for (i, p) in partitions.iter().enumerate() {
        let index = i + 1;
        let name = || p.name.clone();
        if p.size == 0 {
            return Err(GptError::EmptyPartition { index, name: name() });
        }
        if p.type_guid.is_nil() {
            return Err(GptError::NilType { index, name: name() });
        }
        if p.name.contains('\0') {
            return Err(GptError::NulInName { index, name: name() });
        }
        let units = p.name.encode_utf16().count();
        if units > NAME_UNITS {
            return Err(GptError::NameTooLong { index, name: name(), units, max: NAME_UNITS });
        }
        guids.push((p.guid, index));
    }
    guids.sort();
    for pair in guids.windows(2) {
        if let [(a, first), (b, second)] = pair {
            if a == b {
                return Err(GptError::DuplicateGuid { first: *first, second: *second, guid: *a });
            }
        }
    }
    Ok(())
}

/// Checks a layout before writing it: [`Layout`]'s fields are public, so it may not come from [`plan`].
pub(crate) fn validate_layout(layout: &Layout) -> Result<(), GptError> {
    let specs: Vec<PartitionSpec> = layout.partitions.iter().map(|p| p.spec.clone()).collect();
    validate_specs(&specs)?;
    if layout.disk_size % SECTOR_SIZE != 0 {
        return Err(GptError::InvalidLayout(format!(
            "the disk size {} is not a multiple of {SECTOR_SIZE}",
            layout.disk_size
        )));
    }
    let last_usable = layout.last_usable_lba();
    if last_usable < FIRST_USABLE_LBA {
        return Err(GptError::InvalidLayout(format!("a {}-byte disk cannot hold a GPT", layout.disk_size)));
    }
    let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(layout.partitions.len());
    for (i, p) in layout.partitions.iter().enumerate() {
        if p.first_lba < FIRST_USABLE_LBA || p.last_lba < p.first_lba || p.last_lba > last_usable {
            return Err(GptError::InvalidLayout(format!(
                "partition {} spans LBA {}-{} but usable LBAs are {FIRST_USABLE_LBA}-{last_usable}",
                i + 1,
                p.first_lba,
                p.last_lba
            )));
        }
        ranges.push((p.first_lba, p.last_lba, i + 1));
    }
    ranges.sort();
    for pair in ranges.windows(2) {
        if let [(_, a_last, a), (b_first, _, b)] = pair {
            if b_first <= a_last {
                return Err(GptError::InvalidLayout(format!("partitions {a} and {b} overlap")));
            }
        }
    }
    Ok(())
}

/// `v` rounded up to a multiple of `to`, or `None` on overflow.
fn align_up(v: u64, to: u64) -> Option<u64> {
    v.checked_next_multiple_of(to)
}
