//! VMDK monolithic sparse (one hosted sparse extent with its descriptor embedded), as specified by VMware's
//! "Virtual Disk Format 1.1" and read by qemu's `block/vmdk.c`.
//!
//! Layout (in 512-byte sectors): the sparse extent header, the embedded descriptor, the grain directory, every
//! grain table (preallocated, as VMware's own tools do), padding to a grain boundary, then the stored 64 KiB
//! grains in disk order. Grain table entries of zero mean "unallocated", which reads as zero without a parent.
//! All fields are little-endian.

use crate::source::{blocks_of, copy_blocks, derive_id, get, get_le64, round_up, to_usize, Put, Sink, Source};
use crate::source::{GRANULE, GRANULE_BITS};
use crate::{VdiskError, VdiskOptions, VmFormat, SECTOR_SIZE};

/// "KDMV" on disk (spec 1.1, SparseExtentHeader.magicNumber = 0x564d444b).
pub(crate) const MAGIC: [u8; 4] = *b"KDMV";
/// Version 1: no compression or markers (those are streamOptimized's version 3).
const VERSION: u32 = 1;
/// flags bit 0: the newline-detection characters below are valid, so a text-mode transfer is detectable.
const FLAG_VALID_NEWLINE_TEST: u32 = 1;
/// 128 sectors = 64 KiB grains, the default of VMware and qemu.
const GRAIN_SECTORS: u64 = 128;
const GRAIN_SIZE: u64 = GRAIN_SECTORS * SECTOR_SIZE;
/// numGTEsPerGT: the spec fixes 512 entries (4 bytes each) per grain table.
const GTES_PER_GT_U32: u32 = 512;
const GTES_PER_GT: u64 = GTES_PER_GT_U32 as u64;
const GT_LEN: usize = GTES_PER_GT_U32 as usize * 4;
const GT_BYTES: u64 = GT_LEN as u64;
/// The header occupies sector 0.
const HEADER_LEN: usize = 512;
/// The descriptor starts at sector 1 and gets 20 sectors, as in qemu's and VMware's images.
const DESCRIPTOR_OFFSET: u64 = 1;
const DESCRIPTOR_SECTORS: u64 = 20;
/// The grain directory follows the descriptor.
const GD_OFFSET: u64 = DESCRIPTOR_OFFSET + DESCRIPTOR_SECTORS;
/// The IDE geometry the descriptor advertises (qemu's and VMware's defaults for `ddb.adapterType = "ide"`).
const HEADS: u64 = 16;
const SECTORS_PER_TRACK: u64 = 63;
const MAX_CYLINDERS: u64 = 16383;

// SparseExtentHeader field offsets (spec 1.1, "Hosted Sparse Extent Header"); the structure is packed.
const H_VERSION: usize = 4;
const H_FLAGS: usize = 8;
const H_CAPACITY: usize = 12;
const H_GRAIN_SIZE: usize = 20;
const H_DESCRIPTOR_OFFSET: usize = 28;
const H_DESCRIPTOR_SIZE: usize = 36;
const H_NUM_GTES_PER_GT: usize = 44;
const H_GD_OFFSET: usize = 56;
const H_OVERHEAD: usize = 64;
const H_NEWLINE_CHARS: usize = 73;

const _: () = assert!(GRAIN_SIZE == GRANULE);

pub(crate) fn write(
    src: &Source<'_>,
    granules: &[u64],
    opts: &VdiskOptions,
    sink: &mut Sink<'_>,
) -> Result<(), VdiskError> {
    let too_large = || VdiskError::TooLarge { format: VmFormat::Vmdk, size: src.size };
    let grains = blocks_of(granules, GRAIN_SIZE.trailing_zeros() - GRANULE_BITS);
    let capacity = src.size / SECTOR_SIZE;
    let gts = capacity.div_ceil(GRAIN_SECTORS * GTES_PER_GT);
    let gd_sectors = (gts * 4).div_ceil(SECTOR_SIZE);
    let gt_offset = GD_OFFSET + gd_sectors;
    let overhead = round_up(gt_offset + gts * GT_BYTES / SECTOR_SIZE, GRAIN_SECTORS);
    let end_sector = overhead + grains.len() as u64 * GRAIN_SECTORS;
    // Directory and table entries are 32-bit sector numbers.
    if end_sector > u64::from(u32::MAX) {
        return Err(too_large());
    }

    let mut header = [0u8; HEADER_LEN];
    header.bytes(0, &MAGIC);
    header.le32(H_VERSION, VERSION);
    header.le32(H_FLAGS, FLAG_VALID_NEWLINE_TEST);
    header.le64(H_CAPACITY, capacity);
    header.le64(H_GRAIN_SIZE, GRAIN_SECTORS);
    header.le64(H_DESCRIPTOR_OFFSET, DESCRIPTOR_OFFSET);
    header.le64(H_DESCRIPTOR_SIZE, DESCRIPTOR_SECTORS);
    header.le32(H_NUM_GTES_PER_GT, GTES_PER_GT_U32);
    header.le64(H_GD_OFFSET, GD_OFFSET);
    header.le64(H_OVERHEAD, overhead);
    header.bytes(H_NEWLINE_CHARS, b"\n \r\n");
    sink.put(&header)?;

    let descriptor = descriptor(capacity, opts);
    if descriptor.len() as u64 > DESCRIPTOR_SECTORS * SECTOR_SIZE {
        return Err(too_large());
    }
    sink.put(descriptor.as_bytes())?;

    sink.pad_to(GD_OFFSET * SECTOR_SIZE)?;
    let mut gd = vec![0u8; to_usize(gd_sectors * SECTOR_SIZE)];
    for (i, entry) in gd.chunks_exact_mut(4).take(to_usize(gts)).enumerate() {
        let sector = gt_offset + i as u64 * GT_BYTES / SECTOR_SIZE;
        entry.copy_from_slice(&u32::try_from(sector).map_err(|_| too_large())?.to_le_bytes());
    }
    sink.put(&gd)?;

    // The grain tables, written one at a time so a large sparse disk needs no table-sized buffer.
    let mut table = [0u8; GT_LEN];
    let mut rank = 0usize;
    for gt in 0..gts {
        table.fill(0);
        for &grain in grains[rank..].iter().take_while(|&&g| g / GTES_PER_GT == gt) {
            let sector = overhead + rank as u64 * GRAIN_SECTORS;
            let sector = u32::try_from(sector).map_err(|_| too_large())?;
            table.le32(to_usize(grain % GTES_PER_GT) * 4, sector);
            rank += 1;
        }
        sink.put(&table)?;
    }
    sink.pad_to(overhead * SECTOR_SIZE)?;
    copy_blocks(src, sink, &grains, GRAIN_SIZE, &[])?;
    sink.expect_pos(end_sector * SECTOR_SIZE)
}

/// The embedded descriptor (spec 1.1, "The Descriptor File"). The extent names the file itself; for a
/// monolithic image readers use the file they opened, so the name does not have to match it.
fn descriptor(capacity: u64, opts: &VdiskOptions) -> String {
    let id = derive_id(&opts.seed, "vmdk content id");
    // The content ID is any 32-bit value but "ffffffff", which means "no parent" in parentCID.
    let cid = u32::from_le_bytes([id[0], id[1], id[2], id[3]]).min(0xffff_fffe);
    let cylinders = (capacity / (HEADS * SECTORS_PER_TRACK)).min(MAX_CYLINDERS);
    format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"monolithicSparse\"\n\
         \n\
         # Extent description\n\
         RW {capacity} SPARSE \"disk.vmdk\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"{HEADS}\"\n\
         ddb.geometry.sectors = \"{SECTORS_PER_TRACK}\"\n\
         ddb.adapterType = \"ide\"\n"
    )
}

/// The virtual size, if `head` starts with a sparse extent header.
pub(crate) fn identify(head: &[u8]) -> Option<u64> {
    if get::<4>(head, 0)? != MAGIC {
        return None;
    }
    get_le64(head, H_CAPACITY)?.checked_mul(SECTOR_SIZE)
}
