//! The bytes of a volume's metadata: the reserved area (FAT spec §3, §5), the FATs (§4) and the directories (§6,
//! §7), each computed from a planned allocation.

use std::io::{self, Write};

use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

use crate::geometry::Geometry;
use crate::names::{is_short_char, short_name_checksum};
use crate::ondisk::{
    BootSector, DirEntry, FsInfo, LfnEntry, ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_VOLUME_ID,
    BACKUP_BOOT_SECTOR, BOOT_SIGNATURE, BYTES_PER_SECTOR, DRIVE_NUMBER, EXTENDED_BOOT_SIGNATURE, FAT0, FAT1, FAT_EOC,
    FSINFO_LEAD_SIG, FSINFO_SECTOR, FSINFO_STRUC_SIG, FSINFO_TRAIL_SIG, FSINFO_UNKNOWN, FS_TYPE, HALT_CODE, JMP_BOOT,
    LAST_LONG_ENTRY, LFN_UNITS_PER_ENTRY, MEDIA_FIXED, NUM_FATS, NUM_HEADS, OEM_NAME, ROOT_CLUSTER, SECTORS_PER_TRACK,
    SECTOR_LEN,
};
use crate::time::FatTime;
use crate::tree::{Allocation, Node, Run, Tree};
use crate::{BootCode, FatError};

/// FAT entries generated and written at a time.
const FAT_CHUNK_ENTRIES: u64 = 16 * 1024;
const FAT_CHUNK_BYTES: usize = 64 * 1024;
const _: () = assert!(FAT_CHUNK_BYTES as u64 == FAT_CHUNK_ENTRIES * 4);

/// Validates the label and pads it to 11 bytes; `None` for an empty label.
pub fn volume_label(label: &str) -> Result<Option<[u8; 11]>, FatError> {
    if label.is_empty() {
        return Ok(None);
    }
    let invalid = || FatError::InvalidLabel { label: label.to_owned() };
    if label.len() > 11 || label.starts_with(' ') || !label.bytes().all(|b| b == b' ' || is_short_char(b)) {
        return Err(invalid());
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(Some(out))
}

/// The reserved area: boot sector and FSInfo at sectors 0 and 1, their backups at 6 and 7 (FAT spec §3.3, §5).
/// `boot_code` replaces the jump, OEM name and code of the boot sector and sets its hidden sectors.
pub fn reserved_area(
    g: &Geometry,
    alloc: &Allocation,
    volume_id: u32,
    label: [u8; 11],
    boot_code: Option<&BootCode>,
) -> Vec<u8> {
    let narrow16 = |v: u32| U16::new(u16::try_from(v).unwrap_or(u16::MAX));
    let mut boot = BootSector {
        jmp_boot: JMP_BOOT,
        oem_name: OEM_NAME,
        bytes_per_sector: U16::new(BYTES_PER_SECTOR),
        sectors_per_cluster: u8::try_from(g.sectors_per_cluster).unwrap_or(0),
        reserved_sectors: narrow16(g.reserved_sectors),
        num_fats: NUM_FATS,
        root_entry_count: U16::ZERO,
        total_sectors_16: U16::ZERO,
        media: MEDIA_FIXED,
        fat_size_16: U16::ZERO,
        sectors_per_track: U16::new(SECTORS_PER_TRACK),
        num_heads: U16::new(NUM_HEADS),
        hidden_sectors: U32::ZERO,
        total_sectors_32: U32::new(g.total_sectors),
        fat_size_32: U32::new(g.fat_sectors),
        ext_flags: U16::ZERO,
        fs_version: U16::ZERO,
        root_cluster: U32::new(ROOT_CLUSTER),
        fs_info: U16::new(FSINFO_SECTOR),
        backup_boot_sector: U16::new(BACKUP_BOOT_SECTOR),
        reserved: [0; 12],
        drive_number: DRIVE_NUMBER,
        reserved1: 0,
        boot_signature: EXTENDED_BOOT_SIGNATURE,
        volume_id: U32::new(volume_id),
        volume_label: label,
        fs_type: FS_TYPE,
        boot_code: [0; 420],
        signature: U16::new(BOOT_SIGNATURE),
    };
    boot.boot_code[..HALT_CODE.len()].copy_from_slice(&HALT_CODE);
    if let Some(code) = boot_code {
        boot.jmp_boot.copy_from_slice(&code.sector[..3]);
        boot.oem_name.copy_from_slice(&code.sector[3..11]);
        boot.boot_code.copy_from_slice(&code.sector[90..510]);
        boot.hidden_sectors = U32::new(code.hidden_sectors);
    }
    let used = u32::try_from(alloc.used).unwrap_or(g.clusters);
    let free = g.clusters.saturating_sub(used);
    let info = FsInfo {
        lead_sig: U32::new(FSINFO_LEAD_SIG),
        reserved1: [0; 480],
        struc_sig: U32::new(FSINFO_STRUC_SIG),
        free_count: U32::new(free),
        next_free: U32::new(if free == 0 { FSINFO_UNKNOWN } else { ROOT_CLUSTER + used }),
        reserved2: [0; 12],
        trail_sig: U32::new(FSINFO_TRAIL_SIG),
    };
    let mut area = vec![0u8; g.reserved_sectors as usize * SECTOR_LEN];
    for first in [0, usize::from(BACKUP_BOOT_SECTOR)] {
        area[first * SECTOR_LEN..][..SECTOR_LEN].copy_from_slice(boot.as_bytes());
        area[(first + 1) * SECTOR_LEN..][..SECTOR_LEN].copy_from_slice(info.as_bytes());
    }
    area
}

/// Writes one FAT: the two reserved entries, a chain per run (each cluster pointing at the next, the last at
/// end-of-chain), zeros for the free clusters and the rest of the FAT's sectors (FAT spec §4).
pub fn write_fat_table(dev: &mut impl Write, g: &Geometry, alloc: &Allocation) -> io::Result<()> {
    let mut runs: Vec<Run> = alloc.dirs.iter().chain(&alloc.files).copied().filter(|r| r.count > 0).collect();
    runs.sort_by_key(|r| r.first);
    let mut runs = runs.into_iter().peekable();
    let total_entries = g.fat_bytes() / 4;
    let mut chunk = Vec::with_capacity(FAT_CHUNK_BYTES);
    let mut entry = 0u64;
    while entry < total_entries {
        chunk.clear();
        let end = (entry + FAT_CHUNK_ENTRIES).min(total_entries);
        for e in entry..end {
            while runs.peek().is_some_and(|r| u64::from(r.first) + u64::from(r.count) <= e) {
                runs.next();
            }
            let value = match (e, runs.peek()) {
                (0, _) => FAT0,
                (1, _) => FAT1,
                (e, Some(r)) if e >= u64::from(r.first) => {
                    if e + 1 == u64::from(r.first) + u64::from(r.count) {
                        FAT_EOC
                    } else {
                        u32::try_from(e + 1).unwrap_or(FAT_EOC)
                    }
                }
                _ => 0,
            };
            chunk.extend_from_slice(&value.to_le_bytes());
        }
        dev.write_all(&chunk)?;
        entry = end;
    }
    Ok(())
}

/// The bytes of directory `index`, padded with zeros (free entries) to its clusters.
pub fn directory(
    tree: &Tree,
    index: usize,
    alloc: &Allocation,
    label: Option<[u8; 11]>,
    time: FatTime,
    cluster_bytes: u64,
) -> Vec<u8> {
    let dir = &tree.dirs[index];
    let run = alloc.dirs[index];
    let mut out = Vec::new();
    let entry = |name: [u8; 11], attr: u8, cluster: u32, size: u32| DirEntry {
        name,
        attr,
        nt_res: 0,
        crt_time_tenth: time.tenths,
        crt_time: U16::new(time.time),
        crt_date: U16::new(time.date),
        lst_acc_date: U16::new(time.date),
        fst_clus_hi: U16::new(u16::try_from(cluster >> 16).unwrap_or(0)),
        wrt_time: U16::new(time.time),
        wrt_date: U16::new(time.date),
        fst_clus_lo: U16::new(u16::try_from(cluster & 0xFFFF).unwrap_or(0)),
        file_size: U32::new(size),
    };
    if index == 0 {
        if let Some(label) = label {
            out.extend_from_slice(entry(label, ATTR_VOLUME_ID, 0, 0).as_bytes());
        }
    } else {
        // FAT spec §6.7: `..` of a directory in the root points at cluster 0, not at the root cluster.
        let parent = if dir.parent == 0 { 0 } else { alloc.dirs[dir.parent].first };
        out.extend_from_slice(entry(*b".          ", ATTR_DIRECTORY, run.first, 0).as_bytes());
        out.extend_from_slice(entry(*b"..         ", ATTR_DIRECTORY, parent, 0).as_bytes());
    }
    for child in &dir.children {
        if child.long {
            push_long_name(&mut out, &child.name, &child.short);
        }
        let short = match child.node {
            Node::Dir(d) => entry(child.short, ATTR_DIRECTORY, alloc.dirs[d].first, 0),
            Node::File(f) => {
                let size = u32::try_from(tree.files[f].len).unwrap_or(u32::MAX);
                entry(child.short, ATTR_ARCHIVE, alloc.files[f].first, size)
            }
        };
        out.extend_from_slice(short.as_bytes());
    }
    out.resize(usize::try_from(u64::from(run.count) * cluster_bytes).unwrap_or(out.len()), 0);
    out
}

/// FAT spec §7: the long-name entries of `name`, last piece first, each with the short name's checksum; the
/// name is NUL-terminated when it does not fill its last entry, then padded with 0xFFFF.
fn push_long_name(out: &mut Vec<u8>, name: &str, short: &[u8; 11]) {
    let units: Vec<u16> = name.encode_utf16().collect();
    let count = units.len().div_ceil(LFN_UNITS_PER_ENTRY);
    let checksum = short_name_checksum(short);
    for n in (1..=count).rev() {
        let mut piece = [0xFFFFu16; LFN_UNITS_PER_ENTRY];
        let start = (n - 1) * LFN_UNITS_PER_ENTRY;
        let part = &units[start..units.len().min(start + LFN_UNITS_PER_ENTRY)];
        piece[..part.len()].copy_from_slice(part);
        if part.len() < LFN_UNITS_PER_ENTRY {
            piece[part.len()] = 0;
        }
        let le = |units: &[u16]| units.iter().map(|&u| U16::new(u)).collect::<Vec<_>>();
        let ord = u8::try_from(n).unwrap_or(0) | if n == count { LAST_LONG_ENTRY } else { 0 };
        let mut entry = LfnEntry {
            ord,
            name1: [U16::ZERO; 5],
            attr: ATTR_LONG_NAME,
            kind: 0,
            checksum,
            name2: [U16::ZERO; 6],
            fst_clus_lo: U16::ZERO,
            name3: [U16::ZERO; 2],
        };
        entry.name1.copy_from_slice(&le(&piece[..5]));
        entry.name2.copy_from_slice(&le(&piece[5..11]));
        entry.name3.copy_from_slice(&le(&piece[11..]));
        out.extend_from_slice(entry.as_bytes());
    }
}
