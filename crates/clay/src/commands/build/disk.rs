//! The raw GPT disk: an EFI System Partition (FAT32) holding the UKI as `\EFI\BOOT\BOOTX64.EFI`, the removable-
//! media path every UEFI firmware boots (UEFI 2.10 §3.5.1.1). Written sparse: only the GPT, the FAT metadata and
//! the UKI's bytes are stored.

use std::fs::File;

use anyhow::{Context, Result};
use clay_fat::{FatFile, FatOptions, Window};
use clay_gpt::{Guid, Layout, PartitionSpec};
use clay_tree::Content;

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
    let volume = Guid::from_seed(seed, "esp-volume-id").0;
    let fat = FatOptions {
        volume_id: u32::from_le_bytes([volume[0], volume[1], volume[2], volume[3]]),
        label: "ESP".into(),
        mtime: epoch.unwrap_or(0),
    };
    Ok(DiskPlan { layout, disk_guid: Guid::from_seed(seed, "disk"), fat })
}

/// Writes the planned disk into `file` (an empty file): GPT first and last, the FAT volume and the UKI between.
pub fn write(file: &mut File, plan: &DiskPlan, uki: &Content, name: &str) -> Result<()> {
    let write_err = || format!("cannot write `{name}`");
    file.set_len(plan.layout.disk_size).with_context(write_err)?;
    let esp = &plan.layout.partitions[0];
    let mut window = Window::new(&mut *file, esp.offset(), esp.len()).with_context(write_err)?;
    let mut data = std::io::BufReader::with_capacity(1 << 20, uki.reader("the UKI")?);
    let mut files = [FatFile { path: ESP_BOOT_PATH, len: uki.len(), data: &mut data }];
    clay_fat::write_fat(&mut window, esp.len(), &mut files, &plan.fat).with_context(write_err)?;
    clay_gpt::write_gpt(file, &plan.layout, plan.disk_guid, None).with_context(write_err)?;
    Ok(())
}
