//! One file of an existing FAT32 volume: finding it by path (long or short name, case-insensitive as UEFI does),
//! reading it where it lies, and replacing its content without moving anything else (FAT spec §4-§7). This is how
//! `clay sign` puts a signed UKI into a finished disk's ESP or an ISO's ESP image.
//!
//! A replacement always goes to free clusters, so the volume needs room for the new content beside the old. The
//! writes are ordered so that an interruption leaves a volume with the old file or the new one: first the data
//! and the new chain, then the directory entry, then freeing the old chain and the FSInfo hints.

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, IntoBytes};

use crate::chain::{runs, ClusterSet, Fat};
use crate::names::{fold, short_name_text};
use crate::ondisk::{
    DirEntry, FsInfo, ATTR_DIRECTORY, DIR_ENTRY_BYTES, DIR_ENTRY_LEN, FSINFO_LEAD_SIG, FSINFO_STRUC_SIG,
    FSINFO_TRAIL_SIG, MAX_DIR_ENTRIES, ROOT_CLUSTER, SECTOR_LEN,
};
use crate::read::{entries, DirItem};
use crate::time::FatTime;
use crate::volume::{past_end, Volume};
use crate::FatError;

/// Size of the buffer file data is copied through.
const COPY_BUFFER: usize = 1 << 20;
/// FAT spec §5: FSI_Free_Count's offset in the FSInfo sector; FSI_Nxt_Free follows it.
const FSINFO_FREE_COUNT_OFFSET: u64 = 488;
const _: () = assert!(std::mem::offset_of!(FsInfo, free_count) as u64 == FSINFO_FREE_COUNT_OFFSET);
const _: () = assert!(std::mem::offset_of!(FsInfo, next_free) as u64 == FSINFO_FREE_COUNT_OFFSET + 4);

/// A contiguous piece of a file's data on the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Bytes from the start of the volume.
    pub offset: u64,
    pub len: u64,
}

/// Where a file's data lies: its length and the runs of its cluster chain in file order, whose lengths add up to
/// exactly `len` (the last run stops at the end of the data, before the slack of its last cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileExtents {
    pub len: u64,
    pub extents: Vec<Extent>,
}

/// Where the file at `path` lies on the FAT32 volume that starts at `dev`'s current position, for copying it out
/// with positional reads (add the volume's own offset on its device to each [`Extent::offset`]).
///
/// `path` is `/`- or `\`-separated; each component matches a long name or a short name, ignoring case. The
/// file's cluster chain must be sound and exactly as long as its size needs: a loop, a link out of the volume or
/// a length mismatch is an error naming the file. `dev`'s position afterwards is unspecified.
pub fn file_extents(dev: &mut (impl Read + Seek), path: &str) -> Result<FileExtents, FatError> {
    let vol = Volume::read(dev)?;
    let fat = Fat::load(dev, &vol)?;
    let found = lookup(dev, &vol, &fat, path)?;
    let chain = fat.file_chain(path, found.first_cluster(), found.len(), vol.cluster_bytes)?;
    let mut left = found.len();
    let extents = runs(&chain)
        .into_iter()
        .map(|(first, count)| {
            let len = (u64::from(count) * vol.cluster_bytes).min(left);
            left -= len;
            Extent { offset: vol.cluster_offset(first), len }
        })
        .collect();
    Ok(FileExtents { len: found.len(), extents })
}

/// Copies the file at `path` (found as [`file_extents`] finds it) to `out`, returning its length.
pub fn copy_file(dev: &mut (impl Read + Seek), path: &str, out: &mut dyn Write) -> Result<u64, FatError> {
    let base = dev.stream_position()?;
    let file = file_extents(dev, path)?;
    let mut buffer = vec![0u8; COPY_BUFFER];
    for extent in &file.extents {
        dev.seek(SeekFrom::Start(base.saturating_add(extent.offset)))?;
        let mut left = extent.len;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
            dev.read_exact(&mut buffer[..n]).map_err(past_end)?;
            out.write_all(&buffer[..n])?;
            left -= n as u64;
        }
    }
    Ok(file.len)
}

/// The content of the file at `path`, for small files; see [`copy_file`] for big ones.
pub fn read_file(dev: &mut (impl Read + Seek), path: &str) -> Result<Vec<u8>, FatError> {
    let mut out = Vec::new();
    copy_file(dev, path, &mut out)?;
    Ok(out)
}

/// Replaces the content of the existing file at `path` on the FAT32 volume that starts at `dev`'s current
/// position with `new_len` bytes read from `data`, and sets its write time to `mtime` (Unix seconds, stored as
/// UTC like [`FatOptions::mtime`](crate::FatOptions::mtime)).
///
/// The new content goes to free clusters: the first run of them long enough, else the free clusters in order.
/// Then the new chain is written to the FATs, the directory entry switched to it (first cluster, size, write and
/// access date), the old chain freed and the FSInfo free count and next-free hint updated. No other file,
/// directory or the boot sector moves or changes. Fails without touching the FATs or the directory when `data`
/// yields other than `new_len` bytes, or when the file's chain is damaged or shared with another file.
///
/// When the free clusters cannot hold a second copy (a volume sized for its files, like an ISO's ESP image), the
/// file's own clusters are reused in order and only the missing ones taken from free space: the old content is
/// then overwritten as the new one is written, so a caller that must keep it on failure works on a copy (as
/// `clay sign` does: it writes a new image and renames it at the end). Fails with [`FatError::NoSpace`] when even
/// that is not enough. Durability is the caller's: sync `dev` afterwards.
pub fn replace_file(
    dev: &mut (impl Read + Write + Seek),
    path: &str,
    new_len: u64,
    data: &mut dyn Read,
    mtime: i64,
) -> Result<(), FatError> {
    // DIR_FileSize is 32 bits (FAT spec §6).
    let Ok(size) = u32::try_from(new_len) else {
        return Err(FatError::FileTooLarge { path: path.to_owned(), len: new_len });
    };
    let vol = Volume::read(dev)?;
    let mut fat = Fat::load(dev, &vol)?;
    let found = lookup(dev, &vol, &fat, path)?;
    let old = fat.file_chain(path, found.first_cluster(), found.len(), vol.cluster_bytes)?;
    let others = clusters_of_others(dev, &vol, &fat, found.entry_offset)?;
    if let Some(&cluster) = old.iter().find(|&&c| others.contains(c)) {
        return Err(FatError::CrossLinked { path: path.to_owned(), cluster });
    }

    let needed = new_len.div_ceil(vol.cluster_bytes);
    let new = match fat.allocate(needed, &others) {
        Some(fresh) => fresh,
        None => {
            // No room for a second copy: the file's own clusters first, then free ones for the rest.
            let reused = usize::try_from(needed).unwrap_or(usize::MAX).min(old.len());
            let extra = needed - reused as u64;
            let Some(more) = fat.allocate(extra, &others) else {
                let free = fat.usable_count(&others) + old.len() as u64;
                return Err(FatError::NoSpace {
                    path: path.to_owned(),
                    len: new_len,
                    needed: needed * vol.cluster_bytes,
                    free: free * vol.cluster_bytes,
                    missing: needed.saturating_sub(free) * vol.cluster_bytes,
                });
            };
            old[..reused].iter().copied().chain(more).collect()
        }
    };
    write_data(dev, &vol, &new, new_len, data, path)?;
    fat.link(&new);
    fat.write_entries(dev, &vol, &new)?;
    dev.flush()?;

    let first = new.first().copied().unwrap_or(0);
    switch_entry(dev, &vol, &found, first, size, FatTime::from_unix(mtime))?;
    dev.flush()?;

    let freed: Vec<u32> = old.iter().copied().filter(|c| !new.contains(c)).collect();
    for &c in &freed {
        fat.set(c, 0);
    }
    fat.write_entries(dev, &vol, &freed)?;
    update_fs_info(dev, &vol, &fat, new.last().copied().unwrap_or(ROOT_CLUSTER - 1))?;
    dev.flush()?;
    Ok(())
}

/// A file's directory entry, as found by [`lookup`].
struct Found {
    entry: DirEntry,
    /// Where the short entry lies, in bytes from the volume's start.
    entry_offset: u64,
}

impl Found {
    fn first_cluster(&self) -> u32 {
        first_cluster(&self.entry)
    }

    fn len(&self) -> u64 {
        u64::from(self.entry.file_size.get())
    }
}

fn first_cluster(entry: &DirEntry) -> u32 {
    (u32::from(entry.fst_clus_hi.get()) << 16) | u32::from(entry.fst_clus_lo.get())
}

/// Whether a directory entry answers to `key` (a folded name): its long name or its short name, ignoring case.
fn matches(item: &DirItem, key: &str) -> bool {
    fold(&item.name) == key || fold(&short_name_text(&item.short, false, false)) == key
}

/// Finds the file at `path`, walking from the root directory.
fn lookup(dev: &mut (impl Read + Seek), vol: &Volume, fat: &Fat, path: &str) -> Result<Found, FatError> {
    let components: Vec<&str> = path.split(['/', '\\']).filter(|c| !c.is_empty()).collect();
    if components.is_empty() {
        return Err(FatError::NotAFile { path: path.to_owned() });
    }
    let mut dir = vol.root_cluster;
    for (depth, name) in components.iter().enumerate() {
        let dir_path = if depth == 0 { "/".to_owned() } else { components[..depth].join("/") };
        let (clusters, bytes) = read_dir(dev, vol, fat, &dir_path, dir)?;
        let key = fold(name);
        let item = entries(&bytes)
            .into_iter()
            .find(|item| matches(item, &key))
            .ok_or_else(|| FatError::NotFound { path: path.to_owned() })?;
        let here = components[..=depth].join("/");
        let is_dir = item.entry.attr & ATTR_DIRECTORY != 0;
        if depth + 1 < components.len() {
            if !is_dir {
                return Err(FatError::NotADirectory { path: here, rest: components[depth + 1..].join("/") });
            }
            dir = first_cluster(&item.entry);
            continue;
        }
        if is_dir {
            return Err(FatError::NotAFile { path: here });
        }
        let byte = item.index as u64 * DIR_ENTRY_LEN;
        let cluster = usize::try_from(byte / vol.cluster_bytes).ok().and_then(|i| clusters.get(i));
        let Some(&cluster) = cluster else {
            return Err(FatError::Corrupt(format!("the entry of `{here}` lies past the end of its directory")));
        };
        let entry_offset = vol.cluster_offset(cluster) + byte % vol.cluster_bytes;
        return Ok(Found { entry: item.entry, entry_offset });
    }
    Err(FatError::NotFound { path: path.to_owned() })
}

/// The clusters of the directory at `first` and its bytes; `path` names it in errors.
fn read_dir(
    dev: &mut (impl Read + Seek),
    vol: &Volume,
    fat: &Fat,
    path: &str,
    first: u32,
) -> Result<(Vec<u32>, Vec<u8>), FatError> {
    let clusters = fat.chain(path, first)?;
    let len = clusters.len() as u64 * vol.cluster_bytes;
    if len > MAX_DIR_ENTRIES * DIR_ENTRY_LEN {
        return Err(FatError::Corrupt(format!("directory `{path}` is longer than a FAT directory can be (2 MiB)")));
    }
    let cluster_len = usize::try_from(vol.cluster_bytes).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
    for (chunk, &c) in bytes.chunks_exact_mut(cluster_len).zip(&clusters) {
        dev.seek(SeekFrom::Start(vol.base.saturating_add(vol.cluster_offset(c))))?;
        dev.read_exact(chunk).map_err(past_end)?;
    }
    Ok((clusters, bytes))
}

/// The clusters held by every directory and file except the entry at `skip`, as far as their chains are sound:
/// freeing a cluster one of them holds would damage it. Damage elsewhere is not this replacement's business, so
/// unreadable directories and broken chains are taken as far as they go.
fn clusters_of_others(
    dev: &mut (impl Read + Seek),
    vol: &Volume,
    fat: &Fat,
    skip: u64,
) -> Result<ClusterSet, FatError> {
    let mut owned = ClusterSet::new(fat.max_cluster());
    let mut dirs = vec![vol.root_cluster];
    while let Some(first) = dirs.pop() {
        if owned.contains(first) {
            continue;
        }
        let (clusters, bytes) = match read_dir(dev, vol, fat, "", first) {
            Ok(dir) => dir,
            Err(FatError::Io(e)) => return Err(FatError::Io(e)),
            Err(_) => {
                fat.mark_chain(first, &mut owned);
                continue;
            }
        };
        for &c in &clusters {
            owned.insert(c);
        }
        let cluster_len = vol.cluster_bytes;
        for item in entries(&bytes) {
            let byte = item.index as u64 * DIR_ENTRY_LEN;
            let at = usize::try_from(byte / cluster_len).ok().and_then(|i| clusters.get(i));
            if at.is_some_and(|&c| vol.cluster_offset(c) + byte % cluster_len == skip) {
                continue;
            }
            let first = first_cluster(&item.entry);
            if item.entry.attr & ATTR_DIRECTORY != 0 {
                dirs.push(first);
            } else if first != 0 {
                fat.mark_chain(first, &mut owned);
            }
        }
    }
    Ok(owned)
}

/// Writes exactly `len` bytes of `data` into `clusters`, zeroing the slack of the last one.
fn write_data(
    dev: &mut (impl Write + Seek),
    vol: &Volume,
    clusters: &[u32],
    len: u64,
    data: &mut dyn Read,
    path: &str,
) -> Result<(), FatError> {
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut done = 0u64;
    for (first, count) in runs(clusters) {
        dev.seek(SeekFrom::Start(vol.base.saturating_add(vol.cluster_offset(first))))?;
        let mut room = u64::from(count) * vol.cluster_bytes;
        while room > 0 {
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(buffer.len());
            let take = usize::try_from(len - done).unwrap_or(usize::MAX).min(n);
            fill(data, &mut buffer[..take]).map_err(|got| match got {
                Filled::Short(got) => FatError::ShortData { path: path.to_owned(), expected: len, got: done + got },
                Filled::Failed(e) => FatError::Io(e),
            })?;
            buffer[take..n].fill(0);
            dev.write_all(&buffer[..n])?;
            room -= n as u64;
            done += take as u64;
        }
    }
    let mut probe = [0u8; 1];
    match fill(data, &mut probe) {
        Ok(()) => Err(FatError::LongData { path: path.to_owned(), expected: len }),
        Err(Filled::Short(_)) => Ok(()),
        Err(Filled::Failed(e)) => Err(FatError::Io(e)),
    }
}

/// Why [`fill`] stopped early.
enum Filled {
    /// The data ended after this many bytes.
    Short(u64),
    Failed(std::io::Error),
}

/// Reads `buf.len()` bytes from `data`, retrying interrupted reads.
fn fill(data: &mut dyn Read, buf: &mut [u8]) -> Result<(), Filled> {
    let mut got = 0;
    while got < buf.len() {
        match data.read(&mut buf[got..]) {
            Ok(0) => return Err(Filled::Short(got as u64)),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Filled::Failed(e)),
        }
    }
    Ok(())
}

/// Points the file's directory entry at its new chain, with its new size and write time (FAT spec §6).
fn switch_entry(
    dev: &mut (impl Read + Write + Seek),
    vol: &Volume,
    found: &Found,
    first: u32,
    size: u32,
    time: FatTime,
) -> Result<(), FatError> {
    let at = vol.base.saturating_add(found.entry_offset);
    let mut raw = [0u8; DIR_ENTRY_BYTES];
    dev.seek(SeekFrom::Start(at))?;
    dev.read_exact(&mut raw).map_err(past_end)?;
    let (mut entry, _) = DirEntry::read_from_prefix(&raw).map_err(|_| FatError::Corrupt("a short entry".into()))?;
    if entry.name != found.entry.name {
        return Err(FatError::Corrupt("the file's directory entry changed while it was being replaced".into()));
    }
    entry.fst_clus_hi = U16::new(u16::try_from(first >> 16).unwrap_or(0));
    entry.fst_clus_lo = U16::new(u16::try_from(first & 0xFFFF).unwrap_or(0));
    entry.file_size = U32::new(size);
    entry.wrt_time = U16::new(time.time);
    entry.wrt_date = U16::new(time.date);
    entry.lst_acc_date = U16::new(time.date);
    dev.seek(SeekFrom::Start(at))?;
    dev.write_all(entry.as_bytes())?;
    Ok(())
}

/// FAT spec §5: sets FSI_Free_Count to the free clusters and FSI_Nxt_Free to the first free one after `last`,
/// when the volume has a valid FSInfo sector; its other bytes and its backup stay as they are.
fn update_fs_info(dev: &mut (impl Read + Write + Seek), vol: &Volume, fat: &Fat, last: u32) -> Result<(), FatError> {
    let Some(offset) = vol.fs_info_offset() else { return Ok(()) };
    let at = vol.base.saturating_add(offset);
    let mut raw = [0u8; SECTOR_LEN];
    dev.seek(SeekFrom::Start(at))?;
    dev.read_exact(&mut raw).map_err(past_end)?;
    let Ok((mut info, _)) = FsInfo::read_from_prefix(&raw) else { return Ok(()) };
    let valid = info.lead_sig.get() == FSINFO_LEAD_SIG
        && info.struc_sig.get() == FSINFO_STRUC_SIG
        && info.trail_sig.get() == FSINFO_TRAIL_SIG;
    if !valid {
        return Ok(());
    }
    info.free_count = U32::new(fat.free_count());
    info.next_free = U32::new(fat.next_free(last));
    // Only the two fields, which lie side by side.
    let fields = [info.free_count.get().to_le_bytes(), info.next_free.get().to_le_bytes()].concat();
    dev.seek(SeekFrom::Start(at.saturating_add(FSINFO_FREE_COUNT_OFFSET)))?;
    dev.write_all(&fields)?;
    Ok(())
}
