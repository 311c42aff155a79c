//! The raw GPT disk: an EFI System Partition (FAT32) holding the UKI as `\EFI\BOOT\BOOTX64.EFI`, the removable-
//! media path every UEFI firmware boots (UEFI 2.10 §3.5.1.1). Written sparse: only the GPT, the FAT metadata and
//! the UKI's bytes are stored.

use std::fs::File;

use anyhow::{Context, Result};
use clay_fat::{FatLayout, FatOptions, Window};
use clay_gpt::{Guid, Layout, PartitionSpec};

/// Where UEFI firmware looks for a bootloader on removable media (UEFI 2.10 §3.5.1.1, x64).
pub const ESP_BOOT_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// Free space left in the ESP beyond one UKI: room for a second UKI of the same size (an update, a signed copy)
/// plus this much. Free FAT space is never written, so it costs nothing in the sparse image.
const ESP_EXTRA_HEADROOM: u64 = 32 << 20;

/// What the raw disk holds and where.
pub struct DiskPlan {
    pub layout: Layout,
    pub disk_guid: Guid,
    pub fat: FatOptions,
}

/// Lays out the disk for a UKI of `uki_len` bytes; `min_size` is `--size`.
pub fn plan(uki_len: u64, seed: &[u8; 16], epoch: Option<i64>, min_size: Option<u64>) -> Result<DiskPlan> {
    let headroom = uki_len.saturating_add(ESP_EXTRA_HEADROOM);
    let esp_size = clay_fat::fat_size_for(&[(ESP_BOOT_PATH, uki_len)], headroom);
    let esp = PartitionSpec {
        type_guid: clay_gpt::types::ESP,
        guid: Guid::from_seed(seed, "esp"),
        name: "ESP".into(),
        size: esp_size,
        attributes: 0,
    };
    let layout = clay_gpt::plan(vec![esp], min_size)?;
    Ok(DiskPlan {
        layout,
        disk_guid: Guid::from_seed(seed, "disk"),
        fat: esp_fat_options(seed, "esp-volume-id", epoch),
    })
}

/// The FAT options of an ESP: label `ESP`, every time `epoch`, and a volume ID derived from `seed` and `id_label`
/// (different labels for different volumes of one build, e.g. the disk's ESP and the ISO's).
pub fn esp_fat_options(seed: &[u8; 16], id_label: &str, epoch: Option<i64>) -> FatOptions {
    let volume = Guid::from_seed(seed, id_label).0;
    FatOptions {
        volume_id: u32::from_le_bytes([volume[0], volume[1], volume[2], volume[3]]),
        label: "ESP".into(),
        mtime: epoch.unwrap_or(0),
    }
}

/// Writes the planned disk into `file` (an empty file): the GPT, the FAT metadata, and the UKI's bytes copied in
/// the kernel from `uki_file` (the .efi output or a temporary file) to where the FAT layout puts them.
pub fn write(file: &mut File, plan: &DiskPlan, uki_file: &File, uki_len: u64, name: &str) -> Result<()> {
    let write_err = || format!("cannot write `{name}`");
    file.set_len(plan.layout.disk_size).with_context(write_err)?;
    let esp = &plan.layout.partitions[0];
    let fat = FatLayout::plan(esp.len(), &[(ESP_BOOT_PATH, uki_len)], &plan.fat).with_context(write_err)?;
    let mut window = Window::new(&mut *file, esp.offset(), esp.len()).with_context(write_err)?;
    fat.write_metadata(&mut window).with_context(write_err)?;
    let at = fat.file_offset(0).context("internal error: the ESP has no room for the UKI")?;
    copy_range(uki_file, 0, file, esp.offset() + at, uki_len).with_context(write_err)?;
    clay_gpt::write_gpt(file, &plan.layout, plan.disk_guid, None).with_context(write_err)?;
    Ok(())
}

/// Copies `len` bytes between two files at explicit offsets, in the kernel when it can (`copy_file_range(2)`, a
/// reflink on filesystems that share extents), else through a buffer. Neither file's position is used or moved.
pub fn copy_range(from: &File, mut from_at: u64, to: &File, mut to_at: u64, mut len: u64) -> std::io::Result<()> {
    while len > 0 {
        let chunk = usize::try_from(len.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(from, Some(&mut from_at), to, Some(&mut to_at), chunk) {
            Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the source ended early")),
            Ok(n) => len -= n as u64,
            // Not supported here (another filesystem, an old kernel): copy through user space instead.
            Err(_) => return copy_range_buffered(from, from_at, to, to_at, len),
        }
    }
    Ok(())
}

fn copy_range_buffered(from: &File, mut from_at: u64, to: &File, mut to_at: u64, mut len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    while len > 0 {
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
        from.read_exact_at(&mut buf[..n], from_at)?;
        to.write_all_at(&buf[..n], to_at)?;
        (from_at, to_at, len) = (from_at + n as u64, to_at + n as u64, len - n as u64);
    }
    Ok(())
}
