//! ISO 9660 images that boot: Rock Ridge names and modes, a Joliet tree for Windows, El Torito entries for BIOS
//! (isolinux, no emulation, boot info table) and UEFI (an embedded FAT image, platform 0xEF), and an isohybrid
//! MBR/GPT so the same file boots written raw to a USB stick.
//!
//! Implements ECMA-119 (ISO 9660), SUSP 1.12 and RRIP 1.12 (IEEE P1282), the Joliet specification, El Torito 1.0,
//! and the system area syslinux's `isohybrid` and xorriso's `-isohybrid-mbr` write (see [`IsoOptions::hybrid`]).
//! Pure: the caller hands in a reader per file; everything is laid out first, then written in one sequential pass,
//! so a 200 MB initramfs streams through without being held in memory. Deterministic: no clock, no randomness;
//! every date is the caller's timestamp and every GUID comes from the caller's seed.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod bytes;
mod directory;
mod eltorito;
mod error;
mod gpt;
mod hybrid;
mod joliet;
mod layout;
mod names;
mod read;
mod rockridge;
mod tree;
mod volume;

use std::fmt;
use std::io::{self, Read, Write};

pub use eltorito::{PLATFORM_EFI, PLATFORM_X86};
pub use error::IsoError;
pub use hybrid::MBR_CODE_LEN;
pub use read::{read_iso_info, BootEntry, IsoInfo};

use bytes::{DateTime, SECTOR_U64};
use hybrid::Hybrid;
use layout::FIRST_DESCRIPTOR;

/// Boot images above this size are refused as isolinux.bin: it is read into memory to patch its boot info table.
const MAX_ISOLINUX_LEN: u64 = 16 << 20;

/// One file of the image. Directories are implied by the paths.
pub struct IsoFile<'a> {
    /// '/'-separated, like "boot/vmlinuz"; parents are created with mode 0755.
    pub path: &'a str,
    /// Exactly how many bytes `data` yields (under 4 GiB).
    pub len: u64,
    pub data: &'a mut dyn Read,
    /// Permission bits for Rock Ridge PX (the file type bits are ignored: every file is a regular file).
    pub mode: u32,
}

impl fmt::Debug for IsoFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsoFile").field("path", &self.path).field("len", &self.len).field("mode", &self.mode).finish()
    }
}

/// BIOS boot through isolinux.
#[derive(Debug, Clone, Copy)]
pub struct BiosBoot<'a> {
    /// The path of isolinux.bin among the files. It gets an El Torito no-emulation default entry loading 4
    /// virtual sectors, and a boot info table (`-boot-info-table`).
    pub isolinux_bin_path: &'a str,
    /// isohdpfx.bin (its first [`MBR_CODE_LEN`] bytes are used) for booting the image as a disk; used only with
    /// [`IsoOptions::hybrid`], which then also requires isolinux.bin's isohybrid signature.
    pub mbr: Option<&'a [u8]>,
}

/// UEFI boot from an embedded FAT image holding `EFI/BOOT/BOOTX64.EFI`.
#[derive(Debug, Clone, Copy)]
pub struct UefiBoot<'a> {
    /// The path of the FAT image among the files, like "boot/efiboot.img". It stays a normal file; the El Torito
    /// entry (platform 0xEF, no emulation) and the hybrid GPT's ESP point at its extent.
    pub efi_image_path: &'a str,
}

#[derive(Debug, Clone)]
pub struct IsoOptions<'a> {
    /// 1 to 32 of A-Z, 0-9 and _, like "CLAYLINUX".
    pub volume_id: String,
    /// Every date in the volume (SOURCE_DATE_EPOCH), clamped to 1900..=2155.
    pub timestamp: i64,
    pub bios: Option<BiosBoot<'a>>,
    pub uefi: Option<UefiBoot<'a>>,
    /// Make the image boot as a disk too (a USB stick written with `dd`), and pad it to whole MiB (isohybrid's
    /// cylinder alignment). BIOS only: an MBR with the isohdpfx code and one active entry of type 0x17 over the
    /// image, as `isohybrid` writes. With `uefi`: a protective MBR (one 0xEE entry from block 1, not active) with
    /// the same code, and a GPT whose only partition is the ESP, exactly the FAT image's extent; its backup takes
    /// the last 33 blocks. `sgdisk -v` finds no problems with it.
    pub hybrid: bool,
    /// The MBR disk signature and the GPT disk and partition GUIDs derive from it.
    pub seed: [u8; 16],
}

/// Writes the whole image to `out` sequentially and returns its size in bytes.
pub fn write_iso(files: &mut [IsoFile<'_>], opts: &IsoOptions<'_>, out: &mut dyn Write) -> Result<u64, IsoError> {
    if !volume::valid_volume_id(&opts.volume_id) {
        return Err(IsoError::InvalidVolumeId(opts.volume_id.clone()));
    }
    let tree = tree::Tree::build(files.iter().map(|f| (f.path, f.len, f.mode)))?;
    let find = |role, path: &str| tree.find(path).ok_or_else(|| IsoError::MissingBootFile { role, path: path.into() });
    let bios = opts.bios.map(|b| find("BIOS boot image", b.isolinux_bin_path)).transpose()?;
    let uefi = opts.uefi.map(|u| find("UEFI boot image", u.efi_image_path)).transpose()?;
    let mbr_code = opts.bios.and_then(|b| b.mbr).filter(|_| opts.hybrid);
    if let Some(code) = mbr_code.filter(|c| c.len() < MBR_CODE_LEN) {
        return Err(IsoError::ShortMbrCode { len: code.len() });
    }

    let date = DateTime::from_unix(opts.timestamp);
    let layout = layout::plan(&tree, date.recording(), bios.is_some() || uefi.is_some(), opts.hybrid, uefi.is_some())?;

    // isolinux.bin is read (and checked) before anything is written, and patched with its final location.
    let isolinux = match bios {
        Some(f) => {
            let mut image = read_small(&mut files[f], MAX_ISOLINUX_LEN)?;
            eltorito::check_isolinux(&image, mbr_code.is_some())
                .map_err(|reason| IsoError::BadIsolinux { path: tree.files[f].path.clone(), reason })?;
            eltorito::patch_boot_info_table(&mut image, FIRST_DESCRIPTOR, layout.file_lba[f]);
            Some((f, image))
        }
        None => None,
    };

    let hybrid = opts.hybrid.then(|| Hybrid {
        mbr_code,
        isolinux_lba: bios.map(|f| layout.file_lba[f]),
        esp: uefi.map(|f| (layout.file_lba[f], tree.files[f].len)),
        total_sectors: layout.total_sectors,
        seed: opts.seed,
    });
    let file_len = |f: usize| u32::try_from(tree.files[f].len).unwrap_or(u32::MAX);

    let mut w = Emitter { out, pos: 0 };
    match &hybrid {
        Some(h) => w.put(&h.system_area()?)?,
        None => w.pad_to(u64::from(FIRST_DESCRIPTOR) * SECTOR_U64)?,
    }
    let total = layout.total_sectors;
    w.put(&volume::descriptor(&layout.primary, false, &opts.volume_id, total, date))?;
    if let (Some(record), Some(catalog)) = (layout.boot_record, layout.catalog) {
        w.at(record)?;
        w.put(&volume::boot_record(catalog))?;
    }
    w.at(layout.joliet_descriptor)?;
    w.put(&volume::descriptor(&layout.joliet, true, &opts.volume_id, total, date))?;
    w.at(layout.terminator)?;
    w.put(&volume::terminator())?;
    if let Some(catalog) = layout.catalog {
        w.at(catalog)?;
        let image = |f: usize, count| eltorito::Image { lba: layout.file_lba[f], sector_count: count };
        let bios_image = bios.map(|f| image(f, eltorito::BIOS_LOAD_SECTORS));
        let uefi_image = uefi.map(|f| image(f, eltorito::efi_sector_count(tree.files[f].len)));
        w.put(&eltorito::catalog(bios_image, uefi_image))?;
    }
    for ns in [&layout.primary, &layout.joliet] {
        w.at(ns.path_tables.0)?;
        w.put(&ns.path_table(&tree, false))?;
        w.at(ns.path_tables.1)?;
        w.put(&ns.path_table(&tree, true))?;
    }
    let file_extent = |f: usize| (layout.file_lba[f], file_len(f));
    for &d in &layout.primary.order {
        w.at(layout.primary.dirs[d].lba)?;
        w.put(&layout.primary.encode_dir(d, &file_extent, date.recording()))?;
    }
    w.at(layout.ce_lba)?;
    w.put(&layout.ce_area)?;
    for &d in &layout.joliet.order {
        w.at(layout.joliet.dirs[d].lba)?;
        w.put(&layout.joliet.encode_dir(d, &file_extent, date.recording()))?;
    }
    for &f in &layout.file_order {
        w.at(layout.file_lba[f])?;
        match &isolinux {
            Some((i, image)) if *i == f => w.put(image)?,
            _ => copy_exact(&mut files[f], &mut w)?,
        }
    }
    let end = u64::from(total) * SECTOR_U64;
    if let Some(tail) = hybrid.as_ref().and_then(Hybrid::tail) {
        w.pad_to(end - tail.len() as u64)?;
        w.put(&tail)?;
    }
    w.pad_to(end)?;
    w.out.flush().map_err(IsoError::Write)?;
    Ok(w.pos)
}

/// Reads a whole (small) file, checking its declared length.
fn read_small(file: &mut IsoFile<'_>, max: u64) -> Result<Vec<u8>, IsoError> {
    if file.len > max {
        let reason = format!("it is {} bytes; a BIOS boot image above {max} bytes is not isolinux.bin", file.len);
        return Err(IsoError::BadIsolinux { path: file.path.into(), reason });
    }
    let mut buf = Vec::new();
    copy_exact(file, &mut buf)?;
    Ok(buf)
}

/// Copies exactly `file.len` bytes of its data to `out`, and checks that is all the data there is.
fn copy_exact(file: &mut IsoFile<'_>, out: &mut dyn Write) -> Result<(), IsoError> {
    let read_error = |source| IsoError::Read { path: file.path.to_owned(), source };
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < file.len {
        let want = usize::try_from(file.len - done).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match file.data.read(&mut buf[..want]) {
            Ok(0) => return Err(IsoError::ShortFile { path: file.path.into(), expected: file.len, got: done }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        out.write_all(&buf[..n]).map_err(IsoError::Write)?;
        done += n as u64;
    }
    loop {
        match file.data.read(&mut buf[..1]) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(IsoError::LongFile { path: file.path.into(), expected: file.len }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        }
    }
}

/// The output, with the position the layout is checked against.
struct Emitter<'a> {
    out: &'a mut dyn Write,
    pos: u64,
}

impl Write for Emitter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Emitter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), IsoError> {
        self.write_all(bytes).map_err(IsoError::Write)
    }

    /// Zero-fills up to byte `offset`; being past it would mean the layout and the writing disagree.
    fn pad_to(&mut self, offset: u64) -> Result<(), IsoError> {
        if self.pos > offset {
            let msg = format!("internal layout error: at byte {} but the next piece starts at {offset}", self.pos);
            return Err(IsoError::Write(io::Error::other(msg)));
        }
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        while self.pos < offset {
            let n = usize::try_from(offset - self.pos).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
            self.put(&ZEROS[..n])?;
        }
        Ok(())
    }

    /// Pads to the start of sector `lba`.
    fn at(&mut self, lba: u32) -> Result<(), IsoError> {
        self.pad_to(u64::from(lba) * SECTOR_U64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
