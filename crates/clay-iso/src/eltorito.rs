//! El Torito ("Bootable CD-ROM Format Specification" 1.0, 1995): the boot catalog with a BIOS no-emulation entry
//! and a UEFI (platform 0xEF) section, and the boot info table isolinux expects patched into its image.

use crate::bytes::{put, SECTOR};

/// El Torito 2.0: the boot record's boot system identifier, padded with zeros to 32 bytes at offset 7.
pub(crate) const BOOT_SYSTEM_ID: &[u8] = b"EL TORITO SPECIFICATION";
/// El Torito 2.0: offset of the boot catalog's absolute sector in the boot record.
pub(crate) const CATALOG_POINTER: usize = 0x47;
/// El Torito 2.1, 2.4: platform ids.
pub const PLATFORM_X86: u8 = 0x00;
pub const PLATFORM_EFI: u8 = 0xEF;
/// El Torito 2.1: validation entry header id and key bytes.
const VALIDATION_HEADER: u8 = 0x01;
const KEY: [u8; 2] = [0x55, 0xAA];
/// El Torito 2.2, 2.5: boot indicator "bootable"; media type 0 is "no emulation".
pub(crate) const BOOTABLE: u8 = 0x88;
pub(crate) const NO_EMULATION: u8 = 0x00;
/// El Torito 2.4: section header indicators: more headers follow, or this is the final one.
pub(crate) const SECTION_HEADER: u8 = 0x90;
pub(crate) const FINAL_SECTION_HEADER: u8 = 0x91;
/// Catalog entries are 32 bytes.
pub(crate) const ENTRY: usize = 32;
/// isolinux is loaded as 4 virtual (512-byte) sectors, what `-boot-load-size 4` gives.
pub(crate) const BIOS_LOAD_SECTORS: u16 = 4;
/// The sector count field is 16 bits of 512-byte sectors. Bigger images get 0, as xorriso writes: firmware then
/// reads the FAT image's own size (OVMF counts to the end of the volume).
const VIRTUAL_SECTOR: u64 = 512;

/// The boot info table `-boot-info-table` writes into the boot image (mkisofs, isolinux's `bi_*` fields):
/// bytes 8-63 hold the PVD's sector, the file's sector, its length, a checksum of bytes 64.. and 40 reserved.
const BOOT_INFO_TABLE: usize = 8;
const BOOT_INFO_END: usize = 64;
/// isolinux.bin's isohybrid signature at byte 64 (syslinux mbr/isohdpfx.S, HYBRID_MAGIC): its MBR jumps there.
pub(crate) const HYBRID_MAGIC: u32 = 0x7078_C0FB;

/// One boot image: the sector of its extent and the catalog's sector count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Image {
    pub lba: u32,
    pub sector_count: u16,
}

/// The sector count of a UEFI image of `len` bytes.
pub(crate) fn efi_sector_count(len: u64) -> u16 {
    u16::try_from(len.div_ceil(VIRTUAL_SECTOR)).unwrap_or(0)
}

fn validation_entry(platform: u8) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[0] = VALIDATION_HEADER;
    e[1] = platform;
    e[30..32].copy_from_slice(&KEY);
    // 2.1: the 16-bit words of the entry sum to zero.
    let sum = e.chunks(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
    e[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    e
}

/// A default (2.2) or section (2.5) entry: bootable, no emulation, load segment 0 (meaning 0x7C0).
fn boot_entry(image: Image) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[0] = BOOTABLE;
    e[1] = NO_EMULATION;
    e[6..8].copy_from_slice(&image.sector_count.to_le_bytes());
    e[8..12].copy_from_slice(&image.lba.to_le_bytes());
    e
}

/// The boot catalog sector: the BIOS image as default entry and the UEFI one in a final 0xEF section, or the
/// UEFI image alone as default entry of a catalog validated for platform 0xEF (as xorriso does).
pub(crate) fn catalog(bios: Option<Image>, uefi: Option<Image>) -> Vec<u8> {
    let mut c = vec![0u8; SECTOR];
    let (platform, default, section) = match (bios, uefi) {
        (Some(b), u) => (PLATFORM_X86, Some(b), u),
        (None, Some(u)) => (PLATFORM_EFI, Some(u), None),
        (None, None) => (PLATFORM_X86, None, None),
    };
    put(&mut c, 0, &validation_entry(platform));
    if let Some(d) = default {
        put(&mut c, ENTRY, &boot_entry(d));
    }
    if let Some(s) = section {
        // 2.4: header indicator, platform, number of section entries.
        put(&mut c, 2 * ENTRY, &[FINAL_SECTION_HEADER, PLATFORM_EFI, 1, 0]);
        put(&mut c, 3 * ENTRY, &boot_entry(s));
    }
    c
}

/// Why an image cannot take a boot info table.
pub(crate) fn check_isolinux(image: &[u8], hybrid: bool) -> Result<(), String> {
    if image.len() < BOOT_INFO_END + 4 {
        return Err(format!("it is {} bytes, too short for a boot info table", image.len()));
    }
    let magic = u32::from_le_bytes([image[64], image[65], image[66], image[67]]);
    if hybrid && magic != HYBRID_MAGIC {
        return Err("it lacks the isohybrid signature at byte 64 (use isolinux.bin from syslinux 3.72 or later)".into());
    }
    Ok(())
}

/// Patches the boot info table: the PVD's sector, the image's sector and length, and the 32-bit sum of its
/// little-endian words from byte 64 on (a short last word counts as zero-padded).
pub(crate) fn patch_boot_info_table(image: &mut [u8], pvd_lba: u32, file_lba: u32) {
    let csum = image.get(BOOT_INFO_END..).unwrap_or(&[]).chunks(4).fold(0u32, |s, w| {
        let mut word = [0u8; 4];
        word[..w.len()].copy_from_slice(w);
        s.wrapping_add(u32::from_le_bytes(word))
    });
    let len = u32::try_from(image.len()).unwrap_or(u32::MAX);
    let mut table = [0u8; BOOT_INFO_END - BOOT_INFO_TABLE];
    table[0..4].copy_from_slice(&pvd_lba.to_le_bytes());
    table[4..8].copy_from_slice(&file_lba.to_le_bytes());
    table[8..12].copy_from_slice(&len.to_le_bytes());
    table[12..16].copy_from_slice(&csum.to_le_bytes());
    put(image, BOOT_INFO_TABLE, &table);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_entries_and_checksum() {
        let c = catalog(Some(Image { lba: 30, sector_count: 4 }), Some(Image { lba: 40, sector_count: 0 }));
        let sum = c[..32].chunks(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
        assert_eq!(sum, 0);
        assert_eq!(&c[30..32], &[0x55, 0xAA]);
        assert_eq!(&c[32..44], &[0x88, 0, 0, 0, 0, 0, 4, 0, 30, 0, 0, 0]);
        assert_eq!(&c[64..68], &[0x91, 0xEF, 1, 0]);
        assert_eq!(&c[96..108], &[0x88, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0]);
        let efi_only = catalog(None, Some(Image { lba: 34, sector_count: 5760 }));
        assert_eq!((efi_only[1], efi_only[64]), (PLATFORM_EFI, 0));
        assert_eq!(efi_sector_count(2880 * 1024), 5760);
        assert_eq!(efi_sector_count(40 << 20), 0);
    }

    #[test]
    fn boot_info_table_sums_words_after_byte_64() {
        let mut img = vec![0u8; 70];
        img[64..70].copy_from_slice(&[1, 0, 0, 0, 2, 1]);
        patch_boot_info_table(&mut img, 16, 99);
        assert_eq!(&img[8..24], &[16, 0, 0, 0, 99, 0, 0, 0, 70, 0, 0, 0, 3, 1, 0, 0]);
        assert!(check_isolinux(&img, false).is_ok());
        assert!(check_isolinux(&img, true).is_err());
        assert!(check_isolinux(&img[..60], false).is_err());
    }
}
