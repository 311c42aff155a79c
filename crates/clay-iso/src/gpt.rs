//! The small GUID Partition Table an isohybrid image carries (UEFI 2.10 5.3): one header and 128-entry array after
//! the MBR, their backup at the end of the image, and deterministic GUIDs derived from a seed.
//!
//! Kept here rather than shared with the disk image code so this crate stands alone; it writes only what a hybrid
//! ISO needs (given partitions, 512-byte logical blocks).

use sha2::{Digest, Sha256};

/// UEFI 5.3: logical block size we describe the image with (what a USB stick has).
pub(crate) const LBA: u64 = 512;
const LBA_BYTES: usize = 512;
/// UEFI 5.3.2: "EFI PART", revision 1.0, 92-byte header.
pub(crate) const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;
/// UEFI 5.3.2: at least 16 KiB of entries: 128 of 128 bytes, 32 blocks.
const ENTRY_COUNT: u32 = 128;
const ENTRY_SIZE: u32 = 128;
const ENTRY_ARRAY_BYTES: usize = 128 * 128;
const ENTRY_ARRAY_LBAS: u64 = (ENTRY_ARRAY_BYTES / LBA_BYTES) as u64;
/// Blocks one copy of the table takes: the header and the entry array.
pub(crate) const TABLE_LBAS: u64 = 1 + ENTRY_ARRAY_LBAS;
/// UEFI 5.3.3: the partition name is 36 UTF-16LE code units.
const NAME_UNITS: usize = 36;
/// Discoverable Partitions Specification / UEFI 5.3.3: EFI System Partition, C12A7328-F81F-11D2-BA4B-00A0C93EC93B,
/// in its on-disk (mixed-endian) byte order.
pub(crate) const ESP_TYPE: [u8; 16] =
    [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B];

#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub type_guid: [u8; 16],
    pub guid: [u8; 16],
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Gpt {
    pub disk_guid: [u8; 16],
    pub partitions: Vec<Partition>,
    /// The disk's size in blocks; the backup header is the last one.
    pub total_lbas: u64,
}

impl Gpt {
    fn entries(&self) -> Vec<u8> {
        let mut a = vec![0u8; ENTRY_ARRAY_BYTES];
        for (p, e) in self.partitions.iter().zip(a.chunks_mut(ENTRY_SIZE as usize)) {
            e[0..16].copy_from_slice(&p.type_guid);
            e[16..32].copy_from_slice(&p.guid);
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            // 48..56: attributes, none.
            for (i, unit) in p.name.encode_utf16().take(NAME_UNITS).enumerate() {
                e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
            }
        }
        a
    }

    /// UEFI 5.3.2 header for the copy at `my_lba` whose entries start at `entries_lba`.
    fn header(&self, my_lba: u64, alternate_lba: u64, entries_lba: u64, entries_crc: u32) -> Vec<u8> {
        let mut h = vec![0u8; LBA_BYTES];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&REVISION.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate_lba.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable().to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable().to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&ENTRY_COUNT.to_le_bytes());
        h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h[..HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn first_usable(&self) -> u64 {
        1 + TABLE_LBAS
    }

    fn last_usable(&self) -> u64 {
        self.total_lbas.saturating_sub(TABLE_LBAS + 1)
    }

    /// Blocks 1 to 33: the primary header and entry array.
    pub(crate) fn primary(&self) -> Vec<u8> {
        let entries = self.entries();
        let mut out = self.header(1, self.total_lbas.saturating_sub(1), 2, crc32(&entries));
        out.extend_from_slice(&entries);
        out
    }

    /// The last 33 blocks: the backup entry array, then the backup header in the very last block.
    pub(crate) fn backup(&self) -> Vec<u8> {
        let mut out = self.entries();
        let crc = crc32(&out);
        let last = self.total_lbas.saturating_sub(1);
        out.extend_from_slice(&self.header(last, 1, last.saturating_sub(ENTRY_ARRAY_LBAS), crc));
        out
    }
}

/// A version-4-shaped GUID (RFC 9562 4.1, 4.2 bits set) from the seed and a label, in on-disk byte order.
pub(crate) fn guid_from_seed(seed: &[u8; 16], label: &str) -> [u8; 16] {
    let digest = Sha256::new().chain_update(b"clay-iso guid\0").chain_update(seed).chain_update(label).finalize();
    let mut g = [0u8; 16];
    g.copy_from_slice(&digest[..16]);
    g[7] = (g[7] & 0x0F) | 0x40; // time_hi_and_version, stored little-endian: version nibble in byte 7
    g[8] = (g[8] & 0x3F) | 0x80; // variant 10xx
    g
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as UEFI 5.3.2 specifies for headers and entry arrays.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0u32;
        while i < 256 {
            let mut c = i;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i as usize] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| TABLE[usize::from(c.to_le_bytes()[0] ^ b)] ^ (c >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn guids_are_stable_and_distinct() {
        let a = guid_from_seed(&[1; 16], "disk");
        assert_eq!(a, guid_from_seed(&[1; 16], "disk"));
        assert_ne!(a, guid_from_seed(&[1; 16], "esp"));
        assert_ne!(a, guid_from_seed(&[2; 16], "disk"));
        assert_eq!((a[7] >> 4, a[8] >> 6), (4, 2));
    }
}
