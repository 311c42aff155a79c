//! VHDX, a dynamic disk, as specified by Microsoft's [MS-VHDX] (v20160714) and read by qemu's `block/vhdx.c`.
//!
//! Layout, every region 1 MiB-aligned: the header section (file type identifier, two headers, two region
//! tables), an empty 1 MiB log (LogGuid zero: nothing to replay; readers that open the disk writable log into
//! it), the metadata region, the BAT, then the stored payload blocks in disk order. All fields are little-endian;
//! GUIDs are stored in the mixed-endian Windows layout; headers and region tables carry CRC-32C checksums.
//!
//! Block size: 1 MiB, the smallest the spec allows, rather than Hyper-V's 32 MiB default. Partitions on our GPT
//! disks are 1 MiB-aligned and mostly small (an ESP, a root image), so 1 MiB blocks keep the image as sparse as
//! the raw disk; it is also the size Microsoft recommends for Linux guests on Hyper-V, whose file systems scatter
//! metadata in ways that make large blocks fill up. The BAT stays small (8 bytes per MiB).

use crate::source::{blocks_of, copy_blocks, derive_id, get, get_le16, get_le32, get_le64, put_table, round_up};
use crate::source::{to_usize, Put, Ranks, Sink, Source, GRANULE_BITS};
use crate::{VdiskError, VdiskOptions, VmFormat, SECTOR_SIZE};

const MIB: u64 = 1 << 20;
/// The file type identifier's signature (2.2.1).
pub(crate) const SIGNATURE: [u8; 8] = *b"vhdxfile";
/// The creator field of the file type identifier: free UTF-16 text, 256 characters at most.
const CREATOR: &str = "claylinux";
/// Section offsets (2.1): headers at 64 and 128 KiB, region tables at 192 and 256 KiB.
const HEADER_OFFSETS: [u64; 2] = [64 << 10, 128 << 10];
const REGION_TABLE_OFFSETS: [u64; 2] = [192 << 10, 256 << 10];
const HEADER_LEN: usize = 4 << 10;
const REGION_TABLE_LEN: usize = 64 << 10;
/// The header signature "head" (2.2.2).
const HEADER_SIGNATURE: [u8; 4] = *b"head";
/// Header.Version (2.2.2).
const VERSION: u16 = 1;
/// The region table signature "regi" (2.2.3).
const REGION_SIGNATURE: [u8; 4] = *b"regi";
/// The metadata table signature (2.6.1).
const METADATA_SIGNATURE: [u8; 8] = *b"metadata";
/// The log, metadata region and BAT, in that order after the 1 MiB header section.
const LOG_OFFSET: u64 = MIB;
const LOG_LEN: u64 = MIB;
const METADATA_OFFSET: u64 = LOG_OFFSET + LOG_LEN;
const METADATA_LEN: u64 = MIB;
const BAT_OFFSET: u64 = METADATA_OFFSET + METADATA_LEN;
/// Metadata items start after the 64 KiB metadata table (2.6.1.2: offsets are at least 64 KiB).
const METADATA_ITEMS: u64 = 64 << 10;
/// See the module documentation.
const BLOCK_SIZE_U32: u32 = 1 << 20;
const BLOCK_SIZE: u64 = BLOCK_SIZE_U32 as u64;
const LOGICAL_SECTOR_SIZE: u32 = 512;
/// Hyper-V's and qemu's default: tells guests to issue 4 KiB-aligned I/O.
const PHYSICAL_SECTOR_SIZE: u32 = 4096;
/// Payload blocks per sector bitmap block (2.5): 2^23 sectors' worth of payload.
const CHUNK_RATIO: u64 = (1 << 23) * LOGICAL_SECTOR_SIZE as u64 / BLOCK_SIZE;
/// BAT entry states (2.5.1.1): a stored block, and (value 0) one that is not.
const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
/// BAT entries keep the file offset in MiB in bits 20-63.
const BAT_OFFSET_SHIFT: u32 = 20;
/// The spec's largest virtual disk: 64 TiB.
const MAX_SIZE: u64 = 64 << 40;
/// Metadata entry flags (2.6.1.2): IsVirtualDisk, IsRequired.
const IS_VIRTUAL_DISK: u32 = 1 << 1;
const IS_REQUIRED: u32 = 1 << 2;
const REQUIRED: u32 = 1;

/// A GUID in the on-disk layout: Data1-3 little-endian, Data4 as bytes.
const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (d1.to_le_bytes(), d2.to_le_bytes(), d3.to_le_bytes());
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6], d4[7]]
}

// Region GUIDs (2.2.3.2).
const BAT_REGION: [u8; 16] = guid(0x2DC27766, 0xF623, 0x4200, [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08]);
const METADATA_REGION: [u8; 16] = guid(0x8B7CA206, 0x4790, 0x4B9A, [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E]);
// Metadata item GUIDs (2.6.2).
const FILE_PARAMETERS: [u8; 16] = guid(0xCAA16737, 0xFA36, 0x4D43, [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B]);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(0x2FA54224, 0xCD1B, 0x4876, [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8]);
const PAGE_83_DATA: [u8; 16] = guid(0xBECA12AB, 0xB2E6, 0x4523, [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46]);
const LOGICAL_SECTOR: [u8; 16] = guid(0x8141BF1D, 0xA96F, 0x4709, [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F]);
const PHYSICAL_SECTOR: [u8; 16] = guid(0xCDA348C7, 0x445D, 0x4471, [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56]);

// Header fields (2.2.2).
const H_CHECKSUM: usize = 4;
const H_SEQUENCE_NUMBER: usize = 8;
const H_FILE_WRITE_GUID: usize = 16;
const H_DATA_WRITE_GUID: usize = 32;
const H_VERSION: usize = 66;
const H_LOG_LENGTH: usize = 68;
const H_LOG_OFFSET: usize = 72;
// Region table fields (2.2.3): the header, then 32-byte entries.
const R_CHECKSUM: usize = 4;
const R_ENTRY_COUNT: usize = 8;
const R_ENTRIES: usize = 16;
const R_ENTRY_LEN: usize = 32;
// Metadata table fields (2.6.1): the header, then 32-byte entries.
const M_ENTRY_COUNT: usize = 10;
const M_ENTRIES: usize = 32;
const M_ENTRY_LEN: usize = 32;

pub(crate) fn write(
    src: &Source<'_>,
    granules: &[u64],
    opts: &VdiskOptions,
    sink: &mut Sink<'_>,
) -> Result<(), VdiskError> {
    let too_large = || VdiskError::TooLarge { format: VmFormat::Vhdx, size: src.size };
    if src.size > MAX_SIZE {
        return Err(too_large());
    }
    let stored = blocks_of(granules, BLOCK_SIZE.trailing_zeros() - GRANULE_BITS);
    let payload_blocks = src.size.div_ceil(BLOCK_SIZE);
    // Without a parent, the last chunk's sector bitmap entry is left out (2.5).
    let bat_entries = payload_blocks + (payload_blocks - 1) / CHUNK_RATIO;
    let bat_len = round_up(bat_entries * 8, MIB);
    let data_at = BAT_OFFSET + bat_len;
    let end = data_at + stored.len() as u64 * BLOCK_SIZE;
    let u32_of = |n: u64| u32::try_from(n).map_err(|_| too_large());

    // File type identifier (2.2.1).
    let mut identifier = [0u8; 8 + 512];
    identifier.bytes(0, &SIGNATURE);
    for (i, unit) in CREATOR.encode_utf16().enumerate() {
        identifier.le16(8 + 2 * i, unit);
    }
    sink.put(&identifier)?;

    let file_write = derive_id(&opts.seed, "vhdx file write guid");
    let data_write = derive_id(&opts.seed, "vhdx data write guid");
    for (sequence, &offset) in (1u64..).zip(&HEADER_OFFSETS) {
        let mut header = [0u8; HEADER_LEN];
        header.bytes(0, &HEADER_SIGNATURE);
        header.le64(H_SEQUENCE_NUMBER, sequence);
        header.bytes(H_FILE_WRITE_GUID, &file_write);
        header.bytes(H_DATA_WRITE_GUID, &data_write);
        // LogGuid zero: the log holds nothing to replay. LogVersion stays 0.
        header.le16(H_VERSION, VERSION);
        header.le32(H_LOG_LENGTH, u32_of(LOG_LEN)?);
        header.le64(H_LOG_OFFSET, LOG_OFFSET);
        let sum = crc32c::crc32c(&header);
        header.le32(H_CHECKSUM, sum);
        sink.pad_to(offset)?;
        sink.put(&header)?;
    }

    let mut regions = vec![0u8; REGION_TABLE_LEN];
    regions.bytes(0, &REGION_SIGNATURE);
    regions.le32(R_ENTRY_COUNT, 2);
    for (i, (guid, offset, len)) in
        [(BAT_REGION, BAT_OFFSET, bat_len), (METADATA_REGION, METADATA_OFFSET, METADATA_LEN)].into_iter().enumerate()
    {
        let at = R_ENTRIES + i * R_ENTRY_LEN;
        regions.bytes(at, &guid);
        regions.le64(at + 16, offset);
        regions.le32(at + 24, u32_of(len)?);
        regions.le32(at + 28, REQUIRED);
    }
    let sum = crc32c::crc32c(&regions);
    regions.le32(R_CHECKSUM, sum);
    for offset in REGION_TABLE_OFFSETS {
        sink.pad_to(offset)?;
        sink.put(&regions)?;
    }

    sink.pad_to(METADATA_OFFSET)?;
    sink.put(&metadata(src.size, opts))?;

    sink.pad_to(BAT_OFFSET)?;
    // Payload entries, with a (not present) sector bitmap entry after every CHUNK_RATIO of them (2.5).
    let mut ranks = Ranks::new(&stored);
    put_table(sink, bat_entries, |index| {
        let entry = if (index + 1) % (CHUNK_RATIO + 1) == 0 {
            0
        } else {
            let block = index - index / (CHUNK_RATIO + 1);
            ranks.of(block).map_or(0, |rank| {
                ((data_at + rank * BLOCK_SIZE) / MIB) << BAT_OFFSET_SHIFT | PAYLOAD_BLOCK_FULLY_PRESENT
            })
        };
        Ok(entry.to_le_bytes())
    })?;
    sink.pad_to(data_at)?;
    copy_blocks(src, sink, &stored, BLOCK_SIZE, &[])?;
    sink.expect_pos(end)
}

/// The metadata table and its five items (2.6.2), padded to the items' end.
fn metadata(size: u64, opts: &VdiskOptions) -> Vec<u8> {
    let page83 = derive_id(&opts.seed, "vhdx page 83 data");
    let items: [([u8; 16], u32, Vec<u8>); 5] = [
        // File Parameters: BlockSize, then flags (LeaveBlocksAllocated = 0, HasParent = 0).
        (FILE_PARAMETERS, IS_REQUIRED, [BLOCK_SIZE_U32.to_le_bytes(), [0; 4]].concat()),
        (VIRTUAL_DISK_SIZE, IS_VIRTUAL_DISK | IS_REQUIRED, size.to_le_bytes().to_vec()),
        (PAGE_83_DATA, IS_VIRTUAL_DISK | IS_REQUIRED, page83.to_vec()),
        (LOGICAL_SECTOR, IS_VIRTUAL_DISK | IS_REQUIRED, LOGICAL_SECTOR_SIZE.to_le_bytes().to_vec()),
        (PHYSICAL_SECTOR, IS_VIRTUAL_DISK | IS_REQUIRED, PHYSICAL_SECTOR_SIZE.to_le_bytes().to_vec()),
    ];
    let total: usize = items.iter().map(|(_, _, data)| data.len()).sum();
    let mut region = vec![0u8; to_usize(METADATA_ITEMS) + total];
    region.bytes(0, &METADATA_SIGNATURE);
    region.le16(M_ENTRY_COUNT, 5);
    let mut offset = to_usize(METADATA_ITEMS);
    for (i, (id, flags, data)) in items.iter().enumerate() {
        let at = M_ENTRIES + i * M_ENTRY_LEN;
        region.bytes(at, id);
        // Offsets and lengths are small constants (under 64 KiB + 40 bytes).
        region.le32(at + 16, u32::try_from(offset).unwrap_or(u32::MAX));
        region.le32(at + 20, u32::try_from(data.len()).unwrap_or(u32::MAX));
        region.le32(at + 24, *flags);
        region.bytes(offset, data);
        offset += data.len();
    }
    region
}

/// The virtual size, if `head` starts with a VHDX file and holds its region table and metadata.
pub(crate) fn identify(head: &[u8]) -> Option<u64> {
    if get::<8>(head, 0)? != SIGNATURE {
        return None;
    }
    let table = head.get(to_usize(REGION_TABLE_OFFSETS[0])..)?;
    if get::<4>(table, 0)? != REGION_SIGNATURE {
        return None;
    }
    let count = to_usize(u64::from(get_le32(table, R_ENTRY_COUNT)?)).min(REGION_TABLE_LEN / R_ENTRY_LEN);
    let metadata_at = (0..count).find_map(|i| {
        let at = R_ENTRIES + i * R_ENTRY_LEN;
        (get::<16>(table, at)? == METADATA_REGION).then(|| get_le64(table, at + 16)).flatten()
    })?;
    let metadata = head.get(usize::try_from(metadata_at).ok()?..)?;
    if get::<8>(metadata, 0)? != METADATA_SIGNATURE {
        return None;
    }
    let count = usize::from(get_le16(metadata, M_ENTRY_COUNT)?);
    let item_at = (0..count).find_map(|i| {
        let at = M_ENTRIES + i * M_ENTRY_LEN;
        (get::<16>(metadata, at)? == VIRTUAL_DISK_SIZE).then(|| get_le32(metadata, at + 16)).flatten()
    })?;
    let size = get_le64(metadata, usize::try_from(item_at).ok()?)?;
    // A corrupt size is not a VHDX we can describe.
    (size % SECTOR_SIZE == 0).then_some(size)
}
