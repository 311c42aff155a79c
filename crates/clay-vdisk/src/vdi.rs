//! VirtualBox's VDI, a dynamic image with header version 1.1, as VirtualBox's `VDICore.h` defines it and qemu's
//! `block/vdi.c` reads it.
//!
//! Layout: the 512-byte header (a 72-byte pre-header, then `VDIHEADER1`), the block map (one little-endian u32
//! per 1 MiB block: its index in the data area, or `0xffffffff` for "not allocated", which reads as zero), then
//! from the next 1 MiB boundary the stored blocks in disk order.

use crate::source::{blocks_of, copy_blocks, derive_id, get, get_le32, get_le64, put_table, round_up, Put, Ranks};
use crate::source::{Sink, Source, GRANULE_BITS};
use crate::{VdiskError, VdiskOptions, VmFormat, SECTOR_SIZE};

/// The pre-header's text; VirtualBox checks only the signature, this text is what it writes itself.
const TEXT: &[u8] = b"<<< Oracle VM VirtualBox Disk Image >>>\n";
/// `VDI_IMAGE_SIGNATURE`.
pub(crate) const SIGNATURE: u32 = 0xbeda_107f;
/// Version 1.1 (`VDI_IMAGE_VERSION`): major in the high 16 bits.
const VERSION: u32 = 0x0001_0001;
/// `sizeof(VDIHEADER1)`, counted from the field itself; qemu writes and expects this size.
const HEADER1_SIZE: u32 = 0x180;
/// `VDI_IMAGE_TYPE_NORMAL`: a dynamically growing image.
const TYPE_DYNAMIC: u32 = 1;
/// 1 MiB blocks: VirtualBox's default and the only size qemu accepts.
const BLOCK_SIZE: u64 = 1 << 20;
/// The block-map entry of a block that is not stored (`VDI_IMAGE_BLOCK_FREE`).
const BLOCK_FREE: u32 = 0xffff_ffff;
/// qemu's limit (`VDI_BLOCKS_IN_IMAGE_MAX`): the block map, rounded to a sector, stays within `INT_MAX` bytes.
const MAX_BLOCKS: u64 = ((1 << 31) - 512) / 4;
/// The block map starts right after the header, at the second sector.
const BMAP_OFFSET: u64 = 512;
/// VirtualBox aligns the data area to 1 MiB (`VDI_DATA_ALIGN`).
const DATA_ALIGN: u64 = 1 << 20;

// Header field offsets (VDIPREHEADER, then VDIHEADER1).
const H_SIGNATURE: usize = 64;
const H_VERSION: usize = 68;
const H_HEADER_SIZE: usize = 72;
const H_TYPE: usize = 76;
const H_OFFSET_BMAP: usize = 340;
const H_OFFSET_DATA: usize = 344;
/// The legacy geometry's sector size: 512; cylinders/heads/sectors stay zero ("let the VM choose").
const H_GEOMETRY_SECTOR_SIZE: usize = 360;
const H_DISK_SIZE: usize = 368;
const H_BLOCK_SIZE: usize = 376;
const H_BLOCKS: usize = 384;
const H_BLOCKS_ALLOCATED: usize = 388;
const H_UUID_CREATE: usize = 392;
const H_UUID_MODIFY: usize = 408;
const HEADER_LEN: usize = 512;

pub(crate) fn write(
    src: &Source<'_>,
    granules: &[u64],
    opts: &VdiskOptions,
    sink: &mut Sink<'_>,
) -> Result<(), VdiskError> {
    let too_large = || VdiskError::TooLarge { format: VmFormat::Vdi, size: src.size };
    let stored = blocks_of(granules, BLOCK_SIZE.trailing_zeros() - GRANULE_BITS);
    let blocks = src.size.div_ceil(BLOCK_SIZE);
    if blocks > MAX_BLOCKS {
        return Err(too_large());
    }
    let bmap_len = round_up(blocks * 4, SECTOR_SIZE);
    let data_at = round_up(BMAP_OFFSET + bmap_len, DATA_ALIGN);
    let end = data_at + stored.len() as u64 * BLOCK_SIZE;
    let u32_of = |n: u64| u32::try_from(n).map_err(|_| too_large());

    let mut header = [0u8; HEADER_LEN];
    header.bytes(0, TEXT);
    header.le32(H_SIGNATURE, SIGNATURE);
    header.le32(H_VERSION, VERSION);
    header.le32(H_HEADER_SIZE, HEADER1_SIZE);
    header.le32(H_TYPE, TYPE_DYNAMIC);
    header.le32(H_OFFSET_BMAP, u32_of(BMAP_OFFSET)?);
    header.le32(H_OFFSET_DATA, u32_of(data_at)?);
    header.le32(H_GEOMETRY_SECTOR_SIZE, u32_of(SECTOR_SIZE)?);
    header.le64(H_DISK_SIZE, src.size);
    header.le32(H_BLOCK_SIZE, u32_of(BLOCK_SIZE)?);
    header.le32(H_BLOCKS, u32_of(blocks)?);
    header.le32(H_BLOCKS_ALLOCATED, u32_of(stored.len() as u64)?);
    header.bytes(H_UUID_CREATE, &derive_id(&opts.seed, "vdi image"));
    header.bytes(H_UUID_MODIFY, &derive_id(&opts.seed, "vdi modification"));
    // The linkage and parent UUIDs stay zero: no parent.
    sink.put(&header)?;

    let mut ranks = Ranks::new(&stored);
    put_table(sink, blocks, |block| Ok(ranks.of(block).map_or(Ok(BLOCK_FREE), u32_of)?.to_le_bytes()))?;
    sink.pad_to(data_at)?;
    copy_blocks(src, sink, &stored, BLOCK_SIZE, &[])?;
    sink.expect_pos(end)
}

/// The virtual size, if `head` starts with a version 1.x VDI header.
pub(crate) fn identify(head: &[u8]) -> Option<u64> {
    if get_le32(head, H_SIGNATURE)? != SIGNATURE || get::<2>(head, H_VERSION + 2)? != [1, 0] {
        return None;
    }
    get_le64(head, H_DISK_SIZE)
}
