//! What every format shares: reading the raw disk (holes read as zero), finding its non-zero granules, counting
//! what is written, copying stored blocks, deriving IDs, and putting integers into on-disk structures.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::{RawDisk, VdiskError, VmFormat, SECTOR_SIZE};

/// The unit of the zero scan: the smallest block any format here stores (qcow2 clusters and vmdk grains). Every
/// format's block size is a power-of-two multiple of it.
pub(crate) const GRANULE: u64 = 64 << 10;
/// log2 of [`GRANULE`].
pub(crate) const GRANULE_BITS: u32 = 16;
/// How much is copied from the raw disk at a time.
const READ_CHUNK: usize = 1 << 20;
/// How much of a granule the zero scan reads before it reads the rest.
const PROBE: u64 = 4 << 10;

/// The raw disk with its extents sorted, merged and clipped to its size.
pub(crate) struct Source<'a> {
    raw: &'a dyn RawDisk,
    pub(crate) size: u64,
    extents: Vec<(u64, u64)>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(raw: &'a dyn RawDisk) -> Result<Self, VdiskError> {
        let size = raw.size();
        if size == 0 || size % SECTOR_SIZE != 0 {
            return Err(VdiskError::BadSize(size));
        }
        let mut ranges: Vec<(u64, u64)> = raw
            .data_extents()
            .into_iter()
            .filter_map(|(offset, len)| {
                let end = offset.saturating_add(len).min(size);
                (offset < end).then_some((offset, end))
            })
            .collect();
        ranges.sort_unstable();
        let mut extents: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match extents.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => extents.push((start, end)),
            }
        }
        Ok(Source { raw, size, extents })
    }

    /// Indices of the granules that hold a non-zero byte, ascending.
    ///
    /// Each granule's first [`PROBE`] bytes are read first and the rest only when those are all zero: real data
    /// rarely starts with 4 KiB of zeros, so a full disk costs a sixteenth of a read here, and the one full read
    /// happens when the blocks are copied.
    pub(crate) fn nonzero_granules(&self) -> Result<Vec<u64>, VdiskError> {
        let mut found: Vec<u64> = Vec::new();
        let mut buf = vec![0u8; to_usize(GRANULE)];
        for &(start, end) in &self.extents {
            let mut at = start;
            while at < end {
                let granule = at >> GRANULE_BITS;
                let next = end.min((granule + 1) << GRANULE_BITS);
                // A granule split between two extents may already be known to hold data.
                if found.last() != Some(&granule) && !self.is_zero_at(&mut buf, at, next)? {
                    found.push(granule);
                }
                at = next;
            }
        }
        Ok(found)
    }

    /// Whether the raw bytes in `start..end` (within one granule and one extent) are all zero.
    fn is_zero_at(&self, buf: &mut [u8], start: u64, end: u64) -> Result<bool, VdiskError> {
        let probe_end = end.min(start + PROBE);
        for (from, to) in [(start, probe_end), (probe_end, end)] {
            if from < to {
                let buf = &mut buf[..to_usize(to - from)];
                self.read_raw(buf, from)?;
                if !is_zero(buf) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Fills `buf` with the disk's bytes at `offset`: holes and anything past the end read as zero.
    pub(crate) fn read(&self, buf: &mut [u8], offset: u64) -> Result<(), VdiskError> {
        let end = offset.saturating_add(buf.len() as u64);
        let first = self.extents.partition_point(|&(_, e)| e <= offset);
        let mut filled = offset;
        for &(start, stop) in self.extents[first..].iter().take_while(|&&(s, _)| s < end) {
            let start = start.max(offset);
            let stop = stop.min(end);
            buf[to_usize(filled - offset)..to_usize(start - offset)].fill(0);
            self.read_raw(&mut buf[to_usize(start - offset)..to_usize(stop - offset)], start)?;
            filled = stop;
        }
        buf[to_usize(filled - offset)..].fill(0);
        Ok(())
    }

    fn read_raw(&self, buf: &mut [u8], offset: u64) -> Result<(), VdiskError> {
        self.raw.read_at(buf, offset).map_err(|source| VdiskError::Read { offset, source })
    }
}

/// Whether every byte is zero. ORs whole chunks rather than stopping at the first non-zero byte, which lets the
/// compiler vectorise it.
fn is_zero(bytes: &[u8]) -> bool {
    bytes.chunks(4096).all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The blocks of `1 << (GRANULE_BITS + shift)` bytes that hold a non-zero granule, ascending.
pub(crate) fn blocks_of(granules: &[u64], shift: u32) -> Vec<u64> {
    let mut blocks: Vec<u64> = granules.iter().map(|g| g >> shift).collect();
    blocks.dedup();
    blocks
}

/// `n` rounded up to a multiple of `m`.
pub(crate) fn round_up(n: u64, m: u64) -> u64 {
    n.div_ceil(m) * m
}

/// An index or length already bounded by an in-memory buffer or table (so it fits on any platform we run on).
pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The output, with the count of bytes written so far.
pub(crate) struct Sink<'a> {
    out: &'a mut dyn Write,
    pos: u64,
    format: VmFormat,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(out: &'a mut dyn Write, format: VmFormat) -> Self {
        Sink { out, pos: 0, format }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), VdiskError> {
        self.out.write_all(bytes).map_err(|source| VdiskError::Write { format: self.format, source })?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes zeros up to `offset`. The layouts are computed before writing, so going backwards is a bug in this
    /// crate; it is reported as a write error rather than a panic.
    pub(crate) fn pad_to(&mut self, offset: u64) -> Result<(), VdiskError> {
        if offset < self.pos {
            return Err(self.layout_bug(offset));
        }
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        while self.pos < offset {
            let n = (offset - self.pos).min(ZEROS.len() as u64);
            self.put(&ZEROS[..to_usize(n)])?;
        }
        Ok(())
    }

    /// Checks that the image ended where its layout said.
    pub(crate) fn expect_pos(&self, offset: u64) -> Result<(), VdiskError> {
        if self.pos == offset {
            Ok(())
        } else {
            Err(self.layout_bug(offset))
        }
    }

    fn layout_bug(&self, offset: u64) -> VdiskError {
        let msg = format!("internal layout error: at offset {} but expected {offset}", self.pos);
        VdiskError::Write { format: self.format, source: io::Error::other(msg) }
    }

    pub(crate) fn finish(self) -> Result<u64, VdiskError> {
        self.out.flush().map_err(|source| VdiskError::Write { format: self.format, source })?;
        Ok(self.pos)
    }
}

/// Streams a table of `count` entries of `N` bytes, `entry(i)` giving each in turn, in writes of 64 KiB, so a
/// table never has to fit in memory whole.
pub(crate) fn put_table<const N: usize>(
    sink: &mut Sink<'_>,
    count: u64,
    mut entry: impl FnMut(u64) -> Result<[u8; N], VdiskError>,
) -> Result<(), VdiskError> {
    let mut buf = Vec::with_capacity(64 << 10);
    for i in 0..count {
        buf.extend_from_slice(&entry(i)?);
        if buf.len() + N > buf.capacity() {
            sink.put(&buf)?;
            buf.clear();
        }
    }
    sink.put(&buf)
}

/// Yields, for block indices asked in ascending order, the rank of each stored block (its place in the data
/// area), or `None` for a block that is not stored.
pub(crate) struct Ranks<'a> {
    stored: &'a [u64],
    next: usize,
}

impl<'a> Ranks<'a> {
    pub(crate) fn new(stored: &'a [u64]) -> Self {
        Ranks { stored, next: 0 }
    }

    pub(crate) fn of(&mut self, block: u64) -> Option<u64> {
        while self.stored.get(self.next).is_some_and(|&b| b < block) {
            self.next += 1;
        }
        (self.stored.get(self.next) == Some(&block)).then_some(self.next as u64)
    }
}

/// Copies the listed blocks of `block_size` bytes from the raw disk, in order, each preceded by `prefix` (VHD's
/// sector bitmap). Without a prefix, runs of adjacent blocks are read and written together.
pub(crate) fn copy_blocks(
    src: &Source<'_>,
    sink: &mut Sink<'_>,
    blocks: &[u64],
    block_size: u64,
    prefix: &[u8],
) -> Result<(), VdiskError> {
    if blocks.is_empty() {
        return Ok(());
    }
    let per_batch = if prefix.is_empty() { (READ_CHUNK as u64 / block_size).max(1) } else { 1 };
    let mut buf = vec![0u8; to_usize(block_size * per_batch.min(blocks.len() as u64))];
    let mut i = 0;
    while i < blocks.len() {
        let first = blocks[i];
        let mut n = 1;
        while n < per_batch && blocks.get(i + to_usize(n)) == Some(&(first + n)) {
            n += 1;
        }
        let buf = &mut buf[..to_usize(n * block_size)];
        src.read(buf, first * block_size)?;
        sink.put(prefix)?;
        sink.put(buf)?;
        i += to_usize(n);
    }
    Ok(())
}

/// A 16-byte identifier derived from the seed: `sha256(seed || label)` cut to 16 bytes, marked as an RFC 4122
/// version 4 (random) UUID, as the bytes are as good as random to anyone without the seed.
pub(crate) fn derive_id(seed: &[u8; 16], label: &str) -> [u8; 16] {
    let digest = Sha256::new().chain_update(seed).chain_update(label.as_bytes()).finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// Big- and little-endian stores into a structure being built; offsets are the format's constant field offsets.
pub(crate) trait Put {
    fn be16(&mut self, at: usize, v: u16);
    fn be32(&mut self, at: usize, v: u32);
    fn be64(&mut self, at: usize, v: u64);
    fn le16(&mut self, at: usize, v: u16);
    fn le32(&mut self, at: usize, v: u32);
    fn le64(&mut self, at: usize, v: u64);
    fn bytes(&mut self, at: usize, v: &[u8]);
}

impl Put for [u8] {
    fn be16(&mut self, at: usize, v: u16) {
        self.bytes(at, &v.to_be_bytes());
    }
    fn be32(&mut self, at: usize, v: u32) {
        self.bytes(at, &v.to_be_bytes());
    }
    fn be64(&mut self, at: usize, v: u64) {
        self.bytes(at, &v.to_be_bytes());
    }
    fn le16(&mut self, at: usize, v: u16) {
        self.bytes(at, &v.to_le_bytes());
    }
    fn le32(&mut self, at: usize, v: u32) {
        self.bytes(at, &v.to_le_bytes());
    }
    fn le64(&mut self, at: usize, v: u64) {
        self.bytes(at, &v.to_le_bytes());
    }
    fn bytes(&mut self, at: usize, v: &[u8]) {
        self[at..at + v.len()].copy_from_slice(v);
    }
}

/// Reads for [`crate::identify`]: `None` when the field lies past the end of what was given.
pub(crate) fn get<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

pub(crate) fn get_be64(bytes: &[u8], at: usize) -> Option<u64> {
    get(bytes, at).map(u64::from_be_bytes)
}

pub(crate) fn get_le16(bytes: &[u8], at: usize) -> Option<u16> {
    get(bytes, at).map(u16::from_le_bytes)
}

pub(crate) fn get_le32(bytes: &[u8], at: usize) -> Option<u32> {
    get(bytes, at).map(u32::from_le_bytes)
}

pub(crate) fn get_le64(bytes: &[u8], at: usize) -> Option<u64> {
    get(bytes, at).map(u64::from_le_bytes)
}

pub(crate) fn get_be32(bytes: &[u8], at: usize) -> Option<u32> {
    get(bytes, at).map(u32::from_be_bytes)
}
