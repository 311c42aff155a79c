//! syslinux's BIOS boot code for a FAT volume, installed the way its installer does it, without running it.
//!
//! syslinux boots a FAT volume in three steps: the volume boot record (`ldlinux.bss`, merged into the volume's
//! boot sector) loads the first sector of `ldlinux.sys`; that sector loads the rest of the file from a list of
//! sector extents patched into it; and `ldlinux.sys` then reads `ldlinux.c32` and its configuration through the
//! filesystem. The boot sector and `ldlinux.sys` are not shipped as files by distributions: they live inside the
//! installer (`/usr/bin/syslinux`, whose data holds the boot sector, `ldlinux.sys` and the matching
//! `ldlinux.c32`, in that order). [`Syslinux::from_installer`] finds them there as data (the installer is never
//! run), and [`Syslinux::install`] does what `syslxmod.c` does for a file at known sectors: it patches the
//! sector pointers, the sizes, an empty ADV (auxiliary data vector) and the checksum.
//!
//! Sector numbers are relative to the start of the volume; the boot code adds the partition's offset, which it
//! learns from the MBR code's handover (syslinux's `gptmbr.bin` on a GPT disk) or the boot sector's hidden
//! sectors.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::fmt;

/// `LDLINUX_MAGIC` (syslxint.h): the first field of the patch area in `ldlinux.sys`.
const LDLINUX_MAGIC: u32 = 0x3eb2_02fe;
/// The ADV's head signature, total checksum and tail signature (syslxint.h).
const ADV_MAGIC1: u32 = 0x5a2d_2fa5;
const ADV_MAGIC2: u32 = 0xa304_1767;
const ADV_MAGIC3: u32 = 0xdd28_bf64;
pub const SECTOR_SIZE: usize = 512;
/// The ADV takes two sectors (two copies of one) right after the image in `ldlinux.sys`.
const ADV_SECTORS: usize = 2;
const SECTOR_BYTES: u32 = 512;
/// Where the boot sector loads ldlinux.sys' second sector: extents may not cross a 64 KiB boundary of this
/// address (syslxmod.c `generate_extents`).
const LOAD_ADDRESS: u32 = 0x8000;
/// An extent pointer: a 64-bit LBA and a 16-bit sector count, packed.
const EXTENT_LEN: usize = 10;
/// The part of a FAT32 boot sector that is boot code: the jump and OEM name, and everything from the end of the
/// FAT32 BPB to the signature (syslxint.h `FAT_bsHead`, `FAT_bsCode`).
const HEAD: std::ops::Range<usize> = 0..11;
const CODE: std::ops::Range<usize> = 90..510;

/// A problem with the installer or with where `ldlinux.sys` was put.
#[derive(Debug, thiserror::Error)]
pub enum SyslinuxError {
    #[error("no syslinux boot sector (a FAT boot record named SYSLINUX) was found in the installer")]
    NoBootSector,
    #[error("the syslinux installer is malformed: {0}")]
    Malformed(&'static str),
    #[error("ldlinux.sys needs {needed} sectors but {given} were given")]
    TooFewSectors { needed: usize, given: usize },
    #[error("ldlinux.sys is in {needed} pieces but holds pointers for only {max}; put it in fewer")]
    TooFragmented { needed: usize, max: usize },
    #[error("the directory `{dir}` is {len} bytes long but ldlinux.sys holds at most {max}")]
    DirectoryTooLong { dir: String, len: usize, max: usize },
}

/// syslinux's BIOS boot code, as found in its installer.
#[derive(Clone, PartialEq, Eq)]
pub struct Syslinux {
    boot_sector: [u8; SECTOR_SIZE],
    /// `ldlinux.sys` without its ADV: a whole number of sectors.
    image: Vec<u8>,
    /// The patch area's offset in `image`.
    patch_area: usize,
    ldlinux_c32: Vec<u8>,
    version: String,
}

impl fmt::Debug for Syslinux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Syslinux")
            .field("version", &self.version)
            .field("ldlinux_sys", &self.image.len())
            .field("ldlinux_c32", &self.ldlinux_c32.len())
            .finish_non_exhaustive()
    }
}

/// What [`Syslinux::install`] produces for one volume.
#[derive(Clone, PartialEq, Eq)]
pub struct Installed {
    /// A boot sector whose jump and OEM name (bytes 0-10) and code (bytes 90-509) go into the volume's boot
    /// sector (and its backup); the BPB in between stays the volume's own.
    pub boot_sector: [u8; SECTOR_SIZE],
    /// The content of `ldlinux.sys`, exactly [`Syslinux::ldlinux_sys_len`] bytes, to be stored at the sectors
    /// given to `install`.
    pub ldlinux_sys: Vec<u8>,
}

impl fmt::Debug for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installed").field("ldlinux_sys", &self.ldlinux_sys.len()).finish_non_exhaustive()
    }
}

/// The bytes of a syslinux boot sector that are boot code rather than the volume's BPB.
pub fn boot_code_ranges() -> [std::ops::Range<usize>; 2] {
    [HEAD, CODE]
}

impl Syslinux {
    /// Finds the boot sector, `ldlinux.sys` and `ldlinux.c32` in the bytes of a syslinux installer (such as
    /// Debian's `/usr/bin/syslinux`), which stores them one after the other.
    pub fn from_installer(bytes: &[u8]) -> Result<Syslinux, SyslinuxError> {
        let start = (0..bytes.len().saturating_sub(SECTOR_SIZE))
            .find(|&i| is_boot_sector(&bytes[i..i + SECTOR_SIZE]))
            .ok_or(SyslinuxError::NoBootSector)?;
        let mut boot_sector = [0u8; SECTOR_SIZE];
        boot_sector.copy_from_slice(&bytes[start..start + SECTOR_SIZE]);
        let rest = &bytes[start + SECTOR_SIZE..];
        // ldlinux.sys is a whole number of sectors and ldlinux.c32, an ELF file, follows it.
        let image_len = (SECTOR_SIZE..rest.len())
            .step_by(SECTOR_SIZE)
            .find(|&i| rest[i..].starts_with(b"\x7fELF\x01\x01\x01"))
            .ok_or(SyslinuxError::Malformed("no ldlinux.c32 follows ldlinux.sys"))?;
        let image = rest[..image_len].to_vec();
        let ldlinux_c32 = &rest[image_len..];
        let ldlinux_c32 = ldlinux_c32[..elf32_len(ldlinux_c32)?].to_vec();
        let patch_area = (0..image.len() / 4)
            .map(|i| i * 4)
            .find(|&at| get32(&image, at) == Some(LDLINUX_MAGIC))
            .ok_or(SyslinuxError::Malformed("ldlinux.sys has no patch area"))?;
        let version = banner_version(&image).unwrap_or_else(|| "unknown".into());
        let syslinux = Syslinux { boot_sector, image, patch_area, ldlinux_c32, version };
        syslinux.check()?;
        Ok(syslinux)
    }

    /// The syslinux version the banner of `ldlinux.sys` names, such as `6.04`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The length of `ldlinux.sys` on the volume: the image and its two ADV sectors.
    pub fn ldlinux_sys_len(&self) -> u64 {
        (self.image.len() + ADV_SECTORS * SECTOR_SIZE) as u64
    }

    /// `ldlinux.c32`, the core module of the same build, which `ldlinux.sys` loads from the volume.
    pub fn ldlinux_c32(&self) -> &[u8] {
        &self.ldlinux_c32
    }

    /// Patches the boot code for `ldlinux.sys` stored at `sectors` (one volume-relative sector number per 512
    /// bytes of the file, in order), with `directory` (such as `/syslinux`) as the directory syslinux starts in
    /// and looks for its configuration first.
    pub fn install(&self, sectors: &[u64], directory: Option<&str>) -> Result<Installed, SyslinuxError> {
        let nsect = self.image.len() / SECTOR_SIZE + ADV_SECTORS;
        if sectors.len() < nsect {
            return Err(SyslinuxError::TooFewSectors { needed: nsect, given: sectors.len() });
        }
        let mut img = self.image.clone();
        let mut boot = self.boot_sector;
        let pa = self.patch_area;
        let epa = self.field(pa + 22);
        let f = |n: usize| self.field(epa + 2 * n);
        let (adv_ptrs, dir_at, dir_len, sec_ptrs, sec_count, sect1_lo, sect1_hi) =
            (f(0), f(1), f(2), f(5), f(6), f(7), f(8));

        // The first sector's address goes into the boot sector, in two 32-bit halves.
        let first = sectors[0].to_le_bytes();
        boot[sect1_lo..sect1_lo + 4].copy_from_slice(&first[..4]);
        boot[sect1_hi..sect1_hi + 4].copy_from_slice(&first[4..]);

        // `check` made sure both counts fit.
        let data_sectors = u16::try_from(nsect - ADV_SECTORS).unwrap_or(u16::MAX);
        put16(&mut img, pa + 8, data_sectors);
        put16(&mut img, pa + 10, 2); // ADV sectors, ADV_SECTORS
        put32(&mut img, pa + 12, u32::try_from(self.image.len() / 4).unwrap_or(u32::MAX)); // dwords

        let extents = extents(&sectors[1..nsect - ADV_SECTORS]);
        if extents.len() > sec_count {
            return Err(SyslinuxError::TooFragmented { needed: extents.len(), max: sec_count });
        }
        img[sec_ptrs..sec_ptrs + sec_count * EXTENT_LEN].fill(0);
        for (i, (lba, len)) in extents.into_iter().enumerate() {
            put64(&mut img, sec_ptrs + i * EXTENT_LEN, lba);
            put16(&mut img, sec_ptrs + i * EXTENT_LEN + 8, len);
        }
        put64(&mut img, adv_ptrs, sectors[nsect - 2]);
        put64(&mut img, adv_ptrs + 8, sectors[nsect - 1]);

        if let Some(dir) = directory {
            let bytes = dir.as_bytes();
            if bytes.len() + 1 > dir_len || bytes.contains(&0) {
                return Err(SyslinuxError::DirectoryTooLong {
                    dir: dir.to_owned(),
                    len: bytes.len() + 1,
                    max: dir_len,
                });
            }
            img[dir_at..dir_at + bytes.len()].copy_from_slice(bytes);
            img[dir_at + bytes.len()] = 0;
        }

        // The checksum makes the image's dwords sum to LDLINUX_MAGIC.
        put32(&mut img, pa + 16, 0);
        let sum =
            img.chunks_exact(4).fold(0u32, |acc, d| acc.wrapping_add(u32::from_le_bytes([d[0], d[1], d[2], d[3]])));
        put32(&mut img, pa + 16, LDLINUX_MAGIC.wrapping_sub(sum));

        img.extend_from_slice(&empty_adv());
        Ok(Installed { boot_sector: boot, ldlinux_sys: img })
    }

    /// Checks every offset `install` will use, so that it cannot go out of bounds.
    fn check(&self) -> Result<(), SyslinuxError> {
        let malformed = SyslinuxError::Malformed;
        if self.image.is_empty() || self.image.len() % SECTOR_SIZE != 0 {
            return Err(malformed("ldlinux.sys is not a whole number of sectors"));
        }
        if self.image.len() / SECTOR_SIZE > usize::from(u16::MAX) {
            return Err(malformed("ldlinux.sys is too large"));
        }
        let img_len = self.image.len();
        let in_img = |at: usize, len: usize| at.checked_add(len).is_some_and(|end| end <= img_len);
        let pa = self.patch_area;
        if !in_img(pa, 24) {
            return Err(malformed("the patch area is cut off"));
        }
        let epa = self.field(pa + 22);
        if !in_img(epa, 20) {
            return Err(malformed("the extended patch area is outside ldlinux.sys"));
        }
        let f = |n: usize| self.field(epa + 2 * n);
        let (adv_ptrs, dir_at, dir_len, sec_ptrs, sec_count, sect1_lo, sect1_hi) =
            (f(0), f(1), f(2), f(5), f(6), f(7), f(8));
        if !in_img(adv_ptrs, 16) || !in_img(dir_at, dir_len) || !in_img(sec_ptrs, sec_count * EXTENT_LEN) {
            return Err(malformed("a pointer of the extended patch area is outside ldlinux.sys"));
        }
        if sec_count == 0 {
            return Err(malformed("ldlinux.sys has no room for sector pointers"));
        }
        let in_code = |at: usize| CODE.contains(&at) && CODE.contains(&(at + 3));
        if !in_code(sect1_lo) || !in_code(sect1_hi) {
            return Err(malformed("the boot sector's sector pointer is outside its code"));
        }
        Ok(())
    }

    /// A 16-bit field of the image, as an offset or a count; `check` keeps the ones used in bounds.
    fn field(&self, at: usize) -> usize {
        usize::from(u16::from_le_bytes([self.image[at], self.image[at + 1]]))
    }
}

/// A FAT boot record from syslinux: a short jump over the BPB, the OEM name `SYSLINUX` and the boot signature.
fn is_boot_sector(s: &[u8]) -> bool {
    s[0] == 0xeb && s[2] == 0x90 && &s[3..11] == b"SYSLINUX" && s[510] == 0x55 && s[511] == 0xaa
}

/// The length of an ELF32 file from its headers: the end of its section header table or of its last segment.
fn elf32_len(elf: &[u8]) -> Result<usize, SyslinuxError> {
    let bad = SyslinuxError::Malformed("ldlinux.c32 has a broken ELF header");
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let u32_at = |at: usize| get32(elf, at).map(|v| v as usize);
    let (phoff, shoff) =
        (u32_at(28).ok_or(bad)?, u32_at(32).ok_or(SyslinuxError::Malformed("ldlinux.c32 is cut off"))?);
    let (phentsize, phnum) = (u16_at(42).unwrap_or(0), u16_at(44).unwrap_or(0));
    let (shentsize, shnum) = (u16_at(46).unwrap_or(0), u16_at(48).unwrap_or(0));
    let mut end = shoff.saturating_add(shentsize.saturating_mul(shnum));
    for i in 0..phnum {
        let ph = phoff.saturating_add(i.saturating_mul(phentsize));
        if let (Some(offset), Some(filesz)) = (u32_at(ph + 4), u32_at(ph + 16)) {
            end = end.max(offset.saturating_add(filesz));
        }
    }
    if end == 0 || end > elf.len() {
        return Err(SyslinuxError::Malformed("ldlinux.c32 is cut off"));
    }
    Ok(end)
}

/// `SYSLINUX 6.04` in the banner at the start of ldlinux.sys gives `6.04`.
fn banner_version(image: &[u8]) -> Option<String> {
    let head = &image[..image.len().min(64)];
    let at = head.windows(9).position(|w| w == b"SYSLINUX ")? + 9;
    let version: String = head[at..].iter().take_while(|b| b.is_ascii_graphic()).map(|&b| char::from(b)).collect();
    (!version.is_empty()).then_some(version)
}

/// syslxmod.c `generate_extents`: runs of consecutive sectors, each below 64 KiB and not crossing a 64 KiB
/// boundary of the address it is loaded to.
fn extents(sectors: &[u64]) -> Vec<(u64, u16)> {
    let mut out = Vec::new();
    let mut addr = LOAD_ADDRESS;
    let (mut base, mut lba, mut len) = (addr, 0u64, 0u32);
    for &sect in sectors {
        if len > 0 {
            let xbytes = (len + 1) * SECTOR_BYTES;
            if sect == lba + u64::from(len) && xbytes < 65536 && (addr ^ (base + xbytes - 1)) & 0xffff_0000 == 0 {
                len += 1;
                addr += SECTOR_BYTES;
                continue;
            }
            out.push((lba, extent_len(len)));
        }
        (base, lba, len) = (addr, sect, 1);
        addr += SECTOR_BYTES;
    }
    if len > 0 {
        out.push((lba, extent_len(len)));
    }
    out
}

/// An extent's sector count: below 128, since an extent is below 64 KiB.
fn extent_len(sectors: u32) -> u16 {
    u16::try_from(sectors).unwrap_or(u16::MAX)
}

/// Two copies of an empty ADV (syslinux `syslinux_reset_adv`): head signature, checksum, zeros, tail signature.
fn empty_adv() -> Vec<u8> {
    let mut adv = vec![0u8; SECTOR_SIZE];
    put32(&mut adv, 0, ADV_MAGIC1);
    // The checksum covers the data between the checksum and the tail, all zero here.
    put32(&mut adv, 4, ADV_MAGIC2);
    put32(&mut adv, SECTOR_SIZE - 4, ADV_MAGIC3);
    adv.extend_from_within(..);
    adv
}

fn get32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests;
