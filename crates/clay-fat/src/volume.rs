//! The geometry of an existing FAT32 volume, read from its BPB (FAT spec §3): where its FATs, clusters and FSInfo
//! are. Every field is checked before use, so a damaged boot sector is an error, not a wild offset.

use std::io::{self, Read, Seek};

use zerocopy::FromBytes;

use crate::ondisk::{
    BootSector, BOOT_SIGNATURE, EXT_FLAGS_ACTIVE_FAT, EXT_FLAGS_NO_MIRROR, FAT32_MIN_CLUSTERS, FAT_BAD, FAT_ENTRY_LEN,
    ROOT_CLUSTER, SECTOR_LEN,
};
use crate::FatError;

/// The parts of the BPB a reader or an editor needs. Offsets are in bytes from the volume's start, except `base`,
/// which is where the volume starts on its device.
#[derive(Debug, Clone)]
pub struct Volume {
    pub base: u64,
    pub bytes_per_sector: u64,
    pub cluster_bytes: u64,
    /// Where the first FAT starts.
    pub fat_offset: u64,
    /// The length of one FAT.
    pub fat_bytes: u64,
    pub num_fats: u8,
    /// FAT spec §3.3: BPB_ExtFlags, which says whether the FATs are mirrored.
    pub ext_flags: u16,
    pub data_offset: u64,
    /// Highest valid cluster number.
    pub max_cluster: u32,
    pub root_cluster: u32,
    /// FAT spec §3.3: BPB_FSInfo, the FSInfo sector number.
    pub fs_info_sector: u16,
    pub reserved_sectors: u64,
}

impl Volume {
    /// Reads the boot sector at `dev`'s current position, where the volume starts.
    pub fn read(dev: &mut (impl Read + Seek)) -> Result<Volume, FatError> {
        let base = dev.stream_position()?;
        let mut sector = [0u8; SECTOR_LEN];
        dev.read_exact(&mut sector).map_err(|_| FatError::NotFat32("it is shorter than one sector".into()))?;
        Volume::parse(base, &sector)
    }

    pub fn parse(base: u64, sector: &[u8; SECTOR_LEN]) -> Result<Volume, FatError> {
        let not = |why: &str| FatError::NotFat32(why.to_owned());
        let (bs, _) = BootSector::read_from_prefix(sector).map_err(|_| not("the boot sector is short"))?;
        if bs.signature.get() != BOOT_SIGNATURE {
            return Err(not("the boot sector has no 0x55AA signature"));
        }
        let bytes_per_sector = u64::from(bs.bytes_per_sector.get());
        if ![512, 1024, 2048, 4096].contains(&bytes_per_sector) {
            return Err(not("the bytes per sector are not 512, 1024, 2048 or 4096"));
        }
        let spc = u64::from(bs.sectors_per_cluster);
        if !spc.is_power_of_two() || spc > 128 {
            return Err(not("the sectors per cluster are not a power of two up to 128"));
        }
        if bs.fat_size_16.get() != 0 || bs.root_entry_count.get() != 0 {
            return Err(not("it is FAT12 or FAT16"));
        }
        let fat_sectors = u64::from(bs.fat_size_32.get());
        let reserved = u64::from(bs.reserved_sectors.get());
        if fat_sectors == 0 || reserved == 0 || bs.num_fats == 0 {
            return Err(not("the BPB has no FAT or no reserved sectors"));
        }
        let total = match bs.total_sectors_16.get() {
            0 => u64::from(bs.total_sectors_32.get()),
            n => u64::from(n),
        };
        let data_start = reserved + u64::from(bs.num_fats) * fat_sectors;
        let clusters = total.saturating_sub(data_start) / spc;
        if clusters < FAT32_MIN_CLUSTERS {
            return Err(not("it has too few clusters for FAT32"));
        }
        // A cluster needs its FAT entry; clusters the FAT cannot describe do not exist.
        let described = (fat_sectors * bytes_per_sector / FAT_ENTRY_LEN).saturating_sub(2);
        let max_cluster = u32::try_from(clusters.min(described) + 1).unwrap_or(FAT_BAD - 1).min(FAT_BAD - 1);
        let volume = Volume {
            base,
            bytes_per_sector,
            cluster_bytes: spc * bytes_per_sector,
            fat_offset: reserved * bytes_per_sector,
            fat_bytes: fat_sectors * bytes_per_sector,
            num_fats: bs.num_fats,
            ext_flags: bs.ext_flags.get(),
            data_offset: data_start * bytes_per_sector,
            max_cluster,
            root_cluster: bs.root_cluster.get(),
            fs_info_sector: bs.fs_info.get(),
            reserved_sectors: reserved,
        };
        volume.check_cluster(volume.root_cluster)?;
        Ok(volume)
    }

    pub fn check_cluster(&self, c: u32) -> Result<u32, FatError> {
        if (ROOT_CLUSTER..=self.max_cluster).contains(&c) {
            Ok(c)
        } else {
            Err(FatError::Corrupt(format!("cluster {c} is outside the volume")))
        }
    }

    /// Where cluster `c` (checked to be valid) starts.
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset + u64::from(c.saturating_sub(ROOT_CLUSTER)) * self.cluster_bytes
    }

    /// Where FAT number `n` starts.
    pub fn fat_start(&self, n: u8) -> u64 {
        self.fat_offset + u64::from(n) * self.fat_bytes
    }

    /// FAT spec §3.3: the FAT that is read (the first, unless mirroring is off and BPB_ExtFlags names another)
    /// and the FATs that are written (all of them when mirrored, else only the active one).
    pub fn active_fats(&self) -> Result<(u8, Vec<u8>), FatError> {
        if self.ext_flags & EXT_FLAGS_NO_MIRROR == 0 {
            return Ok((0, (0..self.num_fats).collect()));
        }
        let active = u8::try_from(self.ext_flags & EXT_FLAGS_ACTIVE_FAT).unwrap_or(u8::MAX);
        if active >= self.num_fats {
            return Err(FatError::Corrupt(format!(
                "the boot sector names FAT {active} as the active one but the volume has {}",
                self.num_fats
            )));
        }
        Ok((active, vec![active]))
    }

    /// Where the FSInfo sector is, if the BPB names one inside the reserved area (FAT spec §3.3, §5).
    pub fn fs_info_offset(&self) -> Option<u64> {
        let sector = u64::from(self.fs_info_sector);
        (sector != 0 && sector < self.reserved_sectors).then(|| sector * self.bytes_per_sector)
    }
}

/// A read that ran off the device: the volume is shorter than its BPB says.
pub fn past_end(e: io::Error) -> FatError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        FatError::Corrupt("the volume is shorter than its boot sector says".into())
    } else {
        FatError::Io(e)
    }
}
