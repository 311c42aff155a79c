//! VHD, a dynamic disk, as specified by Microsoft's "Virtual Hard Disk Image Format Specification" (2006) and
//! read by qemu's `block/vpc.c`.
//!
//! Layout: a copy of the footer, the dynamic disk header, the block allocation table (one big-endian u32 sector
//! number per 2 MiB block, `0xffffffff` when absent), the stored blocks in disk order — each a 512-byte sector
//! bitmap (all ones: every sector present) then 2 MiB of data — and the footer. All fields are big-endian.
//!
//! The virtual size: the spec's CHS geometry usually rounds the size down, and Virtual PC and qemu's "vpc"
//! driver believe the geometry unless the footer's creator application says the writer treats "current size" as
//! authoritative (Hyper-V's `win `, XenServer's `tap\0`, disk2vhd's `d2v `, qemu's own `qem2`, ...). A disk whose
//! last sectors were cut would lose its GPT backup header, so the creator is `qem2`: the tag qemu writes with
//! `force_size=on`, meaning exactly "the size is current_size, the geometry is advisory". Hyper-V and VirtualBox
//! read current_size whatever the creator.

use crate::source::{blocks_of, copy_blocks, derive_id, get, get_be64, put_table, round_up, Put, Ranks, Sink};
use crate::source::{Source, GRANULE_BITS};
use crate::{VdiskError, VdiskOptions, VmFormat, SECTOR_SIZE};

/// The footer's cookie (spec, "Hard Disk Footer Format").
pub(crate) const COOKIE: [u8; 8] = *b"conectix";
/// The dynamic disk header's cookie.
const DYNAMIC_COOKIE: [u8; 8] = *b"cxsparse";
/// Features: bit 1 is reserved and must always be set.
const FEATURES: u32 = 0x0000_0002;
/// File format version 1.0.
const FORMAT_VERSION: u32 = 0x0001_0000;
/// Dynamic header version 1.0.
const HEADER_VERSION: u32 = 0x0001_0000;
/// See the module documentation for why this creator.
const CREATOR_APP: [u8; 4] = *b"qem2";
/// The version qemu pairs with its creator tags (5.3).
const CREATOR_VERSION: u32 = 0x0005_0003;
/// Creator host OS "Wi2k", the value Windows and qemu write.
const CREATOR_HOST_OS: [u8; 4] = *b"Wi2k";
/// Disk type 3: dynamic hard disk.
const DISK_TYPE_DYNAMIC: u32 = 3;
/// The footer's time stamp counts seconds from 2000-01-01 00:00:00 UTC, this many after the Unix epoch.
const VHD_EPOCH: u32 = 946_684_800;
/// 2 MiB blocks, the spec's default and what every VHD reader expects.
const BLOCK_SIZE: u64 = 2 << 20;
/// One bit per sector of a block: 4096 bits, exactly one sector.
const BITMAP_LEN: usize = 512;
/// A BAT entry for a block that is not stored.
const BAT_UNUSED: u32 = 0xffff_ffff;
const FOOTER_LEN: usize = 512;
const DYNAMIC_HEADER_LEN: usize = 1024;
/// The BAT follows the footer copy and the dynamic header.
const BAT_OFFSET: u64 = (FOOTER_LEN + DYNAMIC_HEADER_LEN) as u64;
/// The spec's largest VHD: 2040 GiB (BAT entries are 32-bit sector numbers).
const MAX_SIZE: u64 = 2040 << 30;

// Footer field offsets.
const F_FEATURES: usize = 8;
const F_FORMAT_VERSION: usize = 12;
const F_DATA_OFFSET: usize = 16;
const F_TIME_STAMP: usize = 24;
const F_CREATOR_APP: usize = 28;
const F_CREATOR_VERSION: usize = 32;
const F_CREATOR_HOST_OS: usize = 36;
const F_ORIGINAL_SIZE: usize = 40;
const F_CURRENT_SIZE: usize = 48;
const F_GEOMETRY: usize = 56;
const F_DISK_TYPE: usize = 60;
const F_CHECKSUM: usize = 64;
const F_UNIQUE_ID: usize = 68;

// Dynamic disk header field offsets.
const D_DATA_OFFSET: usize = 8;
const D_TABLE_OFFSET: usize = 16;
const D_HEADER_VERSION: usize = 24;
const D_MAX_TABLE_ENTRIES: usize = 28;
const D_BLOCK_SIZE: usize = 32;
const D_CHECKSUM: usize = 36;

pub(crate) fn write(
    src: &Source<'_>,
    granules: &[u64],
    opts: &VdiskOptions,
    sink: &mut Sink<'_>,
) -> Result<(), VdiskError> {
    let too_large = || VdiskError::TooLarge { format: VmFormat::Vhd, size: src.size };
    if src.size > MAX_SIZE {
        return Err(too_large());
    }
    let stored = blocks_of(granules, BLOCK_SIZE.trailing_zeros() - GRANULE_BITS);
    let entries = src.size.div_ceil(BLOCK_SIZE);
    let bat_len = round_up(entries * 4, SECTOR_SIZE);
    let data_at = BAT_OFFSET + bat_len;
    let stride = BITMAP_LEN as u64 + BLOCK_SIZE;
    let end = data_at + stored.len() as u64 * stride + FOOTER_LEN as u64;
    let u32_of = |n: u64| u32::try_from(n).map_err(|_| too_large());

    let footer = footer(src.size, opts);
    sink.put(&footer)?;

    let mut header = [0u8; DYNAMIC_HEADER_LEN];
    header.bytes(0, &DYNAMIC_COOKIE);
    // The spec says 0xFFFFFFFF but means all 64 bits: Microsoft's tools and qemu write it so.
    header.be64(D_DATA_OFFSET, u64::MAX);
    header.be64(D_TABLE_OFFSET, BAT_OFFSET);
    header.be32(D_HEADER_VERSION, HEADER_VERSION);
    header.be32(D_MAX_TABLE_ENTRIES, u32_of(entries)?);
    header.be32(D_BLOCK_SIZE, u32_of(BLOCK_SIZE)?);
    // No parent: the parent fields and locators stay zero.
    let sum = checksum(&header);
    header.be32(D_CHECKSUM, sum);
    sink.put(&header)?;

    let mut ranks = Ranks::new(&stored);
    // The table's padding to a whole sector is unused entries too, as Microsoft's tools and qemu write it.
    put_table(sink, bat_len / 4, |block| {
        let sector = ranks.of(block).map(|rank| (data_at + rank * stride) / SECTOR_SIZE);
        Ok(sector.map_or(Ok(BAT_UNUSED), u32_of)?.to_be_bytes())
    })?;
    sink.pad_to(data_at)?;
    copy_blocks(src, sink, &stored, BLOCK_SIZE, &[0xff; BITMAP_LEN])?;
    sink.put(&footer)?;
    sink.expect_pos(end)
}

/// The hard disk footer, written at both ends of the file.
fn footer(size: u64, opts: &VdiskOptions) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f.bytes(0, &COOKIE);
    f.be32(F_FEATURES, FEATURES);
    f.be32(F_FORMAT_VERSION, FORMAT_VERSION);
    f.be64(F_DATA_OFFSET, FOOTER_LEN as u64);
    f.be32(F_TIME_STAMP, opts.timestamp.saturating_sub(VHD_EPOCH));
    f.bytes(F_CREATOR_APP, &CREATOR_APP);
    f.be32(F_CREATOR_VERSION, CREATOR_VERSION);
    f.bytes(F_CREATOR_HOST_OS, &CREATOR_HOST_OS);
    f.be64(F_ORIGINAL_SIZE, size);
    f.be64(F_CURRENT_SIZE, size);
    let (cylinders, heads, sectors) = geometry(size / SECTOR_SIZE);
    f.be16(F_GEOMETRY, cylinders);
    f.bytes(F_GEOMETRY + 2, &[heads, sectors]);
    f.be32(F_DISK_TYPE, DISK_TYPE_DYNAMIC);
    f.bytes(F_UNIQUE_ID, &derive_id(&opts.seed, "vhd unique id"));
    // Saved state (byte 84) and the reserved bytes stay zero.
    let sum = checksum(&f);
    f.be32(F_CHECKSUM, sum);
    f
}

/// The spec's checksum: the one's complement of the byte sum, taken while the checksum field is zero.
fn checksum(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// The CHS geometry for `total_sectors`, by the algorithm in the spec's appendix ("CHS Calculation").
pub(crate) fn geometry(total_sectors: u64) -> (u16, u8, u8) {
    let total = total_sectors.min(65535 * 16 * 255);
    let (sectors_per_track, heads, cylinders_times_heads) = if total >= 65535 * 16 * 63 {
        (255, 16, total / 255)
    } else {
        let mut spt = 17;
        let mut cth = total / spt;
        let mut heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
        (spt, heads, cth)
    };
    let cylinders = cylinders_times_heads / heads;
    (
        u16::try_from(cylinders).unwrap_or(u16::MAX),
        u8::try_from(heads).unwrap_or(u8::MAX),
        u8::try_from(sectors_per_track).unwrap_or(u8::MAX),
    )
}

/// The current size, if the file ends with a VHD footer (or, for a dynamic disk cut short, starts with its copy).
pub(crate) fn identify(head: &[u8], tail: &[u8], file_len: u64) -> Option<u64> {
    let footer_at_end =
        tail.len().checked_sub(FOOTER_LEN).and_then(|at| tail.get(at..)).or_else(|| {
            (head.len() as u64 == file_len).then(|| head.get(head.len().checked_sub(FOOTER_LEN)?..)).flatten()
        });
    [footer_at_end, head.get(..FOOTER_LEN)]
        .into_iter()
        .flatten()
        .find(|f| get::<8>(f, 0) == Some(COOKIE))
        .and_then(|f| get_be64(f, F_CURRENT_SIZE))
}
