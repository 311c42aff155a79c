//! Choosing the cluster size and placing the reserved area, the two FATs and the data region.

use crate::ondisk::{
    FAT32_MAX_CLUSTERS, FAT32_MIN_CLUSTERS, FAT_ENTRY_LEN, NUM_FATS, RESERVED_SECTORS, ROOT_CLUSTER, SECTOR_SIZE,
};
use crate::FatError;

/// fatgen103 "FAT Volume Initialization", DskTableFAT32: the sectors-per-cluster Microsoft's format uses for a
/// volume of up to so many sectors. Below 66,600 sectors (32.5 MiB) a volume cannot reach FAT32's cluster
/// minimum, so the table starts there.
const CLUSTER_TABLE: [(u64, u32); 5] = [
    (532_480, 1),          // up to 260 MiB: 512-byte clusters
    (16_777_216, 8),       // up to 8 GiB: 4 KiB
    (33_554_432, 16),      // up to 16 GiB: 8 KiB
    (67_108_864, 32),      // up to 32 GiB: 16 KiB
    (u32::MAX as u64, 64), // beyond: 32 KiB
];
/// The smallest volume DskTableFAT32 formats as FAT32, in sectors.
pub const MIN_SECTORS: u64 = 66_601;

/// Where everything is on a volume of a given size. All counts are in 512-byte sectors unless named otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub total_sectors: u32,
    pub sectors_per_cluster: u32,
    pub reserved_sectors: u32,
    pub fat_sectors: u32,
    /// Data clusters, numbered from 2.
    pub clusters: u32,
}

impl Geometry {
    /// The layout Microsoft's formatter would choose for `size` bytes (a trailing partial sector is unused), with
    /// the reserved area grown so the data region starts on a cluster boundary (aligned clusters for 4 KiB-sector
    /// media when the volume itself is aligned).
    pub fn for_size(size: u64) -> Result<Geometry, FatError> {
        let sectors = size / SECTOR_SIZE;
        if sectors < MIN_SECTORS {
            return Err(FatError::TooSmall { size, min: MIN_SECTORS * SECTOR_SIZE });
        }
        let total_sectors = u32::try_from(sectors).map_err(|_| FatError::TooLarge { size })?;
        let spc = CLUSTER_TABLE.iter().find(|(max, _)| sectors <= *max).map_or(64, |(_, spc)| *spc);
        // fatgen103's FATSz computation: an upper bound that never leaves a cluster without its entry.
        let tmp1 = sectors - u64::from(RESERVED_SECTORS);
        let tmp2 = (256 * u64::from(spc) + u64::from(NUM_FATS)) / 2;
        let fat_sectors = tmp1.div_ceil(tmp2);
        let mut reserved = u64::from(RESERVED_SECTORS);
        let misalignment = (reserved + u64::from(NUM_FATS) * fat_sectors) % u64::from(spc);
        if misalignment != 0 {
            reserved += u64::from(spc) - misalignment;
        }
        let data_start = reserved + u64::from(NUM_FATS) * fat_sectors;
        let clusters = sectors.saturating_sub(data_start) / u64::from(spc);
        if clusters < FAT32_MIN_CLUSTERS {
            return Err(FatError::TooSmall { size, min: MIN_SECTORS * SECTOR_SIZE });
        }
        if clusters > FAT32_MAX_CLUSTERS || (clusters + 2) * FAT_ENTRY_LEN > fat_sectors * SECTOR_SIZE {
            return Err(FatError::TooLarge { size });
        }
        let narrow = |v: u64| u32::try_from(v).map_err(|_| FatError::TooLarge { size });
        Ok(Geometry {
            total_sectors,
            sectors_per_cluster: spc,
            reserved_sectors: narrow(reserved)?,
            fat_sectors: narrow(fat_sectors)?,
            clusters: narrow(clusters)?,
        })
    }

    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * SECTOR_SIZE
    }

    /// Byte offset of FAT number `n` (0 or 1).
    pub fn fat_offset(&self, n: u32) -> u64 {
        (u64::from(self.reserved_sectors) + u64::from(n) * u64::from(self.fat_sectors)) * SECTOR_SIZE
    }

    pub fn fat_bytes(&self) -> u64 {
        u64::from(self.fat_sectors) * SECTOR_SIZE
    }

    /// Byte offset of cluster `c` (≥ 2).
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.fat_offset(u32::from(NUM_FATS)) + u64::from(c.saturating_sub(ROOT_CLUSTER)) * self.cluster_bytes()
    }
}
