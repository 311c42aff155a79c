//! Planning a volume before writing it: geometry, short names and every cluster's owner are fixed first, so the
//! metadata and each file's data can then be written independently, or streamed in one pass.

use std::io::{Cursor, Seek, SeekFrom, Write};

use crate::geometry::Geometry;
use crate::metadata::{directory, reserved_area, volume_label, write_fat_table};
use crate::ondisk::{NO_NAME, NUM_FATS, ROOT_CLUSTER};
use crate::time::FatTime;
use crate::tree::{Allocation, Tree};
use crate::{fat_size_for, BootCode, FatError, FatOptions};

/// A planned FAT32 volume: geometry, allocation and directory contents, with no file data.
///
/// The root comes first, then the other directories, then each file in the order given, in one contiguous run
/// of clusters; so all metadata lies before the first file's data.
#[derive(Debug)]
pub struct FatLayout {
    size: u64,
    geometry: Geometry,
    tree: Tree,
    alloc: Allocation,
    label: Option<[u8; 11]>,
    volume_id: u32,
    time: FatTime,
    boot: Option<BootCode>,
}

impl FatLayout {
    /// Plans a volume of `size` bytes holding `files` (path and length), in order: the checks and the placement
    /// [`write_fat`](crate::write_fat) uses, which is built on this.
    pub fn plan(size: u64, files: &[(&str, u64)], opts: &FatOptions) -> Result<FatLayout, FatError> {
        let label = volume_label(&opts.label)?;
        let geometry = Geometry::for_size(size)?;
        let tree = Tree::build(files.iter().copied())?;
        let alloc = tree.allocate(geometry.cluster_bytes(), label.is_some());
        let available = u64::from(geometry.clusters);
        if alloc.used > available {
            return Err(FatError::Full {
                needed: alloc.used * geometry.cluster_bytes(),
                available: available * geometry.cluster_bytes(),
                size,
                suggested: fat_size_for(files, 0),
            });
        }
        let time = FatTime::from_unix(opts.mtime);
        Ok(FatLayout { size, geometry, tree, alloc, label, volume_id: opts.volume_id, time, boot: opts.boot.clone() })
    }

    /// The volume's size in bytes, as planned.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where file `index`'s data starts, in bytes from the start of the volume: it is contiguous for the file's
    /// length, followed by zero slack up to the end of its last cluster. `None` for an index past the files and
    /// for an empty file, which owns no cluster.
    pub fn file_offset(&self, index: usize) -> Option<u64> {
        let run = self.alloc.files.get(index)?;
        (run.count > 0).then(|| self.geometry.cluster_offset(run.first))
    }

    /// Writes everything but the files' data (boot sector and its backup, FSInfo, both FATs, the directories) into
    /// `dev`, whose current position is the volume's start. The rest of the volume must already read as zeros (a
    /// fresh sparse file or a [`Window`](crate::Window) of one); `dev`'s position afterwards is unspecified.
    pub fn write_metadata(&self, dev: &mut (impl Write + Seek)) -> Result<(), FatError> {
        let base = dev.stream_position()?;
        if base.checked_add(self.size).is_none() {
            return Err(FatError::TooLarge { size: self.size });
        }
        let g = &self.geometry;
        let label = self.label.unwrap_or(NO_NAME);
        let reserved = reserved_area(g, &self.alloc, self.volume_id, label, self.boot.as_ref());
        dev.seek(SeekFrom::Start(base))?;
        dev.write_all(&reserved)?;
        for n in 0..u32::from(NUM_FATS) {
            dev.seek(SeekFrom::Start(base + g.fat_offset(n)))?;
            write_fat_table(dev, g, &self.alloc)?;
        }
        for (index, run) in self.alloc.dirs.iter().enumerate() {
            let bytes = directory(&self.tree, index, &self.alloc, self.label, self.time, g.cluster_bytes());
            dev.seek(SeekFrom::Start(base + g.cluster_offset(run.first)))?;
            dev.write_all(&bytes)?;
        }
        dev.flush()?;
        Ok(())
    }

    /// For streaming the whole volume in one pass (into an ISO): the bytes from offset 0 up to the data of the
    /// volume's only file, when it holds exactly one file. The whole volume is then `head`, the file's data, and
    /// zeros up to [`size`](FatLayout::size). `None` for any other number of files, or if some metadata came after
    /// the data (the allocation never puts it there).
    ///
    /// The head holds both FATs in full: about 1.6% of the volume with 512-byte clusters, 0.2% with 4 KiB ones.
    pub fn head(&self) -> Option<Vec<u8>> {
        let [run] = self.alloc.files[..] else { return None };
        let metadata_end = self.metadata_end();
        let data_start = if run.count == 0 { metadata_end } else { self.geometry.cluster_offset(run.first) };
        if metadata_end > data_start {
            return None;
        }
        let mut head = Cursor::new(vec![0u8; usize::try_from(data_start).ok()?]);
        self.write_metadata(&mut head).ok()?;
        let head = head.into_inner();
        // A Cursor grows on a write past its end; the check above rules that out.
        (head.len() as u64 == data_start).then_some(head)
    }

    /// Bytes per cluster.
    pub(crate) fn cluster_bytes(&self) -> u64 {
        self.geometry.cluster_bytes()
    }

    /// The only file's path and length, for [`VolumeReader`](crate::VolumeReader).
    pub(crate) fn single_file(&self) -> Option<(&str, u64)> {
        match &self.tree.files[..] {
            [file] => Some((&file.path, file.len)),
            _ => None,
        }
    }

    /// The end of the last metadata byte: the FATs end where cluster 2 starts; directories may come after it.
    fn metadata_end(&self) -> u64 {
        let g = &self.geometry;
        let dirs = self.alloc.dirs.iter().map(|r| g.cluster_offset(r.first) + u64::from(r.count) * g.cluster_bytes());
        dirs.fold(g.cluster_offset(ROOT_CLUSTER), u64::max)
    }
}
