//! Listing the files of a FAT32 volume, for `clay inspect` and tests. Every on-disk value is checked before use:
//! damaged input is an error, never a panic, a loop or an unbounded allocation.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};

use zerocopy::FromBytes;

use crate::names::{short_name_checksum, short_name_text};
use crate::ondisk::{
    BootSector, DirEntry, LfnEntry, ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_LONG_NAME_MASK, ATTR_VOLUME_ID,
    BOOT_SIGNATURE, DIR_ENTRY_END, DIR_ENTRY_FREE, DIR_ENTRY_KANJI_E5, DIR_ENTRY_LEN, FAT32_MIN_CLUSTERS, FAT_BAD,
    FAT_ENTRY_LEN, FAT_ENTRY_MASK, FAT_EOC_MIN, LAST_LONG_ENTRY, LFN_MAX_UNITS, LFN_UNITS_PER_ENTRY, MAX_DIR_ENTRIES,
    NTRES_LOWER_BASE, NTRES_LOWER_EXT, ROOT_CLUSTER, SECTOR_LEN,
};
use crate::FatError;

/// Directories nested deeper than this are taken as damage.
const MAX_DEPTH: usize = 64;

/// The parts of the BPB a reader needs.
struct Volume {
    base: u64,
    cluster_bytes: u64,
    fat_offset: u64,
    data_offset: u64,
    /// Highest valid cluster number.
    max_cluster: u32,
    root_cluster: u32,
}

/// Lists the files of the FAT32 volume that starts at `dev`'s current position: `/`-separated paths (long names
/// where present) and sizes, directory by directory in on-disk order.
pub fn list_fat(dev: &mut (impl Read + Seek)) -> Result<Vec<(String, u64)>, FatError> {
    let base = dev.stream_position()?;
    let mut sector = [0u8; SECTOR_LEN];
    dev.read_exact(&mut sector).map_err(|_| FatError::NotFat32("it is shorter than one sector".into()))?;
    let volume = Volume::parse(base, &sector)?;

    let mut files = Vec::new();
    let mut visited = BTreeSet::new();
    let mut stack = vec![(String::new(), volume.root_cluster, 0usize)];
    while let Some((path, cluster, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(FatError::Corrupt(format!("directories nest deeper than {MAX_DEPTH} levels at `{path}`")));
        }
        if !visited.insert(cluster) {
            return Err(FatError::Corrupt(format!("directory `{path}` is reachable twice (cluster {cluster})")));
        }
        let bytes = volume.read_chain(dev, cluster, MAX_DIR_ENTRIES * DIR_ENTRY_LEN)?;
        let mut subdirs = Vec::new();
        for (name, entry) in entries(&bytes) {
            let full = if path.is_empty() { name } else { format!("{path}/{name}") };
            let first = (u32::from(entry.fst_clus_hi.get()) << 16) | u32::from(entry.fst_clus_lo.get());
            if entry.attr & ATTR_DIRECTORY != 0 {
                subdirs.push((full, volume.check_cluster(first)?, depth + 1));
            } else {
                files.push((full, u64::from(entry.file_size.get())));
            }
        }
        // Pushed in reverse so directories come out in on-disk order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(files)
}

impl Volume {
    fn parse(base: u64, sector: &[u8; SECTOR_LEN]) -> Result<Volume, FatError> {
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
            cluster_bytes: spc * bytes_per_sector,
            fat_offset: reserved * bytes_per_sector,
            data_offset: data_start * bytes_per_sector,
            max_cluster,
            root_cluster: bs.root_cluster.get(),
        };
        volume.check_cluster(volume.root_cluster)?;
        Ok(volume)
    }

    fn check_cluster(&self, c: u32) -> Result<u32, FatError> {
        if (ROOT_CLUSTER..=self.max_cluster).contains(&c) {
            Ok(c)
        } else {
            Err(FatError::Corrupt(format!("cluster {c} is outside the volume")))
        }
    }

    /// Reads the chain starting at `first`, at most `limit` bytes of it.
    fn read_chain(&self, dev: &mut (impl Read + Seek), first: u32, limit: u64) -> Result<Vec<u8>, FatError> {
        let mut out = Vec::new();
        let mut cluster = self.check_cluster(first)?;
        let cluster_len = usize::try_from(self.cluster_bytes).map_err(|_| FatError::Corrupt("huge clusters".into()))?;
        loop {
            if out.len() as u64 + self.cluster_bytes > limit {
                return Err(FatError::Corrupt(format!("the directory at cluster {first} is longer than 2 MiB")));
            }
            let start = out.len();
            out.resize(start + cluster_len, 0);
            let offset = self.data_offset + u64::from(cluster - ROOT_CLUSTER) * self.cluster_bytes;
            dev.seek(SeekFrom::Start(self.base.saturating_add(offset)))?;
            dev.read_exact(&mut out[start..]).map_err(past_end)?;
            let mut raw = [0u8; 4];
            let entry = self.fat_offset + u64::from(cluster) * FAT_ENTRY_LEN;
            dev.seek(SeekFrom::Start(self.base.saturating_add(entry)))?;
            dev.read_exact(&mut raw).map_err(past_end)?;
            let next = u32::from_le_bytes(raw) & FAT_ENTRY_MASK;
            if next >= FAT_EOC_MIN {
                return Ok(out);
            }
            cluster = self.check_cluster(next)?;
        }
    }
}

/// A read that ran off the device: the volume is shorter than its BPB says.
fn past_end(e: std::io::Error) -> FatError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FatError::Corrupt("the volume is shorter than its boot sector says".into())
    } else {
        FatError::Io(e)
    }
}

/// The named entries of a directory (neither free, nor the volume label, nor `.`/`..`), with their long names
/// when the long-name entries before them are whole and carry the short name's checksum (FAT spec §7).
fn entries(bytes: &[u8]) -> Vec<(String, DirEntry)> {
    let mut out = Vec::new();
    let mut long: Vec<(u8, u8, Vec<u16>)> = Vec::new();
    for raw in bytes.chunks_exact(32) {
        let Ok((entry, _)) = DirEntry::read_from_prefix(raw) else { break };
        match entry.name[0] {
            DIR_ENTRY_END => break,
            DIR_ENTRY_FREE => {
                long.clear();
                continue;
            }
            _ => {}
        }
        if entry.attr & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME {
            if let Ok((lfn, _)) = LfnEntry::read_from_prefix(raw) {
                let units = lfn.name1.iter().chain(&lfn.name2).chain(&lfn.name3).map(|u| u.get()).collect::<Vec<u16>>();
                if lfn.ord & LAST_LONG_ENTRY != 0 {
                    long.clear();
                }
                long.push((lfn.ord & !LAST_LONG_ENTRY, lfn.checksum, units));
            }
            continue;
        }
        let pieces = std::mem::take(&mut long);
        if entry.attr & ATTR_VOLUME_ID != 0 || entry.name[0] == b'.' {
            continue;
        }
        let mut short = entry.name;
        if short[0] == DIR_ENTRY_KANJI_E5 {
            short[0] = DIR_ENTRY_FREE;
        }
        let name = long_name(&pieces, short_name_checksum(&entry.name)).unwrap_or_else(|| {
            short_name_text(&short, entry.nt_res & NTRES_LOWER_BASE != 0, entry.nt_res & NTRES_LOWER_EXT != 0)
        });
        if name.is_empty() || name.contains('/') {
            continue;
        }
        out.push((name, entry));
    }
    out
}

/// The long name the pieces (last piece first, as stored) spell, if they are complete and match `checksum`.
fn long_name(pieces: &[(u8, u8, Vec<u16>)], checksum: u8) -> Option<String> {
    let count = pieces.len();
    if count == 0 || count > LFN_MAX_UNITS.div_ceil(LFN_UNITS_PER_ENTRY) {
        return None;
    }
    let mut units = Vec::with_capacity(count * LFN_UNITS_PER_ENTRY);
    for (i, (ord, sum, piece)) in pieces.iter().rev().enumerate() {
        if usize::from(*ord) != i + 1 || *sum != checksum {
            return None;
        }
        units.extend_from_slice(piece);
    }
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    Some(String::from_utf16_lossy(&units[..end]))
}
