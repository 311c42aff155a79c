//! The raw GPT disk: an EFI System Partition (FAT32) holding the UKI as `\EFI\BOOT\BOOTX64.EFI`, the removable-
//! media path every UEFI firmware boots (UEFI 2.10 §3.5.1.1), and for legacy BIOS syslinux with the kernel and
//! initramfs (see `bios.rs`). Written sparse: only the GPT, the FAT metadata and the files' bytes are stored.

use std::fs::File;

use anyhow::{bail, Context, Result};
use clay_fat::{BootCode, FatLayout, FatOptions, Window};
use clay_gpt::{Guid, Layout, PartitionSpec};
use clay_tree::Content;

use super::bios::{syslinux_cfg, DiskBiosCode, INITRD, KERNEL, LDLINUX_C32, LDLINUX_SYS, SYSLINUX_CFG, SYSLINUX_DIR};

/// Where UEFI firmware looks for a bootloader on removable media (UEFI 2.10 §3.5.1.1, x64).
pub const ESP_BOOT_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// Free space left in the ESP beyond its files: room for a second copy of each (an update, a signed UKI) plus
/// this much. Free FAT space is never written, so it costs nothing in the sparse image.
const ESP_EXTRA_HEADROOM: u64 = 32 << 20;
const SECTOR: u64 = 512;

/// What the raw disk boots with: the UKI for UEFI, syslinux with the kernel and initramfs for BIOS, or both.
pub struct DiskInputs<'a> {
    /// The UKI's length; the UKI itself is written later, into the place [`DiskPlan::uki_offset`] gives.
    pub uki_len: Option<u64>,
    pub bios: Option<BiosInputs<'a>>,
    pub epoch: Option<i64>,
    /// `--size`.
    pub min_size: Option<u64>,
    /// Partitions after the ESP (the verity root and its hash tree, the data partition), with their identifiers.
    pub partitions: &'a [ExtraPartition],
}

/// A partition beside the ESP, with what goes into it (written from its start; the rest stays a hole).
#[derive(Debug, Clone)]
pub struct ExtraPartition {
    pub spec: PartitionSpec,
    pub content: Content,
}

/// What syslinux boots: the same kernel, initramfs and command line as the UKI.
pub struct BiosInputs<'a> {
    pub code: &'a DiskBiosCode,
    pub kernel: &'a Content,
    pub initrd: &'a Content,
    pub cmdline: &'a str,
}

/// Where everything goes on the disk. Identifiers (GUIDs, the volume ID) are not part of it: they derive from the
/// UKI's hash, known only once it is written, and change no position.
pub struct DiskPlan {
    pub layout: Layout,
    fat: FatOptions,
    /// The ESP's files, in the order the FAT layout places them, with their content; `None` for the UKI.
    files: Vec<(&'static str, u64, Option<Content>)>,
    /// Where each file starts, from the start of the disk.
    offsets: Vec<Option<u64>>,
    /// syslinux's `gptmbr.bin`, for a disk that boots on BIOS.
    mbr_code: Option<Vec<u8>>,
    /// The content of each partition after the ESP, in layout order.
    contents: Vec<Content>,
}

impl DiskPlan {
    /// Where the UKI's bytes go, from the start of the disk, when the disk carries one.
    pub fn uki_offset(&self) -> Option<u64> {
        let index = self.files.iter().position(|(path, _, _)| *path == ESP_BOOT_PATH)?;
        self.offsets[index]
    }
}

/// Lays out the disk: an ESP sized for its files, with room to replace each of them once.
pub fn plan(inputs: &DiskInputs<'_>) -> Result<DiskPlan> {
    let mut files: Vec<(&'static str, u64, Option<Content>)> = Vec::new();
    if let Some(len) = inputs.uki_len {
        files.push((ESP_BOOT_PATH, len, None));
    }
    let syslinux = inputs.bios.as_ref().map(|bios| &bios.code.syslinux);
    if let Some(bios) = &inputs.bios {
        // ldlinux.sys depends on where it lands: it is made once the layout is known.
        files.push((LDLINUX_SYS, bios.code.syslinux.ldlinux_sys_len(), None));
        files.push(bytes_file(LDLINUX_C32, bios.code.syslinux.ldlinux_c32().to_vec()));
        let cfg = syslinux_cfg(&format!("/{KERNEL}"), &format!("/{INITRD}"), bios.cmdline);
        files.push(bytes_file(SYSLINUX_CFG, cfg.into_bytes()));
        files.push((KERNEL, bios.kernel.len(), Some(bios.kernel.clone())));
        files.push((INITRD, bios.initrd.len(), Some(bios.initrd.clone())));
    }
    let sizes = file_sizes(&files);
    let payload: u64 = sizes.iter().map(|(_, len)| len).sum();
    let esp_size = clay_fat::fat_size_for(&sizes, payload.saturating_add(ESP_EXTRA_HEADROOM));
    let esp = PartitionSpec {
        type_guid: clay_gpt::types::ESP,
        guid: Guid::default(),
        name: "ESP".into(),
        size: esp_size,
        // gptmbr.bin boots the partition with this attribute.
        attributes: if syslinux.is_some() { clay_gpt::ATTR_LEGACY_BIOS_BOOTABLE } else { 0 },
    };
    let mut specs = vec![esp];
    specs.extend(inputs.partitions.iter().map(|p| p.spec.clone()));
    let layout = clay_gpt::plan(specs, inputs.min_size)?;
    let esp = &layout.partitions[0];
    let mut fat = esp_fat_options(&[0; 16], "esp-volume-id", inputs.epoch);
    let placed = FatLayout::plan(esp.len(), &sizes, &fat).context("cannot lay out the ESP")?;
    let offsets: Vec<Option<u64>> =
        (0..files.len()).map(|i| placed.file_offset(i).map(|at| esp.offset() + at)).collect();
    let mut mbr_code = None;
    if let (Some(bios), Some(syslinux)) = (&inputs.bios, syslinux) {
        let index = files.iter().position(|(path, _, _)| *path == LDLINUX_SYS).unwrap_or_default();
        let at = placed.file_offset(index).context("internal error: the ESP has no room for ldlinux.sys")?;
        let first = at / SECTOR;
        let sectors: Vec<u64> = (first..first + syslinux.ldlinux_sys_len() / SECTOR).collect();
        let installed = syslinux.install(&sectors, Some(SYSLINUX_DIR))?;
        files[index].2 = Some(Content::from_bytes(installed.ldlinux_sys));
        let hidden_sectors = u32::try_from(esp.first_lba)
            .context("the ESP starts beyond 2 TiB, where a BIOS boot sector cannot reach it")?;
        fat.boot = Some(BootCode { sector: installed.boot_sector, hidden_sectors });
        mbr_code = Some(bios.code.gptmbr.clone());
    }
    let contents = inputs.partitions.iter().map(|p| p.content.clone()).collect();
    Ok(DiskPlan { layout, fat, files, offsets, mbr_code, contents })
}

fn bytes_file(path: &'static str, bytes: Vec<u8>) -> (&'static str, u64, Option<Content>) {
    (path, bytes.len() as u64, Some(Content::from_bytes(bytes)))
}

fn file_sizes(files: &[(&'static str, u64, Option<Content>)]) -> Vec<(&'static str, u64)> {
    files.iter().map(|(path, len, _)| (*path, *len)).collect()
}

/// The FAT options of an ESP: label `ESP`, every time `epoch`, and a volume ID derived from `seed` and `id_label`
/// (different labels for different volumes of one build, e.g. the disk's ESP and the ISO's).
pub fn esp_fat_options(seed: &[u8; 16], id_label: &str, epoch: Option<i64>) -> FatOptions {
    let volume = Guid::from_seed(seed, id_label).0;
    FatOptions {
        volume_id: u32::from_le_bytes([volume[0], volume[1], volume[2], volume[3]]),
        label: "ESP".into(),
        mtime: epoch.unwrap_or(0),
        boot: None,
    }
}

/// Writes the planned disk into `file`: the GPT and the FAT metadata with identifiers derived from `seed`, and
/// each file's bytes where the plan puts them, copied in the kernel when they already sit in a file. `uki` is
/// copied in the same way; `None` when the caller wrote the UKI at [`DiskPlan::uki_offset`] itself.
pub fn write(file: &mut File, plan: &DiskPlan, seed: [u8; 16], uki: Option<&Content>, name: &str) -> Result<()> {
    let write_err = || format!("cannot write `{name}`");
    file.set_len(plan.layout.disk_size).with_context(write_err)?;
    let mut layout = plan.layout.clone();
    layout.partitions[0].spec.guid = Guid::from_seed(&seed, "esp");
    let esp = &layout.partitions[0];
    let fat_opts =
        FatOptions { boot: plan.fat.boot.clone(), ..esp_fat_options(&seed, "esp-volume-id", Some(plan.fat.mtime)) };
    let fat = FatLayout::plan(esp.len(), &file_sizes(&plan.files), &fat_opts).with_context(write_err)?;
    let mut window = Window::new(&mut *file, esp.offset(), esp.len()).with_context(write_err)?;
    fat.write_metadata(&mut window).with_context(write_err)?;
    for ((path, len, content), at) in plan.files.iter().zip(&plan.offsets) {
        let content = match (content, *path == ESP_BOOT_PATH) {
            (Some(content), _) => content,
            (None, true) => match uki {
                Some(uki) => uki,
                None => continue, // already in place
            },
            (None, false) => bail!("internal error: no content for `{path}` on the disk"),
        };
        let Some(at) = at else { continue }; // an empty file owns no cluster
        if content.len() != *len {
            bail!("internal error: `{path}` is {} bytes, but the disk was planned for {len}", content.len());
        }
        write_content_at(content, path, file, *at).with_context(write_err)?;
    }
    for (part, content) in layout.partitions[1..].iter().zip(&plan.contents) {
        if content.len() > part.len() {
            bail!("internal error: partition `{}` is smaller than its content", part.spec.name);
        }
        write_content_at(content, &part.spec.name, file, part.offset()).with_context(write_err)?;
    }
    clay_gpt::write_gpt(file, &layout, Guid::from_seed(&seed, "disk"), plan.mbr_code.as_deref())
        .with_context(write_err)?;
    Ok(())
}

/// Puts `content` at byte `at` of `out`: a kernel-side copy for a range of a file, a plain write otherwise.
fn write_content_at(content: &Content, name: &str, out: &File, at: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    match content {
        Content::Range { file, offset, len } => copy_data_ranges(file, *offset, out, at, *len)?,
        Content::Bytes(bytes) => out.write_all_at(bytes, at)?,
        Content::Host { path, len } => {
            let from = File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            copy_range(&from, 0, out, at, *len).with_context(|| format!("cannot copy `{name}`"))?
        }
        Content::Concat(parts) => {
            let mut at = at;
            for part in parts.iter() {
                write_content_at(part, name, out, at)?;
                at += part.len();
            }
        }
    }
    Ok(())
}

/// Copies `len` bytes from `from` at `from_at` to `out` at `at`, leaving the source's holes as holes: only the
/// ranges `SEEK_DATA` finds are copied, so a sparse filesystem image (the data partition) stays sparse on the disk,
/// whose own bytes are zeros until written.
fn copy_data_ranges(from: &File, from_at: u64, out: &File, at: u64, len: u64) -> std::io::Result<()> {
    use rustix::fs::SeekFrom;
    let end = from_at + len;
    let mut pos = from_at;
    while pos < end {
        let data = match rustix::fs::seek(from, SeekFrom::Data(pos)) {
            Ok(data) => data,
            // No data after `pos`: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => return Ok(()),
            // The filesystem cannot tell: copy everything.
            Err(_) => return copy_range(from, pos, out, at + (pos - from_at), end - pos),
        };
        if data >= end {
            return Ok(());
        }
        let hole = rustix::fs::seek(from, SeekFrom::Hole(data)).map_or(end, |h| h.min(end));
        copy_range(from, data, out, at + (data - from_at), hole - data)?;
        pos = hole;
    }
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
