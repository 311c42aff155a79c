//! Reading back what `clay inspect` shows: the volume descriptors, the El Torito boot catalog and the system area.

use std::io::{Read, Seek, SeekFrom};

use crate::bytes::{SECTOR, SECTOR_U64};
use crate::eltorito::{self, BOOTABLE, ENTRY, FINAL_SECTION_HEADER, SECTION_HEADER};
use crate::layout::FIRST_DESCRIPTOR;
use crate::volume::{self, STANDARD_ID};
use crate::{gpt, IsoError};

/// Volume descriptors we look through before giving up on a terminator.
const MAX_DESCRIPTORS: u32 = 64;
/// Joliet 3.1: escape sequences of UCS-2 levels 1, 2 and 3.
const JOLIET_ESCAPES: [&[u8]; 3] = [b"%/@", b"%/C", b"%/E"];

/// What an ISO image holds, as far as booting it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoInfo {
    /// The primary volume descriptor's volume identifier, without its padding.
    pub volume_id: String,
    /// The volume space size in 2048-byte sectors.
    pub volume_sectors: u32,
    pub joliet: bool,
    /// The boot catalog's sector, when the image has an El Torito boot record.
    pub boot_catalog: Option<u32>,
    /// Boot catalog entries in catalog order: the default entry first.
    pub boot_entries: Vec<BootEntry>,
    /// The system area has an MBR boot signature (0x55AA at 510): it was made to boot as a disk too.
    pub mbr: bool,
    /// The system area has a GPT header at byte 512.
    pub gpt: bool,
}

/// One El Torito boot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// El Torito 2.1, 2.4: 0x00 x86 (BIOS), 0xEF UEFI.
    pub platform: u8,
    pub bootable: bool,
    /// El Torito 2.2: 0 no emulation, 1-3 floppies, 4 hard disk.
    pub media_type: u8,
    /// 0 means the traditional 0x7C0.
    pub load_segment: u16,
    /// Sector count in 512-byte units (0 when a UEFI image is too big to count, as xorriso writes it).
    pub sector_count: u16,
    /// The image's first 2048-byte sector.
    pub load_rba: u32,
}

fn read_sector(r: &mut (impl Read + Seek), lba: u32) -> Result<Vec<u8>, IsoError> {
    let mut buf = vec![0u8; SECTOR];
    r.seek(SeekFrom::Start(u64::from(lba) * SECTOR_U64)).map_err(IsoError::ReadImage)?;
    r.read_exact(&mut buf).map_err(IsoError::ReadImage)?;
    Ok(buf)
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_le(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

/// Reads the volume descriptors, the boot catalog and the system area of an ISO image.
pub fn read_iso_info(r: &mut (impl Read + Seek)) -> Result<IsoInfo, IsoError> {
    let system = read_sector(r, 0)?;
    let mut info = IsoInfo {
        volume_id: String::new(),
        volume_sectors: 0,
        joliet: false,
        boot_catalog: None,
        boot_entries: Vec::new(),
        mbr: system[510..512] == [0x55, 0xAA],
        gpt: &system[512..520] == gpt::SIGNATURE,
    };
    let mut primary = false;
    for lba in FIRST_DESCRIPTOR..FIRST_DESCRIPTOR + MAX_DESCRIPTORS {
        let d = read_sector(r, lba)?;
        if &d[1..6] != STANDARD_ID {
            // A set without its terminator: what was read before still describes the volume.
            if primary {
                break;
            }
            return Err(IsoError::NotIso(format!("sector {lba} is not a volume descriptor (no `CD001`)")));
        }
        match d[0] {
            volume::TYPE_PRIMARY => {
                primary = true;
                let id = &d[volume::VOLUME_ID..volume::VOLUME_ID + 32];
                info.volume_id = String::from_utf8_lossy(id).trim_end_matches([' ', '\0']).to_owned();
                info.volume_sectors = u32_le(&d, volume::VOLUME_SPACE_SIZE);
            }
            volume::TYPE_SUPPLEMENTARY => {
                let esc = &d[volume::ESCAPE_SEQUENCES..volume::ESCAPE_SEQUENCES + 3];
                info.joliet |= JOLIET_ESCAPES.contains(&esc);
            }
            volume::TYPE_BOOT_RECORD if d[7..7 + eltorito::BOOT_SYSTEM_ID.len()] == *eltorito::BOOT_SYSTEM_ID => {
                info.boot_catalog = Some(u32_le(&d, eltorito::CATALOG_POINTER));
            }
            volume::TYPE_TERMINATOR => break,
            _ => {}
        }
    }
    if !primary {
        return Err(IsoError::NotIso("no primary volume descriptor".into()));
    }
    if let Some(lba) = info.boot_catalog {
        info.boot_entries = read_catalog(&read_sector(r, lba)?, lba)?;
    }
    Ok(info)
}

fn entry(e: &[u8], platform: u8) -> BootEntry {
    BootEntry {
        platform,
        bootable: e[0] == BOOTABLE,
        media_type: e[1] & 0x0F,
        load_segment: u16_le(e, 2),
        sector_count: u16_le(e, 6),
        load_rba: u32_le(e, 8),
    }
}

/// El Torito 2.1-2.5: the validation entry, the default entry, then sections of entries.
fn read_catalog(c: &[u8], lba: u32) -> Result<Vec<BootEntry>, IsoError> {
    let bad = |reason: &str| IsoError::BadBootCatalog { lba, reason: reason.to_owned() };
    let validation = &c[..ENTRY];
    if validation[0] != 1 || validation[30..32] != [0x55, 0xAA] {
        return Err(bad("its validation entry lacks the header id 1 and the key 55 AA"));
    }
    let sum = validation.chunks(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    if sum != 0 {
        return Err(bad("its validation entry's checksum does not sum to zero"));
    }
    let mut entries = vec![entry(&c[ENTRY..2 * ENTRY], validation[1])];
    let mut at = 2 * ENTRY;
    while let Some(header) = c.get(at..at + ENTRY) {
        if header[0] != SECTION_HEADER && header[0] != FINAL_SECTION_HEADER {
            break;
        }
        let (platform, count) = (header[1], u16_le(header, 2));
        at += ENTRY;
        let mut left = count;
        while left > 0 {
            let Some(e) = c.get(at..at + ENTRY) else { return Err(bad("a section runs past the catalog's sector")) };
            at += ENTRY;
            // El Torito 2.6: extension entries (0x44) continue the previous entry's selection criteria.
            if e[0] == 0x44 {
                continue;
            }
            entries.push(entry(e, platform));
            left -= 1;
        }
        if header[0] == FINAL_SECTION_HEADER {
            break;
        }
    }
    Ok(entries)
}
