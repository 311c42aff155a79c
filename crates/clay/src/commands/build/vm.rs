//! VM disk formats: the raw disk converted by clay-vdisk, reading only where the raw file has data.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};
use clay_vdisk::{RawDisk, VdiskOptions, VmFormat};

use crate::output::PendingOutput;

/// A sparse raw disk file; its data extents come from `SEEK_DATA`/`SEEK_HOLE`, so holes cost nothing.
pub struct RawFile<'a> {
    pub file: &'a File,
    pub size: u64,
}

impl RawDisk for RawFile<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn data_extents(&self) -> Vec<(u64, u64)> {
        use rustix::fs::{seek, SeekFrom};
        let mut extents = Vec::new();
        let mut pos = 0;
        while pos < self.size {
            let data = match seek(self.file, SeekFrom::Data(pos)) {
                Ok(data) => data,
                // No data after `pos`.
                Err(rustix::io::Errno::NXIO) => break,
                // A filesystem without SEEK_DATA: everything counts as data (correct, only less sparse).
                Err(_) => return vec![(0, self.size)],
            };
            let hole = seek(self.file, SeekFrom::Hole(data)).unwrap_or(self.size).min(self.size);
            extents.push((data, hole.saturating_sub(data)));
            pos = hole.max(data + 1);
        }
        extents
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// Converts `raw` into `format`, written to `output`.
pub fn write_vm_disk(
    raw: &RawFile<'_>,
    format: VmFormat,
    seed: [u8; 16],
    epoch: Option<i64>,
    output: &mut PendingOutput,
) -> Result<()> {
    let target = output.target().display().to_string();
    let opts = VdiskOptions { seed, timestamp: epoch.and_then(|t| u32::try_from(t).ok()).unwrap_or(0) };
    let mut out = BufWriter::with_capacity(1 << 20, output.file()?);
    clay_vdisk::write_vm_disk(raw, format, &opts, &mut out).with_context(|| format!("cannot write `{target}`"))?;
    out.flush().with_context(|| format!("cannot write `{target}`"))?;
    Ok(())
}
