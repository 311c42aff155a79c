//! The FAT of an existing volume held in memory (FAT spec §4): following cluster chains defensively, finding free
//! clusters, and writing changed entries back to every FAT copy.
//!
//! An ESP's FAT is small (256 KiB for 33 MiB with 512-byte clusters, 2 MiB for 2 GiB with 4 KiB ones), so it is
//! read once rather than entry by entry, and only the entries that change are written back.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::ondisk::{FAT_ENTRY_LEN, FAT_ENTRY_MASK, FAT_EOC, FAT_EOC_MIN, FSINFO_UNKNOWN, ROOT_CLUSTER};
use crate::volume::{past_end, Volume};
use crate::FatError;

/// Bytes of one FAT32 entry, as an index into the table.
const ENTRY: usize = 4;
const _: () = assert!(ENTRY as u64 == FAT_ENTRY_LEN);

/// A FAT as stored: entry `c` for cluster `c` in bytes `4c..4c + 4`, little-endian, with the reserved high 4 bits
/// as found (FAT spec §4 says to keep them).
#[derive(Debug)]
pub struct Fat {
    bytes: Vec<u8>,
}

/// One bit per cluster.
#[derive(Debug)]
pub struct ClusterSet {
    words: Vec<u64>,
}

impl ClusterSet {
    pub fn new(max_cluster: u32) -> ClusterSet {
        ClusterSet { words: vec![0; (max_cluster as usize).div_ceil(64) + 1] }
    }

    /// Adds `c`; false if it was already there.
    pub fn insert(&mut self, c: u32) -> bool {
        let (word, bit) = (c as usize / 64, 1u64 << (c % 64));
        match self.words.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }

    pub fn contains(&self, c: u32) -> bool {
        self.words.get(c as usize / 64).is_some_and(|w| w & (1u64 << (c % 64)) != 0)
    }
}

impl Fat {
    /// Reads the active FAT of `vol` (FAT spec §3.3, BPB_ExtFlags), entries 0 to `max_cluster`.
    pub fn load(dev: &mut (impl Read + Seek), vol: &Volume) -> Result<Fat, FatError> {
        let (active, _) = vol.active_fats()?;
        let count = vol.max_cluster as usize + 1;
        let start = vol.base.saturating_add(vol.fat_start(active));
        // The entries come from the device, so a damaged BPB cannot make us allocate more than it holds.
        let device_end = dev.seek(SeekFrom::End(0))?;
        if device_end < start.saturating_add(count as u64 * FAT_ENTRY_LEN) {
            return Err(FatError::Corrupt("the volume is shorter than its boot sector says".into()));
        }
        dev.seek(SeekFrom::Start(start))?;
        let mut bytes = vec![0u8; count * ENTRY];
        dev.read_exact(&mut bytes).map_err(past_end)?;
        Ok(Fat { bytes })
    }

    /// The highest valid cluster number.
    pub fn max_cluster(&self) -> u32 {
        u32::try_from((self.bytes.len() / ENTRY).saturating_sub(1)).unwrap_or(0)
    }

    fn in_range(&self, c: u32) -> bool {
        c >= ROOT_CLUSTER && (c as usize) < self.bytes.len() / ENTRY
    }

    /// The 28-bit value of cluster `c`'s entry; 0 (free) outside the table.
    pub fn get(&self, c: u32) -> u32 {
        self.raw(c) & FAT_ENTRY_MASK
    }

    fn raw(&self, c: u32) -> u32 {
        let at = c as usize * ENTRY;
        self.bytes.get(at..at + ENTRY).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Sets cluster `c`'s entry to `value`, keeping its reserved high bits.
    pub fn set(&mut self, c: u32, value: u32) {
        let new = (self.raw(c) & !FAT_ENTRY_MASK) | (value & FAT_ENTRY_MASK);
        let at = c as usize * ENTRY;
        if let Some(b) = self.bytes.get_mut(at..at + ENTRY) {
            b.copy_from_slice(&new.to_le_bytes());
        }
    }

    pub fn is_free(&self, c: u32) -> bool {
        self.in_range(c) && self.get(c) == 0
    }

    /// The clusters of the chain from `first` to its end-of-chain mark. A link out of the data clusters (free,
    /// reserved or bad included) or back into the chain is an error naming `path`; a chain is never followed
    /// further than the volume has clusters.
    pub fn chain(&self, path: &str, first: u32) -> Result<Vec<u32>, FatError> {
        let mut seen = ClusterSet::new(self.max_cluster());
        let mut out = Vec::new();
        let mut c = first;
        loop {
            if !self.in_range(c) {
                return Err(FatError::ClusterOutOfRange { path: path.to_owned(), cluster: c, max: self.max_cluster() });
            }
            if !seen.insert(c) {
                return Err(FatError::ChainLoop { path: path.to_owned(), cluster: c });
            }
            out.push(c);
            let next = self.get(c);
            if next >= FAT_EOC_MIN {
                return Ok(out);
            }
            c = next;
        }
    }

    /// The chain of a file of `len` bytes starting at `first` (0 for an empty file), which must have exactly
    /// the clusters its length needs.
    pub fn file_chain(&self, path: &str, first: u32, len: u64, cluster_bytes: u64) -> Result<Vec<u32>, FatError> {
        let expected = len.div_ceil(cluster_bytes);
        let chain = if first == 0 { Vec::new() } else { self.chain(path, first)? };
        let clusters = chain.len() as u64;
        if clusters < expected {
            return Err(FatError::ChainTooShort { path: path.to_owned(), len, expected, clusters });
        }
        if clusters > expected {
            return Err(FatError::ChainTooLong { path: path.to_owned(), len, expected, clusters });
        }
        Ok(chain)
    }

    /// Follows the chain from `first` as far as it is sound, marking its clusters in `owned`; stops quietly at
    /// damage or at a cluster already marked. For finding which clusters other files hold.
    pub fn mark_chain(&self, first: u32, owned: &mut ClusterSet) {
        let mut c = first;
        while self.in_range(c) && owned.insert(c) {
            c = self.get(c);
        }
    }

    /// Free data clusters.
    pub fn free_count(&self) -> u32 {
        let free = (ROOT_CLUSTER..=self.max_cluster()).filter(|&c| self.get(c) == 0).count();
        u32::try_from(free).unwrap_or(u32::MAX)
    }

    /// Clusters that are free and not in `taken`: what a new chain may use.
    fn usable(&self, c: u32, taken: &ClusterSet) -> bool {
        self.get(c) == 0 && !taken.contains(c)
    }

    /// How many clusters a new chain may use.
    pub fn usable_count(&self, taken: &ClusterSet) -> u64 {
        (ROOT_CLUSTER..=self.max_cluster()).filter(|&c| self.usable(c, taken)).count() as u64
    }

    /// `count` free clusters outside `taken` (which a damaged entry may point into although the FAT calls them
    /// free): the first run of that many in a row, else the first `count` in order; `None` if there are fewer.
    pub fn allocate(&self, count: u64, taken: &ClusterSet) -> Option<Vec<u32>> {
        if count == 0 {
            return Some(Vec::new());
        }
        let mut run_start = ROOT_CLUSTER;
        let mut run_len = 0u64;
        for c in ROOT_CLUSTER..=self.max_cluster() {
            if !self.usable(c, taken) {
                run_len = 0;
                continue;
            }
            if run_len == 0 {
                run_start = c;
            }
            run_len += 1;
            if run_len == count {
                return Some((run_start..=c).collect());
            }
        }
        let want = usize::try_from(count).unwrap_or(usize::MAX);
        let free: Vec<u32> =
            (ROOT_CLUSTER..=self.max_cluster()).filter(|&c| self.usable(c, taken)).take(want).collect();
        (free.len() as u64 == count).then_some(free)
    }

    /// Links `clusters` into one chain, in order, ending it with end-of-chain.
    pub fn link(&mut self, clusters: &[u32]) {
        for pair in clusters.windows(2) {
            self.set(pair[0], pair[1]);
        }
        if let Some(&last) = clusters.last() {
            self.set(last, FAT_EOC);
        }
    }

    /// FAT spec §5's FSI_Nxt_Free: the first free cluster from `after + 1` on, wrapping around to cluster 2.
    pub fn next_free(&self, after: u32) -> u32 {
        let max = self.max_cluster();
        let start = after.saturating_add(1).clamp(ROOT_CLUSTER, max.max(ROOT_CLUSTER));
        (start..=max).chain(ROOT_CLUSTER..start).find(|&c| self.is_free(c)).unwrap_or(FSINFO_UNKNOWN)
    }

    /// Writes the entries of `clusters` to every FAT that is kept up to date, a run of consecutive entries at a
    /// time.
    pub fn write_entries(&self, dev: &mut (impl Write + Seek), vol: &Volume, clusters: &[u32]) -> Result<(), FatError> {
        let (_, targets) = vol.active_fats()?;
        let mut sorted = clusters.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for (first, count) in runs(&sorted) {
            let start = first as usize * ENTRY;
            let Some(bytes) = self.bytes.get(start..start + count as usize * ENTRY) else { continue };
            for &n in &targets {
                let at = vol.base.saturating_add(vol.fat_start(n) + u64::from(first) * FAT_ENTRY_LEN);
                dev.seek(SeekFrom::Start(at))?;
                dev.write_all(bytes)?;
            }
        }
        Ok(())
    }
}

/// Clusters, in their order, grouped into runs of consecutive ascending numbers: (first, count).
pub fn runs(clusters: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &c in clusters {
        match out.last_mut() {
            Some((first, count)) if first.checked_add(*count) == Some(c) => *count += 1,
            _ => out.push((c, 1)),
        }
    }
    out
}
