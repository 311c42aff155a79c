//! Deterministic FAT32 volumes for EFI System Partitions: size one, format it and write its files, list them back.
//!
//! Implements the "Microsoft FAT Specification" (2005) as UEFI 2.10 §13.3 requires for the ESP. Every file is one
//! contiguous run of clusters, so writing a 200 MB UKI costs about what copying it does: the data streams from the
//! caller's reader straight to its place. [`FatLayout`] plans a volume without its data, so the caller can write
//! the metadata and then put each file at its offset itself (a kernel-side copy into a disk image), or stream a
//! one-file volume whole with [`VolumeReader`] (an ISO's `efiboot.img`) without a temporary image. The volume ID,
//! label and timestamps come from [`FatOptions`]; nothing reads the clock or a random source, so the same inputs
//! give the same bytes.
//!
//! An existing volume (ours, or any FAT32 one) can be read and edited one file at a time: [`file_extents`] says
//! where a file's data lies, and [`replace_file`] gives it new content in free clusters without moving any other
//! file, which is how a UKI is signed inside a finished disk image.
//!
//! Sizes: the cluster size follows Microsoft's formatter (512-byte clusters up to 260 MiB, 4 KiB up to 8 GiB, …),
//! and a FAT32 volume needs at least 65,525 clusters, so the smallest volume is 33 MiB (see [`MIN_SIZE`]).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod chain;
mod edit;
mod error;
mod geometry;
mod layout;
mod metadata;
mod names;
mod ondisk;
mod read;
mod stream;
mod time;
mod tree;
mod volume;
mod window;
mod write;

use std::fmt;
use std::io::Read;

pub use edit::{copy_file, file_extents, read_file, replace_file, Extent, FileExtents};
pub use error::FatError;
pub use layout::FatLayout;
pub use read::list_fat;
pub use stream::VolumeReader;
pub use tree::MAX_FILE_LEN;
pub use window::Window;
pub use write::write_fat;

use geometry::Geometry;
use tree::Tree;

/// Volumes are sized in whole MiB, so they fill 1 MiB-aligned partitions exactly.
pub const SIZE_GRANULE: u64 = 1 << 20;
/// The smallest size [`fat_size_for`] returns: the first whole MiB above FAT32's minimum of 66,601 sectors
/// (fatgen103's cluster-size table), which gives 512-byte clusters and about 66,500 of them.
pub const MIN_SIZE: u64 = (geometry::MIN_SECTORS * ondisk::SECTOR_SIZE).next_multiple_of(SIZE_GRANULE);

/// One file to put on the volume.
pub struct FatFile<'a> {
    /// `/`-separated, such as `EFI/BOOT/BOOTX64.EFI`; parent directories are created as needed.
    pub path: &'a str,
    /// Exactly how many bytes `data` yields; below 4 GiB.
    pub len: u64,
    pub data: &'a mut dyn Read,
}

impl fmt::Debug for FatFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FatFile").field("path", &self.path).field("len", &self.len).finish_non_exhaustive()
    }
}

/// What makes a volume reproducible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatOptions {
    /// The volume serial number (`blkid`'s UUID, shown as `XXXX-XXXX`).
    pub volume_id: u32,
    /// At most 11 characters: uppercase ASCII letters, digits, spaces and `!#$%&'()-@^_`{}~`; empty for none.
    pub label: String,
    /// Unix seconds used for every timestamp, clamped to FAT's 1980-2107 range and stored as UTC.
    pub mtime: i64,
    /// BIOS boot code for the boot sector; `None` for code that halts (an ESP only UEFI boots).
    pub boot: Option<BootCode>,
}

/// A BIOS volume boot record for the boot sector (such as syslinux's), and where the volume lies on its disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootCode {
    /// A boot sector whose jump and OEM name (bytes 0-10) and code (bytes 90-509) replace ours; the BPB between
    /// them stays the volume's.
    pub sector: [u8; 512],
    /// The BPB's hidden sectors: the sectors before the volume on its disk, its partition's first LBA.
    pub hidden_sectors: u32,
}

/// The size of a FAT32 volume that holds `files` (path and length) with at least `headroom` bytes free: a whole
/// number of MiB, never below [`MIN_SIZE`]. [`write_fat`] accepts the same files in a volume of this size.
pub fn fat_size_for(files: &[(&str, u64)], headroom: u64) -> u64 {
    let tree = Tree::build(files.iter().copied()).ok();
    // Free clusters minus what the files and the headroom need, for a volume of `size` bytes.
    let spare = |size: u64| -> Option<i128> {
        let g = Geometry::for_size(size).ok()?;
        let cluster = g.cluster_bytes();
        let used = match &tree {
            Some(tree) => tree.allocate(cluster, true).used,
            // Invalid paths: write_fat will refuse them; an upper bound keeps this function total.
            None => files.iter().map(|(p, len)| len.div_ceil(cluster) + p.split('/').count() as u64).sum::<u64>() + 1,
        };
        Some(i128::from(g.clusters) - i128::from(used) - i128::from(headroom.div_ceil(cluster)))
    };
    // Grow by what is missing plus a FAT allowance (8 bytes per 512-byte cluster, the worst case), which
    // overshoots a little; then step back down while the files still fit.
    let mut size = MIN_SIZE;
    for _ in 0..64 {
        match spare(size) {
            Some(s) if s >= 0 => break,
            Some(s) => {
                let cluster = Geometry::for_size(size).map_or(SIZE_GRANULE, |g| g.cluster_bytes());
                let missing = u64::try_from(-s).unwrap_or(u64::MAX).saturating_mul(cluster);
                let grow = missing.saturating_add(missing / 64).checked_next_multiple_of(SIZE_GRANULE);
                size = size.saturating_add(grow.unwrap_or(u64::MAX).max(SIZE_GRANULE));
            }
            None => return size,
        }
    }
    while size > MIN_SIZE && spare(size - SIZE_GRANULE).is_some_and(|s| s >= 0) {
        size -= SIZE_GRANULE;
    }
    size
}

#[cfg(test)]
mod tests;
