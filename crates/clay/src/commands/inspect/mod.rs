//! `clay inspect`: what is inside an image.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use clay_pe::{PeInfo, SectionInfo};
use serde::Serialize;

use super::build::human;

mod root;

/// PE headers always fit in the first 64 KiB of an image.
const HEADER_PREFIX: u64 = 64 * 1024;
/// Text sections are shown whole up to this size.
const MAX_TEXT_SECTION: u32 = 64 * 1024;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image to inspect: a Unified Kernel Image (.efi), an ISO, a GPT disk or a VM disk image.
    pub image: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `clay inspect` found: a UKI, a disk, or a VM disk image.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Inspected {
    Uki(Report),
    Iso(IsoReport),
    Disk(DiskReport),
    VmDisk(VmReport),
}

#[derive(Debug, Serialize)]
struct IsoReport {
    path: String,
    kind: &'static str,
    size: u64,
    volume_id: String,
    joliet: bool,
    boot_entries: Vec<BootEntryReport>,
    /// The system area's MBR and GPT, which make the same file boot as a disk (USB stick).
    hybrid_mbr: bool,
    hybrid_gpt: bool,
    /// The partitions the hybrid GPT describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<DiskReport>,
}

#[derive(Debug, Serialize)]
struct BootEntryReport {
    platform: String,
    bootable: bool,
    emulation: &'static str,
    /// The boot image's first 2048-byte sector.
    sector: u32,
}

#[derive(Debug, Serialize)]
struct DiskReport {
    path: String,
    kind: &'static str,
    size: u64,
    disk_guid: String,
    partitions: Vec<PartitionReport>,
    /// The root model of the UKI on the ESP.
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<root::RootReport>,
}

#[derive(Debug, Serialize)]
struct PartitionReport {
    number: u32,
    name: String,
    type_guid: String,
    type_name: &'static str,
    guid: String,
    offset: u64,
    size: u64,
    /// Files of a FAT partition (the ESP), with their sizes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileReport>,
}

#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    size: u64,
    /// For an EFI executable on the ESP (the UKI): who signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    signatures: Option<Vec<SignatureReport>>,
}

#[derive(Debug, Serialize)]
struct VmReport {
    path: String,
    kind: &'static str,
    format: String,
    size: u64,
    virtual_size: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    path: String,
    kind: &'static str,
    size: u64,
    machine: &'static str,
    os: Option<String>,
    os_release: Option<String>,
    kernel_release: Option<String>,
    cmdline: Option<String>,
    initrd_compression: Option<&'static str>,
    signed: bool,
    /// Who signed the image (Authenticode), and whether the image still matches each signature.
    signatures: Vec<SignatureReport>,
    /// What clay-init does with this UKI's initramfs: the root model, modules, data partition.
    root: root::RootReport,
    sections: Vec<Section>,
}

#[derive(Debug, Serialize)]
struct SignatureReport {
    subject: Option<String>,
    issuer: String,
    digest_algorithm: String,
    /// `None` when the digest algorithm is not one clay checks (SHA-256).
    digest_matches: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Section {
    name: String,
    size: u32,
    virtual_address: u32,
    file_offset: u32,
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let path = &args.image;
    let file = File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let size = file.metadata()?.len();
    let mut head = Vec::new();
    (&file).take(HEADER_PREFIX).read_to_end(&mut head)?;
    let inspected = if head.starts_with(PE_DOS_MAGIC) {
        Inspected::Uki(inspect_uki(path, &file, &head, size)?)
    } else if head.get(ISO_ID_OFFSET..ISO_ID_OFFSET + 5) == Some(ISO_STANDARD_ID) {
        Inspected::Iso(inspect_iso(path, &file, size)?)
    } else if head.get(GPT_HEADER_OFFSET..GPT_HEADER_OFFSET + 8) == Some(GPT_SIGNATURE) {
        Inspected::Disk(inspect_disk(path, &file, size)?)
    } else if let Some(vm) = identify_vm(&file, size)? {
        Inspected::VmDisk(VmReport { path: path.display().to_string(), kind: "VM disk image", ..vm })
    } else {
        bail!("`{}` is not an image clay knows: not a UKI, an ISO, a GPT disk or a VM disk image", path.display())
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&inspected)?);
    } else {
        match &inspected {
            Inspected::Uki(r) => print_text(r),
            Inspected::Iso(r) => print_iso(r),
            Inspected::Disk(r) => print_disk(r),
            Inspected::VmDisk(r) => {
                println!("{}: {} image, {} ({} virtual)", r.path, r.format, human(r.size), human(r.virtual_size))
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "MZ": the DOS header every PE image starts with (PE/COFF spec, "MS-DOS Stub").
const PE_DOS_MAGIC: &[u8] = b"MZ";
/// The GPT header's signature at LBA 1 (UEFI 2.10 §5.3.2).
const GPT_SIGNATURE: &[u8] = b"EFI PART";
const GPT_HEADER_OFFSET: usize = 512;
/// ECMA-119 §8.1: the first volume descriptor (sector 16) starts with its type and "CD001".
const ISO_STANDARD_ID: &[u8] = b"CD001";
const ISO_ID_OFFSET: usize = 16 * 2048 + 1;

fn inspect_iso(path: &Path, file: &File, size: u64) -> Result<IsoReport> {
    let mut reader = std::io::BufReader::new(file);
    let info = clay_iso::read_iso_info(&mut reader)
        .with_context(|| format!("`{}` is a damaged ISO 9660 image", path.display()))?;
    let boot_entries = info
        .boot_entries
        .iter()
        .map(|e| BootEntryReport {
            platform: match e.platform {
                0x00 => "BIOS".into(),
                0xef => "UEFI".into(),
                other => format!("platform {other:#04x}"),
            },
            bootable: e.bootable,
            emulation: match e.media_type {
                0 => "no emulation",
                1..=3 => "floppy emulation",
                4 => "hard disk emulation",
                _ => "unknown emulation",
            },
            sector: e.load_rba,
        })
        .collect();
    let disk = if info.gpt { Some(inspect_disk(path, file, size)?) } else { None };
    Ok(IsoReport {
        path: path.display().to_string(),
        kind: "ISO 9660 image",
        size,
        volume_id: info.volume_id,
        joliet: info.joliet,
        boot_entries,
        hybrid_mbr: info.mbr,
        hybrid_gpt: info.gpt,
        disk,
    })
}

fn print_iso(r: &IsoReport) {
    let joliet = if r.joliet { ", Joliet" } else { "" };
    println!("{}: {}, {}, volume {}{joliet}", r.path, r.kind, human(r.size), r.volume_id);
    for e in &r.boot_entries {
        let bootable = if e.bootable { "" } else { ", not bootable" };
        println!("  El Torito {} entry ({}{bootable}) at sector {}", e.platform, e.emulation, e.sector);
    }
    match (r.hybrid_mbr, r.hybrid_gpt) {
        (true, true) => println!("  hybrid: MBR and GPT, boots as a disk too"),
        (true, false) => println!("  hybrid: MBR, boots as a disk too"),
        _ => {}
    }
    if let Some(disk) = &r.disk {
        print_partitions(disk);
    }
}

fn inspect_disk(path: &Path, file: &File, size: u64) -> Result<DiskReport> {
    let mut first = vec![0u8; clay_gpt::READ_LEN];
    file.read_exact_at(&mut first, 0).with_context(|| format!("cannot read `{}`", path.display()))?;
    let table = clay_gpt::read_gpt(&first, size).with_context(|| format!("`{}` has a damaged GPT", path.display()))?;
    let mut partitions = Vec::new();
    for p in &table.partitions {
        let files = if p.type_guid == clay_gpt::types::ESP {
            let mut window = clay_fat::Window::new(file, p.offset(), p.len())?;
            let listed = clay_fat::list_fat(&mut window).unwrap_or_default();
            listed
                .into_iter()
                .map(|(path, size)| {
                    let signatures = efi_signatures(file, p.offset(), p.len(), &path);
                    FileReport { path, size, signatures }
                })
                .collect()
        } else {
            Vec::new()
        };
        partitions.push(PartitionReport {
            number: p.number,
            name: p.name.clone(),
            type_guid: p.type_guid.to_string(),
            type_name: type_name(p.type_guid),
            guid: p.guid.to_string(),
            offset: p.offset(),
            size: p.len(),
            files,
        });
    }
    let disk_guid = table.disk_guid.to_string();
    let mut root = table
        .partitions
        .iter()
        .filter(|p| p.type_guid == clay_gpt::types::ESP)
        .find_map(|p| esp_uki_root(file, p.offset(), p.len()));
    if let Some(r) = root.as_mut() {
        let guids: Vec<_> = table.partitions.iter().map(|p| (p.type_guid, p.guid)).collect();
        root::check_partitions(r, &guids);
    }
    Ok(DiskReport { path: path.display().to_string(), kind: "GPT disk", size, disk_guid, partitions, root })
}

/// The root model of the UKI at the ESP's removable-media path, when it is stored in one piece.
fn esp_uki_root(file: &File, offset: u64, len: u64) -> Option<root::RootReport> {
    let mut volume = clay_fat::Window::new(file, offset, len).ok()?;
    let extents = clay_fat::file_extents(&mut volume, "EFI/BOOT/BOOTX64.EFI").ok()?;
    let [extent] = extents.extents.as_slice() else { return None };
    let base = offset + extent.offset;
    let mut head = vec![0u8; usize::try_from(HEADER_PREFIX.min(extent.len)).ok()?];
    file.read_exact_at(&mut head, base).ok()?;
    let info = clay_pe::read_sections(&head).ok()?;
    let cmdline = section(&info, ".cmdline").and_then(|s| {
        let mut bytes = vec![0u8; usize::try_from(s.virtual_size.min(MAX_TEXT_SECTION)).ok()?];
        file.read_exact_at(&mut bytes, base + u64::from(s.raw_offset)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    });
    let initrd = section(&info, ".initrd")?;
    let plan = root::plan_in(file, base + u64::from(initrd.raw_offset), u64::from(initrd.virtual_size));
    Some(root::report(plan, cmdline.as_deref()))
}

/// The signatures of an `.EFI` file on a FAT partition, when it is a readable PE image stored in one piece.
fn efi_signatures(file: &File, offset: u64, len: u64, path: &str) -> Option<Vec<SignatureReport>> {
    if !path.to_ascii_lowercase().ends_with(".efi") {
        return None;
    }
    let mut volume = clay_fat::Window::new(file, offset, len).ok()?;
    let extents = clay_fat::file_extents(&mut volume, path).ok()?;
    let [extent] = extents.extents.as_slice() else { return None };
    let mut image = clay_fat::Window::new(file, offset + extent.offset, extent.len).ok()?;
    let found = clay_authenticode::signatures(&mut image).ok()?;
    Some(found.into_iter().map(signature_report).collect())
}

fn signature_report(s: clay_authenticode::SignatureInfo) -> SignatureReport {
    SignatureReport {
        subject: s.subject,
        issuer: s.issuer,
        digest_algorithm: s.digest_algorithm,
        digest_matches: s.digest_matches,
    }
}

fn type_name(guid: clay_gpt::Guid) -> &'static str {
    use clay_gpt::types;
    match guid {
        g if g == types::ESP => "EFI System Partition",
        g if g == types::ROOT_X86_64 => "root (x86-64)",
        g if g == types::ROOT_VERITY_X86_64 => "root verity (x86-64)",
        g if g == types::LINUX_DATA => "Linux data",
        g if g == types::BIOS_BOOT => "BIOS boot",
        g if g == types::XBOOTLDR => "XBOOTLDR",
        _ => "unknown",
    }
}

fn identify_vm(file: &File, size: u64) -> Result<Option<VmReport>> {
    let head_len = clay_vdisk::IDENTIFY_HEAD_LEN.min(usize::try_from(size).unwrap_or(usize::MAX));
    let mut head = vec![0u8; head_len];
    file.read_exact_at(&mut head, 0)?;
    let tail_len = clay_vdisk::IDENTIFY_TAIL_LEN.min(usize::try_from(size).unwrap_or(usize::MAX));
    let mut tail = vec![0u8; tail_len];
    file.read_exact_at(&mut tail, size - tail_len as u64)?;
    Ok(clay_vdisk::identify(&head, &tail, size).map(|(format, virtual_size)| VmReport {
        path: String::new(),
        kind: "",
        format: format.to_string(),
        size,
        virtual_size,
    }))
}

fn print_disk(r: &DiskReport) {
    println!("{}: {}, {}, disk GUID {}", r.path, r.kind, human(r.size), r.disk_guid);
    print_partitions(r);
    if let Some(root) = &r.root {
        root::print(root);
    }
}

fn print_partitions(r: &DiskReport) {
    for p in &r.partitions {
        println!(
            "  {} {:<8} {:<22} {:>10} at {:#x}  {}",
            p.number,
            p.name,
            p.type_name,
            human(p.size),
            p.offset,
            p.guid
        );
        for f in &p.files {
            let signed = match f.signatures.as_deref() {
                None => String::new(),
                Some([]) => ", unsigned".to_owned(),
                Some(sigs) => sigs
                    .iter()
                    .map(|s| {
                        let matches = if s.digest_matches == Some(false) { ", NOT matching" } else { "" };
                        format!(", signed by `{}`{matches}", s.subject.as_deref().unwrap_or("an unknown signer"))
                    })
                    .collect(),
            };
            println!("      {} ({}{signed})", f.path, human(f.size));
        }
    }
}

fn inspect_uki(path: &Path, file: &File, head: &[u8], size: u64) -> Result<Report> {
    let info: PeInfo =
        clay_pe::read_sections(head).with_context(|| format!("`{}` is not a Unified Kernel Image", path.display()))?;
    let text = |name: &str| -> Result<Option<String>> {
        match section(&info, name) {
            Some(s) => Ok(Some(String::from_utf8_lossy(&read_section(file, s, MAX_TEXT_SECTION)?).into_owned())),
            None => Ok(None),
        }
    };
    let os_release = text(".osrel")?;
    let os =
        os_release.as_deref().and_then(|r| os_release_field(r, "PRETTY_NAME").or_else(|| os_release_field(r, "NAME")));
    let mut kernel_release = text(".uname")?.map(|s| s.trim().to_owned());
    if kernel_release.is_none() {
        if let Some(linux) = section(&info, ".linux") {
            kernel_release = clay_kernel::bzimage_release(&read_section(file, linux, 0x1000)?);
        }
    }
    let cmdline = text(".cmdline")?.map(|c| c.trim_end_matches(['\0', '\n']).to_owned());
    let plan =
        section(&info, ".initrd").and_then(|s| root::plan_in(file, u64::from(s.raw_offset), u64::from(s.virtual_size)));
    let root = root::report(plan, cmdline.as_deref());
    let initrd_compression = match section(&info, ".initrd") {
        Some(s) => {
            let mut magic = [0u8; 6];
            file.read_exact_at(&mut magic, u64::from(s.raw_offset)).context("cannot read the .initrd section")?;
            Some(compression_name(&magic))
        }
        None => None,
    };
    Ok(Report {
        path: path.display().to_string(),
        kind: if section(&info, ".linux").is_some() { "Unified Kernel Image" } else { "EFI application" },
        size,
        machine: match info.machine {
            clay_pe::MACHINE_X86_64 => "x86-64",
            clay_pe::MACHINE_AARCH64 => "aarch64",
            _ => "unknown",
        },
        os,
        os_release,
        kernel_release,
        cmdline,
        initrd_compression,
        signed: info.certificate_table.is_some_and(|(_, len)| len > 0),
        signatures: clay_authenticode::signatures(&mut std::io::BufReader::new(file))
            .map(|found| found.into_iter().map(signature_report).collect())
            .unwrap_or_default(),
        root,
        sections: info
            .sections
            .iter()
            .map(|s| Section {
                name: s.name.clone(),
                size: s.virtual_size,
                virtual_address: s.virtual_address,
                file_offset: s.raw_offset,
            })
            .collect(),
    })
}

fn section<'a>(info: &'a PeInfo, name: &str) -> Option<&'a SectionInfo> {
    info.sections.iter().find(|s| s.name == name)
}

/// Up to `max` bytes of a section's data (its virtual size, not the padded raw size).
fn read_section(file: &File, s: &SectionInfo, max: u32) -> Result<Vec<u8>> {
    let len = s.virtual_size.min(s.raw_size).min(max);
    let mut buf = vec![0u8; usize::try_from(len)?];
    file.read_exact_at(&mut buf, u64::from(s.raw_offset)).with_context(|| format!("cannot read section {}", s.name))?;
    Ok(buf)
}

fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(|v| v.trim_matches(['"', '\'']).to_owned())
}

fn compression_name(magic: &[u8; 6]) -> &'static str {
    match magic {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        [0x1f, 0x8b, ..] => "gzip",
        [0xfd, b'7', b'z', b'X', b'Z', 0] => "xz",
        [0x02, 0x21, 0x4c, 0x18, ..] => "lz4",
        [b'0', b'7', b'0', b'7', b'0', b'1' | b'2'] => "none (or early microcode first)",
        _ => "unknown",
    }
}

fn print_text(r: &Report) {
    println!("{}: {}, {}, {}", r.path, r.kind, human(r.size), r.machine);
    let show = |label: &str, value: &Option<String>| {
        if let Some(v) = value {
            println!("  {label:<10} {v}");
        }
    };
    show("OS:", &r.os);
    show("kernel:", &r.kernel_release);
    show("cmdline:", &r.cmdline);
    show("initrd:", &r.initrd_compression.map(str::to_owned));
    root::print(&r.root);
    if r.signatures.is_empty() {
        println!("  {:<10} {}", "signed:", if r.signed { "yes (unreadable signature)" } else { "no" });
    }
    for sig in &r.signatures {
        let who = sig.subject.as_deref().unwrap_or("an unknown signer");
        let state = match sig.digest_matches {
            Some(true) => "matches the image",
            Some(false) => "does NOT match the image",
            None => "not checked",
        };
        println!("  {:<10} by `{who}` (issuer `{}`), {} digest {state}", "signed:", sig.issuer, sig.digest_algorithm);
    }
    println!("  sections:");
    for s in &r.sections {
        println!("    {:<9} {:>10}  at {:#010x}", s.name, human(u64::from(s.size)), s.file_offset);
    }
}
