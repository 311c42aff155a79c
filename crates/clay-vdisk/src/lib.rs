//! Converts a sparse raw disk into the VM disk container formats — qcow2, vmdk, vhdx, vdi and vhd — without
//! qemu-img, streaming the image to any `Write`.
//!
//! Every format is written the same way: the raw disk's data extents are scanned once for 64 KiB granules that
//! hold a non-zero byte, which decides up front which clusters/grains/blocks are stored; the metadata (headers,
//! tables) is then laid out and written first, and the stored blocks follow in disk order. Blocks that are all
//! zero are never stored. The output therefore needs no `Seek` and can go to a pipe. The specifications followed
//! are cited in each format's module; qemu's block drivers (`block/*.c`) are the reference reader and
//! `qemu-img check/info/compare` the test oracle.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

mod qcow2;
mod source;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;

use source::{Sink, Source};

/// The sector size every format here addresses: raw disks must be a whole number of them.
pub const SECTOR_SIZE: u64 = 512;
/// How many bytes from the start of a file [`identify`] needs to report every format's size (VHDX keeps its size
/// in a metadata region that writers place within the first few MiB).
pub const IDENTIFY_HEAD_LEN: usize = 8 << 20;
/// How many bytes from the end of a file [`identify`] needs (the VHD footer).
pub const IDENTIFY_TAIL_LEN: usize = 512;

/// A raw disk to convert: its size and where its data is. The caller builds the extents (for a file, from
/// `SEEK_DATA`/`SEEK_HOLE`); everything outside them reads as zero. The library reads through `read_at`.
pub trait RawDisk {
    /// The disk's size in bytes.
    fn size(&self) -> u64;
    /// `(offset, length)` of the ranges that may hold data, in any order; overlaps and ranges past the end are
    /// tolerated.
    fn data_extents(&self) -> Vec<(u64, u64)>;
    /// Fills `buf` with the disk's bytes at `offset`; only called inside the data extents.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// A VM disk container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmFormat {
    /// QEMU copy-on-write v3.
    Qcow2,
    /// VMware monolithic sparse.
    Vmdk,
    /// Hyper-V's VHDX, dynamic.
    Vhdx,
    /// VirtualBox's dynamic image.
    Vdi,
    /// Virtual PC's VHD, dynamic.
    Vhd,
}

impl VmFormat {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [VmFormat; 5] = [VmFormat::Qcow2, VmFormat::Vmdk, VmFormat::Vhdx, VmFormat::Vdi, VmFormat::Vhd];

    /// The format's name, as `--format` and qemu-img spell it (except that qemu-img calls VHD `vpc`).
    pub fn name(self) -> &'static str {
        match self {
            VmFormat::Qcow2 => "qcow2",
            VmFormat::Vmdk => "vmdk",
            VmFormat::Vhdx => "vhdx",
            VmFormat::Vdi => "vdi",
            VmFormat::Vhd => "vhd",
        }
    }

    /// The file extension, without the dot.
    pub fn extension(&self) -> &'static str {
        self.name()
    }
}

impl fmt::Display for VmFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VmFormat {
    type Err = VdiskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VmFormat::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| VdiskError::UnknownFormat(s.to_owned()))
    }
}

/// What makes an image reproducible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VdiskOptions {
    /// The source of every UUID/GUID a format needs; each is `sha256(seed || label)` cut to 16 bytes.
    pub seed: [u8; 16],
    /// `SOURCE_DATE_EPOCH`, for formats with a creation time (only VHD has one).
    pub timestamp: u32,
}

/// A failure while converting a raw disk.
#[derive(Debug, thiserror::Error)]
pub enum VdiskError {
    #[error("unknown VM disk format `{0}`; expected qcow2, vmdk, vhdx, vdi or vhd")]
    UnknownFormat(String),
    #[error("the raw disk is {0} bytes; VM disk formats need a non-zero multiple of 512 bytes")]
    BadSize(u64),
    #[error("the raw disk is {size} bytes, more than a {format} image can hold")]
    TooLarge { format: VmFormat, size: u64 },
    #[error("cannot read the raw disk at offset {offset}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the {format} image")]
    Write {
        format: VmFormat,
        #[source]
        source: io::Error,
    },
}

/// Streams `raw` converted to `format` into `out` with sequential writes only, and returns the number of bytes
/// written. Only the 64 KiB granules of `raw` that hold a non-zero byte cost space (rounded up to the format's
/// block size).
pub fn write_vm_disk(
    raw: &dyn RawDisk,
    format: VmFormat,
    opts: &VdiskOptions,
    out: &mut dyn Write,
) -> Result<u64, VdiskError> {
    let src = Source::new(raw)?;
    let granules = src.nonzero_granules()?;
    let mut sink = Sink::new(out, format);
    match format {
        VmFormat::Qcow2 => qcow2::write(&src, &granules, &mut sink)?,
        VmFormat::Vmdk => vmdk::write(&src, &granules, opts, &mut sink)?,
        VmFormat::Vhdx => vhdx::write(&src, &granules, opts, &mut sink)?,
        VmFormat::Vdi => vdi::write(&src, &granules, opts, &mut sink)?,
        VmFormat::Vhd => vhd::write(&src, &granules, opts, &mut sink)?,
    }
    sink.finish()
}

/// Recognises a VM disk by its header (or, for VHD, its footer) and returns its format and virtual size in bytes.
/// `head` is the start of the file ([`IDENTIFY_HEAD_LEN`] bytes, or the whole file if shorter), `tail` its end
/// ([`IDENTIFY_TAIL_LEN`] bytes) and `file_len` its length. Returns `None` for anything else, including a
/// recognised format whose size lies beyond `head`. Never panics, whatever the bytes.
pub fn identify(head: &[u8], tail: &[u8], file_len: u64) -> Option<(VmFormat, u64)> {
    qcow2::identify(head)
        .map(|size| (VmFormat::Qcow2, size))
        .or_else(|| vmdk::identify(head).map(|size| (VmFormat::Vmdk, size)))
        .or_else(|| vhdx::identify(head).map(|size| (VmFormat::Vhdx, size)))
        .or_else(|| vdi::identify(head).map(|size| (VmFormat::Vdi, size)))
        .or_else(|| vhd::identify(head, tail, file_len).map(|size| (VmFormat::Vhd, size)))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests;
