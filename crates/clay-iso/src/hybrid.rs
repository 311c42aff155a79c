//! The system area of an isohybrid image (what syslinux's `isohybrid` and xorriso's `-isohybrid-mbr` write): an
//! MBR whose boot code (isohdpfx.bin) loads isolinux.bin from the image seen as a disk, and, when the image boots on
//! UEFI too, a GPT whose EFI System Partition is the embedded FAT image's extent.
//!
//! Two shapes:
//! - BIOS only: one MBR entry, active, type 0x17, from sector 0 over the whole image (isohybrid's default).
//! - With UEFI: a protective MBR (UEFI 5.2.3: one 0xEE entry from block 1, not active: the spec asks for 0x00 and
//!   some UEFI firmware ignores a disk whose 0xEE entry is active) and a GPT with one partition, the ESP, over the
//!   FAT image's extent. The backup GPT takes the last 33 blocks of the padded image. The isohdpfx code does not
//!   look at the partition table, so BIOS boot still works; only BIOSes that insist on an active partition (what
//!   xorriso's `--mbr-force-bootable` is for) would refuse it.
//!
//! The image is padded to a whole MiB: isohybrid's cylinder alignment (64 heads, 32 sectors).

use crate::bytes::{put, SECTOR_U64};
use crate::gpt::{self, Gpt, Partition, LBA};
use crate::IsoError;

/// isohdpfx.bin: the MBR code is the first 432 bytes; isohybrid writes the fields after it (utils/isohybrid.c).
pub const MBR_CODE_LEN: usize = 432;
/// utils/isohybrid.c `initialise_mbr`: isolinux.bin's sector in 512-byte units, which isohdpfx.S loads 4 sectors
/// from (`lba_offset = _start+432`).
const ISOLINUX_LBA_FIELD: usize = 432;
/// Disk signature (offset 440) and the four partition entries (446), then 0x55AA (510).
const DISK_SIGNATURE: usize = 440;
const PARTITION_TABLE: usize = 446;
const BOOT_SIGNATURE: usize = 510;
/// Partition status "active" (and not), and the types we use: isohybrid's default 0x17, and the GPT protective 0xEE.
const ACTIVE: u8 = 0x80;
const INACTIVE: u8 = 0x00;
const TYPE_ISOHYBRID: u8 = 0x17;
const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// isohybrid's geometry: 64 heads, 32 sectors a track, so a cylinder is 1 MiB.
const HEADS: u64 = 64;
const SECTORS_PER_TRACK: u64 = 32;
const CYLINDER_BYTES: u64 = HEADS * SECTORS_PER_TRACK * LBA;
/// ECMA-119 6.2.1: the system area, sectors 0-15.
pub(crate) const SYSTEM_AREA_BYTES: usize = 16 * 2048;

/// What the system area describes.
#[derive(Debug)]
pub(crate) struct Hybrid<'a> {
    pub mbr_code: Option<&'a [u8]>,
    /// isolinux.bin's first sector (2048-byte units).
    pub isolinux_lba: Option<u32>,
    /// The ESP image's first sector (2048-byte units) and its length in bytes.
    pub esp: Option<(u32, u64)>,
    pub total_sectors: u32,
    pub seed: [u8; 16],
}

/// The padded size in sectors of an image whose data ends at sector `end`: whole cylinders, with room for a
/// backup GPT after the data when `gpt`.
pub(crate) fn padded_sectors(end: u64, gpt: bool) -> u64 {
    let bytes = end * SECTOR_U64 + if gpt { gpt::TABLE_LBAS * LBA } else { 0 };
    bytes.next_multiple_of(CYLINDER_BYTES) / SECTOR_U64
}

/// The CHS address of a block in isohybrid's geometry, saturated at the last CHS-addressable cylinder.
fn chs(lba: u64) -> [u8; 3] {
    let cylinder = lba / (HEADS * SECTORS_PER_TRACK);
    if cylinder > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / SECTORS_PER_TRACK) % HEADS;
    let sector = lba % SECTORS_PER_TRACK + 1;
    let [c_lo, c_hi, ..] = cylinder.to_le_bytes();
    let [h, ..] = head.to_le_bytes();
    let [s, ..] = sector.to_le_bytes();
    [h, s | (c_hi << 6), c_lo]
}

fn mbr_entry(status: u8, kind: u8, first: u64, blocks: u64, chs_first: [u8; 3], chs_last: [u8; 3]) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = status;
    e[1..4].copy_from_slice(&chs_first);
    e[4] = kind;
    e[5..8].copy_from_slice(&chs_last);
    e[8..12].copy_from_slice(&u32::try_from(first).unwrap_or(u32::MAX).to_le_bytes());
    e[12..16].copy_from_slice(&u32::try_from(blocks).unwrap_or(u32::MAX).to_le_bytes());
    e
}

impl Hybrid<'_> {
    fn total_lbas(&self) -> u64 {
        u64::from(self.total_sectors) * (SECTOR_U64 / LBA)
    }

    fn gpt(&self) -> Option<Gpt> {
        let (lba, len) = self.esp?;
        let first_lba = u64::from(lba) * (SECTOR_U64 / LBA);
        let esp = Partition {
            type_guid: gpt::ESP_TYPE,
            guid: gpt::guid_from_seed(&self.seed, "esp"),
            first_lba,
            last_lba: first_lba + len.div_ceil(LBA).max(1) - 1,
            name: "EFI System",
        };
        Some(Gpt {
            disk_guid: gpt::guid_from_seed(&self.seed, "disk"),
            partitions: vec![esp],
            total_lbas: self.total_lbas(),
        })
    }

    /// Sectors 0-15: the MBR, and the primary GPT when there is an ESP.
    pub(crate) fn system_area(&self) -> Result<Vec<u8>, IsoError> {
        let mut area = vec![0u8; SYSTEM_AREA_BYTES];
        if let Some(code) = self.mbr_code {
            let code = code.get(..MBR_CODE_LEN).ok_or(IsoError::ShortMbrCode { len: code.len() })?;
            put(&mut area, 0, code);
            if let Some(lba) = self.isolinux_lba {
                let blocks = lba.checked_mul(4).ok_or(IsoError::ImageTooLarge { sectors: u64::from(lba) })?;
                put(&mut area, ISOLINUX_LBA_FIELD, &blocks.to_le_bytes());
            }
        }
        let signature = gpt::guid_from_seed(&self.seed, "mbr");
        put(&mut area, DISK_SIGNATURE, &signature[..4]);
        let total = self.total_lbas();
        let entry = match self.gpt() {
            // UEFI 5.2.3 table 5-3: starting CHS 0x000200, ending CHS 0xFFFFFF, size capped at 32 bits.
            Some(_) => mbr_entry(INACTIVE, TYPE_GPT_PROTECTIVE, 1, total.saturating_sub(1), [0, 2, 0], [0xFF; 3]),
            None => mbr_entry(ACTIVE, TYPE_ISOHYBRID, 0, total, chs(0), chs(total.saturating_sub(1))),
        };
        put(&mut area, PARTITION_TABLE, &entry);
        put(&mut area, BOOT_SIGNATURE, &[0x55, 0xAA]);
        if let Some(gpt) = self.gpt() {
            put(&mut area, 512, &gpt.primary());
        }
        Ok(area)
    }

    /// The backup GPT, to end the image, when there is one.
    pub(crate) fn tail(&self) -> Option<Vec<u8>> {
        self.gpt().map(|g| g.backup())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_whole_mebibytes_with_room_for_the_backup_gpt() {
        assert_eq!(padded_sectors(100, false), 512);
        assert_eq!(padded_sectors(512, false), 512);
        assert_eq!(padded_sectors(512, true), 1024);
        assert_eq!(padded_sectors(503, true), 512);
        assert_eq!(padded_sectors(504, true), 1024);
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(8191), [63, 32, 3]);
        assert_eq!(chs(2048 * 1024), [0xFE, 0xFF, 0xFF]);
    }
}
