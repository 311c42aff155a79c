//! Listing the files of a FAT32 volume, for `clay inspect` and tests. Every on-disk value is checked before use:
//! damaged input is an error, never a panic, a loop or an unbounded allocation.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};

use zerocopy::FromBytes;

use crate::names::{short_name_checksum, short_name_text};
use crate::ondisk::{
    DirEntry, LfnEntry, ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_LONG_NAME_MASK, ATTR_VOLUME_ID, DIR_ENTRY_END,
    DIR_ENTRY_FREE, DIR_ENTRY_KANJI_E5, DIR_ENTRY_LEN, FAT_ENTRY_LEN, FAT_ENTRY_MASK, FAT_EOC_MIN, LAST_LONG_ENTRY,
    LFN_MAX_UNITS, LFN_UNITS_PER_ENTRY, MAX_DIR_ENTRIES, NTRES_LOWER_BASE, NTRES_LOWER_EXT, ROOT_CLUSTER,
};
use crate::volume::{past_end, Volume};
use crate::FatError;

/// Directories nested deeper than this are taken as damage.
const MAX_DEPTH: usize = 64;

/// Lists the files of the FAT32 volume that starts at `dev`'s current position: `/`-separated paths (long names
/// where present) and sizes, directory by directory in on-disk order.
pub fn list_fat(dev: &mut (impl Read + Seek)) -> Result<Vec<(String, u64)>, FatError> {
    let volume = Volume::read(dev)?;

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
        for DirItem { name, entry, .. } in entries(&bytes) {
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

/// One named entry of a directory.
pub struct DirItem {
    /// The long name when there is a valid one, else the short name as text (lowercased where DIR_NTRes says).
    pub name: String,
    /// The short name as stored, with a leading 0x05 turned back into 0xE5.
    pub short: [u8; 11],
    pub entry: DirEntry,
    /// The short entry's position in the directory, in 32-byte entries.
    pub index: usize,
}

/// The named entries of a directory (neither free, nor the volume label, nor `.`/`..`), with their long names
/// when the long-name entries before them are whole and carry the short name's checksum (FAT spec §7).
pub fn entries(bytes: &[u8]) -> Vec<DirItem> {
    let mut out = Vec::new();
    let mut long: Vec<(u8, u8, Vec<u16>)> = Vec::new();
    for (index, raw) in bytes.chunks_exact(32).enumerate() {
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
        out.push(DirItem { name, short, entry, index });
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
