//! `clay build`: root filesystem → tree → initramfs → Unified Kernel Image.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use clay_compress::Compression;
use clay_kernel::Kernel;
use clay_source::SourceSpec;
use clay_tree::{Content, Kind, Tree};
use clay_vdisk::VmFormat;

mod ahead;
mod bios;
mod containerdisk;
mod containerfile;
pub(crate) mod disk;
mod hashing;
mod iso;
pub(crate) mod root;
pub(crate) mod sign;
mod vm;

use crate::commands::registry::RegistryArgs;
use crate::output::{output_path, PendingOutput, ScratchDir};
use hashing::Hashing;

/// Where a systemd EFI stub lives in an image or on the host (systemd's `ukify` looks in the same place).
const STUB_PATH: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// Where the command line is taken from when `--cmdline` is not given, in order (DESIGN.md §2).
const CMDLINE_FILES: &[&str] = &["/etc/kernel/cmdline", "/boot/cmdline"];
/// The command line when neither `--cmdline` nor the image give one: the kernel's console on the first
/// screen and the first serial port, the last one named becoming `/dev/console`.
pub const DEFAULT_CMDLINE: &str = "console=tty0 console=ttyS0";
/// os-release locations (os-release(5)): `/etc` first, then the vendor copy.
const OS_RELEASE_FILES: &[&str] = &["/etc/os-release", "/usr/lib/os-release"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A Unified Kernel Image (`.efi`): stub, kernel, command line and the whole OS as initramfs.
    Efi,
    /// The kernel, the initramfs and the command line as separate files (`.vmlinuz`, `.initrd`, `.cmdline`), for
    /// PXE/iPXE and direct kernel boot.
    Kernel,
    /// A hybrid ISO (`.iso`): boots as a CD-ROM or written raw to a USB stick, on UEFI (the UKI) and, with
    /// `--firmware bios|hybrid`, on legacy BIOS (isolinux).
    Iso,
    /// A raw GPT disk (`.img`) with an EFI System Partition holding the UKI and, with `--firmware bios|hybrid`,
    /// syslinux for legacy BIOS; sparse; `dd` it to a USB stick.
    Raw,
    /// The raw disk as a qcow2 image (QEMU, libvirt, OpenStack).
    Qcow2,
    /// The raw disk as a VMDK (monolithicSparse: VMware, VirtualBox).
    Vmdk,
    /// The raw disk as a VHDX (Hyper-V).
    Vhdx,
    /// The raw disk as a VDI (VirtualBox).
    Vdi,
    /// The raw disk as a dynamic VHD (Hyper-V, Azure, Virtual PC).
    Vhd,
    /// The disk as a KubeVirt containerDisk (`.containerdisk.tar`): an OCI image archive whose one layer holds
    /// `disk/disk.qcow2`; push it with `clay push`.
    Containerdisk,
    /// The root filesystem as a tarball (`.tar`).
    Tar,
    /// The root filesystem as a squashfs image (`.squashfs`), compressed with `--compression`.
    Squashfs,
    /// The root filesystem as an EROFS image (`.erofs`), uncompressed.
    Erofs,
}

impl Format {
    /// The extensions of the files this format writes, each appended to `-o` (DESIGN.md §2).
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Efi => &["efi"],
            Format::Kernel => &["vmlinuz", "initrd", "cmdline"],
            Format::Iso => &["iso"],
            Format::Raw => &["img"],
            Format::Qcow2 => &["qcow2"],
            Format::Vmdk => &["vmdk"],
            Format::Vhdx => &["vhdx"],
            Format::Vdi => &["vdi"],
            Format::Vhd => &["vhd"],
            Format::Containerdisk => &[containerdisk::EXTENSION],
            Format::Tar => &["tar"],
            Format::Squashfs => &["squashfs"],
            Format::Erofs => &["erofs"],
        }
    }

    /// The VM disk container of this format, if it is one.
    fn vm_format(self) -> Option<VmFormat> {
        match self {
            Format::Qcow2 => Some(VmFormat::Qcow2),
            Format::Vmdk => Some(VmFormat::Vmdk),
            Format::Vhdx => Some(VmFormat::Vhdx),
            Format::Vdi => Some(VmFormat::Vdi),
            Format::Vhd => Some(VmFormat::Vhd),
            _ => None,
        }
    }

    /// Whether the format holds a disk (and so a UKI inside it).
    fn is_disk(self) -> bool {
        matches!(self, Format::Raw | Format::Containerdisk) || self.vm_format().is_some()
    }

    /// Whether the format boots, and so needs a kernel and an initramfs.
    fn boots(self) -> bool {
        !matches!(self, Format::Tar | Format::Squashfs | Format::Erofs)
    }
}

/// Which firmware the images boot on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Firmware {
    /// UEFI only.
    Uefi,
    /// Legacy BIOS only.
    Bios,
    /// Both.
    Hybrid,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The root filesystem: a directory, `dir:PATH`, `tar:PATH` (plain, gzip, zstd or xz), or a container image:
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF|:@INDEX]` (podman/docker save; REF or
    /// INDEX picks one image of several) or `docker://REF` (a registry).
    #[arg(required_unless_present = "containerfile", conflicts_with = "containerfile")]
    pub source: Option<String>,
    /// Build the image from this Containerfile (or Dockerfile) with podman, buildah or docker, whichever is
    /// installed (CLAY_CONTAINER_ENGINE picks one), then make the OS of it; instead of SOURCE.
    #[arg(long, value_name = "FILE")]
    pub containerfile: Option<PathBuf>,
    /// The build stage to use from a multi-stage Containerfile.
    #[arg(long, requires = "containerfile")]
    pub target: Option<String>,
    /// The build context [default: the Containerfile's directory].
    #[arg(long, value_name = "DIR", requires = "containerfile")]
    pub context: Option<PathBuf>,
    /// What to build; repeat for several.
    #[arg(long = "format", short = 'f', value_enum, default_value = "efi")]
    pub formats: Vec<Format>,
    /// Output path; the format's extension is appended unless it is already there.
    #[arg(short = 'o', long = "output", default_value = "claylinux")]
    pub output: PathBuf,
    /// Kernel command line [default: the image's /etc/kernel/cmdline, else /boot/cmdline, else
    /// "console=tty0 console=ttyS0"].
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Compression: zstd, gzip, xz, lz4 or none, optionally with a level (zstd:19) [default: zstd:3 on every
    /// core]. Of the squashfs root with --root compressed|verity and --format squashfs (zstd, xz or gzip), of the
    /// initramfs with --root ram.
    #[arg(long, value_parser = parse_compression)]
    pub compression: Option<Compression>,
    /// Where the OS runs from: compressed (a squashfs image in the initramfs under a tmpfs overlay), ram (the
    /// initramfs, uncompressed) or verity (the disk's root partition checked by dm-verity, disk formats only)
    /// [default: compressed, or ram when the image's kernel cannot mount a squashfs through a loop device].
    #[arg(long, value_enum)]
    pub root: Option<root::RootModel>,
    /// The filesystem of a compressed or verity root.
    #[arg(long, value_enum, default_value = "squashfs")]
    pub root_fs: root::RootFs,
    /// Add a data partition of this size (e.g. 512M, 2G) to the disk: ext4, seeded with the image's
    /// --data-mount directory and mounted read-write there at boot, so what the system writes there persists.
    #[arg(long, value_parser = parse_size)]
    pub data_size: Option<u64>,
    /// Where the data partition is mounted.
    #[arg(long, default_value = "/var", requires = "data_size")]
    pub data_mount: String,
    /// The kernel inside the image, when it holds several (e.g. /boot/vmlinuz-lts).
    #[arg(long)]
    pub kernel: Option<String>,
    /// The firmware the disks and ISOs boot on: uefi (the UKI), bios (syslinux or isolinux loading the same
    /// kernel, initramfs and command line), or hybrid (both).
    #[arg(long, value_enum, default_value = "uefi")]
    pub firmware: Firmware,
    /// Disk size, at least what the content needs: e.g. 512M, 2G (binary units). Default: just enough.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    /// The systemd EFI stub to use [default: the image's, else this machine's, at
    /// /usr/lib/systemd/boot/efi/linuxx64.efi.stub].
    #[arg(long)]
    pub stub: Option<PathBuf>,
    /// Sign for Secure Boot with this private key (PEM: PKCS#1, PKCS#8, or encrypted PKCS#8 with the passphrase in
    /// CLAY_SIGN_PASSPHRASE or asked on the terminal): the UKI, and first the kernel inside it when unsigned.
    #[arg(long, requires = "sign_cert")]
    pub sign_key: Option<PathBuf>,
    /// The certificate of --sign-key (PEM or DER).
    #[arg(long, requires = "sign_key")]
    pub sign_cert: Option<PathBuf>,
    /// Pick this platform from a multi-platform image, as OS/ARCH[/VARIANT] [default: the host's].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    // For docker:// sources: how to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Sizes as DESIGN.md §2 writes them: a number with an optional binary unit, `512M`, `2G`, `1T`, `4096`.
fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let shift = match unit.trim_end_matches("iB").trim_end_matches('B').to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("`{s}` is not a size; write it like 512M or 2G")),
    };
    let value: u64 = digits.parse().map_err(|_| format!("`{s}` is not a size; write it like 512M or 2G"))?;
    value.checked_mul(1 << shift).ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse().map_err(|e: clay_compress::ParseCompressionError| e.to_string())
}

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let epoch = source_date_epoch()?;
    // A Containerfile is built and saved first; the saved archive is then read like any image source.
    let built = match &args.containerfile {
        Some(file) => Some(containerfile::build(&containerfile::ContainerfileBuild {
            file,
            target: args.target.as_deref(),
            context: args.context.as_deref(),
            platform: args.platform.as_deref(),
        })?),
        None => None,
    };
    let spec: SourceSpec = match (&built, &args.source) {
        (Some(built), _) => built.spec.clone(),
        (None, Some(source)) => source.parse()?,
        (None, None) => bail!("give a SOURCE (a directory, tar:FILE, an image) or --containerfile FILE"),
    };
    let mut formats: Vec<Format> = Vec::new();
    for f in &args.formats {
        if !formats.contains(f) {
            formats.push(*f);
        }
    }

    // Keys are checked before any work, so a wrong passphrase or an expired certificate fails in a second.
    let signer = sign::from_args(args.sign_key.as_ref(), args.sign_cert.as_ref())?;
    status(&format!("reading {}", spec.describe()));
    let lookahead = ahead::SquashfsAhead::start(&args, &spec, &formats);
    // A pulled image's blobs are kept here while they are read; an interrupted run removes them too.
    let scratch = match spec {
        SourceSpec::Registry { .. } => Some(ScratchDir::create("clay-pull-")?),
        _ => None,
    };
    let read_options = clay_source::ReadOptions {
        platform: args.platform.clone(),
        // registries.conf is read only for a registry's image, so that a broken one cannot stop other builds.
        registry: match spec {
            SourceSpec::Registry { .. } => args.registry.access()?,
            _ => clay_registry::Access::default(),
        },
        scratch_dir: scratch.as_ref().map(|s| s.path().to_owned()),
        lookahead: lookahead.clone().map(|l| l as Arc<dyn clay_source::Lookahead>),
        // The layers are hashed while the OS is built from them, and checked before any output is renamed.
        defer_checks: true,
    };
    let progress = crate::progress::blobs();
    let progress = progress.as_ref().map(|p| p as &dyn Fn(clay_registry::ProgressEvent));
    let source = clay_source::read_source_with_progress(&spec, &read_options, &mut |w| warn(&w.0), progress)?;
    if let Some(from) = &source.pulled_from {
        status(&format!("pulled from {from}, as registries.conf says"));
    }
    let ahead = lookahead.map_or_else(ahead::Blocks::default, |l| l.finish());
    let written = write_outputs(&args, &formats, &source.tree, signer.as_ref(), &ahead, epoch);
    // An image's layers were hashed while all of that was built: nothing is renamed into place unless they match
    // their digests, and a mismatch is the error to report, since it explains any other.
    source.checks.wait()?;
    let outputs = written?;
    // Renamed side by side: replacing an existing file can cost the filesystem real work (ext4 starts writing the
    // new file back when it replaces another), and outputs are independent.
    let committed: Vec<Result<PathBuf>> = std::thread::scope(|scope| {
        let jobs: Vec<_> =
            outputs.into_iter().flat_map(|(_, files)| files).map(|f| scope.spawn(|| f.commit())).collect();
        jobs.into_iter().map(|job| job.join().unwrap_or_else(|_| bail!("internal error: a commit panicked"))).collect()
    });
    for written in committed {
        let written = written?;
        status(&format!("wrote {} ({})", written.display(), size_of(&written)));
    }
    status(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(ExitCode::SUCCESS)
}

/// Everything after reading the source: every output written, none yet renamed into place.
fn write_outputs(
    args: &BuildArgs,
    formats: &[Format],
    tree: &Tree,
    signer: Option<&sign::Signer>,
    ahead: &ahead::Blocks,
    epoch: Option<i64>,
) -> Result<Vec<(Format, Vec<PendingOutput>)>> {
    let mut boot = if formats.iter().any(|f| f.boots()) { Some(BootInputs::find(tree, args)?) } else { None };
    let has_disk = formats.iter().any(|f| f.is_disk());
    let prepared = match boot.as_mut() {
        Some(b) => {
            let mut options = root::RootOptions {
                model: root::model(args),
                fs: args.root_fs,
                data_size: args.data_size,
                data_mount: &args.data_mount,
                compression: args.compression,
                epoch,
                has_disk,
                has_iso: formats.contains(&Format::Iso),
                ahead,
            };
            let prepared = match root::prepare(tree, &b.release, &options) {
                // The default model needs loop, squashfs and overlay; a kernel without them still boots from RAM.
                Err(err) if args.root.is_none() && err.downcast_ref::<clay_kmod::KmodError>().is_some() => {
                    let why = err.downcast_ref::<clay_kmod::KmodError>().map(ToString::to_string).unwrap_or_default();
                    warn(&format!(
                        "the default root model keeps the OS compressed in RAM, but {why}; so the OS runs from RAM \
                         uncompressed instead (--root ram)"
                    ));
                    options.model = root::RootModel::Ram;
                    root::prepare(tree, &b.release, &options)?
                }
                other => other?,
            };
            if let Some(extra) = &prepared.cmdline_extra {
                b.cmdline = format!("{} {extra}", b.cmdline).trim().to_owned();
            }
            Some(prepared)
        }
        None => None,
    };
    if let (Some(signer), Some(b)) = (&signer, boot.as_mut()) {
        let kernel = b.kernel.content.read_all(&b.kernel.path)?;
        if let Some(signed) = signer.sign_kernel(&kernel)? {
            status(&format!("signed the kernel for `{}` (it had no signature)", signer.subject()));
            b.linux = Content::from_bytes(signed);
        }
    }

    // Outputs are opened before the expensive work, so an unwritable path fails in a second, not a minute, and
    // renamed into place only once every one of them is written.
    let mut outputs: Vec<(Format, Vec<PendingOutput>)> = Vec::new();
    for &format in formats {
        let files = format.extensions().iter().map(|ext| PendingOutput::create(&output_path(&args.output, ext)));
        outputs.push((format, files.collect::<Result<_>>()?));
    }
    let initrd = match (&boot, &prepared) {
        (Some(b), Some(p)) => {
            let compression = p.initramfs_compression.or(args.compression).unwrap_or(Compression::DEFAULT);
            Some(build_initramfs(&p.initramfs_tree, &b.kernel, compression, epoch)?)
        }
        _ => None,
    };
    let partitions = prepared.as_ref().map(|p| p.partitions.as_slice()).unwrap_or_default();

    // One UKI serves the .efi output, every disk and the ISO that boot on UEFI; one raw disk serves every VM
    // format.
    let (uefi, bios) = (args.firmware != Firmware::Bios, args.firmware != Firmware::Uefi);
    let needs_uki = formats.contains(&Format::Efi) || (uefi && (has_disk || formats.contains(&Format::Iso)));
    // Disks and the ISO derive their identifiers from the UKI's hash; a UKI alone needs none, and hashing it
    // would cost a tenth of the build.
    let needs_seed = has_disk || formats.contains(&Format::Iso);
    // BIOS boot code is looked up before any output is written, so a missing package fails fast.
    let iso_bios = if bios && formats.contains(&Format::Iso) { Some(iso::BiosCode::find(tree)?) } else { None };
    let disk_bios = if bios && has_disk { Some(bios::DiskBiosCode::find(tree)?) } else { None };
    // The disk is laid out around the UKI. Unsigned, the UKI's length is known before it is written, so it goes
    // straight into the disk's ESP (saving a copy) unless there is a .efi output; signed, it grows when signed, so
    // the disk is laid out afterwards and the signed UKI copied in.
    let plan_disk = |uki_len: Option<u64>| -> Result<Option<disk::DiskPlan>> {
        let (Some(b), Some(initrd)) = (&boot, &initrd) else { return Ok(None) };
        let inputs = disk::DiskInputs {
            uki_len: if uefi { uki_len } else { None },
            bios: disk_bios.as_ref().map(|code| disk::BiosInputs {
                code,
                kernel: &b.kernel.content,
                initrd: &initrd.content,
                cmdline: &b.cmdline,
            }),
            epoch,
            min_size: args.size,
            partitions,
        };
        Ok(Some(disk::plan(&inputs)?))
    };
    // The raw disk: the .img output, or a temporary file when only VM formats were asked for.
    let open_raw = |outputs: &mut Vec<(Format, Vec<PendingOutput>)>| -> Result<(File, String)> {
        Ok(match outputs.iter_mut().find(|(f, _)| *f == Format::Raw) {
            Some((_, files)) => (files[0].file()?.try_clone()?, files[0].target().display().to_string()),
            None => (tempfile::tempfile().context("cannot create a temporary file for the disk")?, "the disk".into()),
        })
    };
    let (mut disk_plan, mut raw_file) = (None, None);
    if let (Some(b), Some(initrd), true, None) = (&boot, &initrd, has_disk, &signer) {
        disk_plan = plan_disk(if needs_uki { Some(uki_len(b, initrd)?) } else { None })?;
        raw_file = Some(open_raw(&mut outputs)?);
    }

    let mut uki_in_disk = false;
    let mut uki = match (&boot, &initrd) {
        (Some(b), Some(initrd)) if needs_uki => {
            let efi = outputs.iter_mut().find(|(f, _)| *f == Format::Efi).map(|(_, files)| &mut files[0]);
            let in_disk = disk_plan.as_ref().and_then(|p| p.uki_offset()).zip(raw_file.as_mut());
            Some(match (efi, in_disk) {
                (Some(out), _) => {
                    let name = out.target().display().to_string();
                    write_uki(out.file()?, &name, b, initrd, epoch, needs_seed)?
                }
                (None, Some((at, (file, name)))) => {
                    file.seek(SeekFrom::Start(at)).with_context(|| format!("cannot write `{name}`"))?;
                    uki_in_disk = true;
                    write_uki(file, name, b, initrd, epoch, needs_seed)?
                }
                (None, None) => {
                    let mut temp = tempfile::tempfile().context("cannot create a temporary file for the UKI")?;
                    write_uki(&mut temp, "the UKI", b, initrd, epoch, needs_seed)?
                }
            })
        }
        _ => None,
    };
    if let (Some(signer), Some(u)) = (&signer, uki.as_mut()) {
        let Content::Range { file, offset: 0, .. } = &u.content else {
            bail!("internal error: the UKI to sign does not fill its own file")
        };
        let len = signer.sign_file(file, "the UKI")?;
        status(&format!("signed the UKI for `{}`", signer.subject()));
        u.content = Content::Range { file: Arc::clone(file), offset: 0, len };
    }
    if has_disk && disk_plan.is_none() {
        disk_plan = plan_disk(uki.as_ref().map(|u| u.content.len()))?;
        raw_file = Some(open_raw(&mut outputs)?);
    }
    // Identifiers (GUIDs, volume IDs) derive from the UKI, or without one from what BIOS boots.
    let seed = match (&uki, &boot, &initrd) {
        (Some(u), _, _) => u.seed,
        (None, Some(b), Some(initrd)) => Some(bios_only_seed(b, initrd)),
        _ => None,
    };
    let raw = match (disk_plan, raw_file, seed) {
        (Some(plan), Some((mut file, name)), Some(seed)) => {
            let copy_uki = if uki_in_disk || !uefi { None } else { uki.as_ref().map(|u| &u.content) };
            disk::write(&mut file, &plan, seed, copy_uki, &name)?;
            Some((file, plan.layout.disk_size))
        }
        (Some(_), Some(_), None) => bail!("internal error: no identifiers for the disk"),
        _ => None,
    };

    // The remaining outputs only read what is shared (the tree, the UKI, the raw disk) and each writes its own
    // file, so they are written side by side: after compression, copying into them is what costs.
    let write_one = |format: Format, files: &mut Vec<PendingOutput>| -> Result<()> {
        match (format, files.as_mut_slice()) {
            (Format::Efi | Format::Raw, _) => {} // written above
            (Format::Iso, [out]) => {
                let (Some(b), Some(initrd)) = (&boot, &initrd) else { bail!("internal error: no kernel for the ISO") };
                let uki_content = match &uki {
                    Some(u) if uefi => u.content.clone(),
                    _ => Content::from_bytes(Vec::new()),
                };
                let Some(seed) = seed else { bail!("internal error: no identifiers for the ISO") };
                let inputs = iso::IsoInputs {
                    uki: &uki_content,
                    kernel: &b.kernel.content,
                    initrd: &initrd.content,
                    cmdline: &b.cmdline,
                    uefi,
                    bios: iso_bios.as_ref(),
                    seed,
                    epoch,
                };
                iso::write(out, &inputs)?;
            }
            (Format::Kernel, [vmlinuz, initramfs, cmdline]) => {
                let (Some(b), Some(initrd)) = (&boot, &initrd) else {
                    bail!("internal error: no kernel for {format:?}")
                };
                write_kernel_files(b, initrd, [vmlinuz, initramfs, cmdline])?
            }
            (Format::Squashfs | Format::Erofs, [out]) => {
                let fs = if format == Format::Squashfs { root::RootFs::Squashfs } else { root::RootFs::Erofs };
                root::write_fs_image(tree, fs, args.compression, epoch, ahead, out.file()?)?;
            }
            (Format::Tar, [tar]) => {
                let opts = clay_tarball::Options { clamp_mtime: epoch };
                let target = tar.target().display().to_string();
                let mut out = BufWriter::with_capacity(1 << 20, tar.file()?);
                let entries = clay_tarball::write_tarball(tree, &opts, &mut out)?;
                out.flush().with_context(|| format!("cannot write `{target}`"))?;
                status(&format!("tarball: {entries} entries"));
            }
            (Format::Containerdisk, [out]) => {
                let (Some((file, size)), Some(seed)) = (&raw, seed) else {
                    bail!("internal error: no raw disk for the containerDisk")
                };
                containerdisk::write(&vm::RawFile { file, size: *size }, seed, epoch, out)?;
            }
            (_, [out]) if format.vm_format().is_some() => {
                let (Some((file, size)), Some(seed), Some(vm)) = (&raw, seed, format.vm_format()) else {
                    bail!("internal error: no raw disk for {format:?}")
                };
                vm::write_vm_disk(&vm::RawFile { file, size: *size }, vm, seed, epoch, out)?;
            }
            _ => bail!("internal error: outputs of {format:?} were not prepared"),
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let jobs: Vec<_> =
            outputs.iter_mut().map(|(format, files)| scope.spawn(|| write_one(*format, files))).collect();
        jobs.into_iter().try_for_each(|job| job.join().unwrap_or_else(|_| bail!("internal error: a writer panicked")))
    })?;
    Ok(outputs)
}

/// What every bootable format needs, found once: the kernel, the stub, the command line and os-release.
struct BootInputs {
    kernel: Kernel,
    /// What goes into the UKI's `.linux`: the kernel, or its signed copy.
    linux: Content,
    release: String,
    stub: Vec<u8>,
    cmdline: String,
    osrel: Option<Vec<u8>>,
}

impl BootInputs {
    fn find(tree: &Tree, args: &BuildArgs) -> Result<Self> {
        let kernel = clay_kernel::find_kernel(tree, args.kernel.as_deref())?;
        let release = kernel.release.clone().unwrap_or_else(|| "unknown".into());
        status(&format!("kernel {} ({release})", kernel.path));
        if kernel.release.is_some() && !kernel.has_modules {
            warn(&format!("the image has no /lib/modules/{release}; drivers built as modules will be missing"));
        }
        let stub = find_stub(tree, args.stub.as_deref())?;
        let cmdline = match &args.cmdline {
            Some(c) => c.clone(),
            None => image_cmdline(tree)?.unwrap_or_else(|| DEFAULT_CMDLINE.to_owned()),
        };
        let osrel = read_file(tree, OS_RELEASE_FILES)?;
        Ok(BootInputs { linux: kernel.content.clone(), kernel, release, stub, cmdline, osrel })
    }
}

/// The `kernel` format: the kernel, the initramfs and the command line (with a newline, as `/proc/cmdline` ends).
fn write_kernel_files(
    boot: &BootInputs,
    initrd: &Initrd,
    [vmlinuz, initramfs, cmdline]: [&mut PendingOutput; 3],
) -> Result<()> {
    boot.kernel.content.copy_to(&boot.kernel.path, vmlinuz.file()?)?;
    initrd.content.copy_to("the initramfs", initramfs.file()?)?;
    let target = cmdline.target().display().to_string();
    writeln!(cmdline.file()?, "{}", boot.cmdline).with_context(|| format!("cannot write `{target}`"))?;
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org): the time every later timestamp is clamped to.
pub(crate) fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => v.trim().parse::<i64>().ok().filter(|t| *t >= 0).map(Some).ok_or_else(|| {
            anyhow!("SOURCE_DATE_EPOCH is `{v}`, but it must be a whole, non-negative number of seconds")
        }),
        Err(_) => Ok(None),
    }
}

/// The initramfs, in an unlinked temporary file (with, when uncompressed, its large files' data left where it is):
/// its size must be known before the UKI's headers, and every format that carries it reads it from there
/// (positionally, so readers never disturb each other).
struct Initrd {
    content: Content,
}

fn build_initramfs(tree: &Tree, kernel: &Kernel, compression: Compression, epoch: Option<i64>) -> Result<Initrd> {
    let threads = std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1));
    let microcode = clay_kernel::microcode_images(tree);
    for (name, _) in &microcode {
        status(&format!("early microcode {name}"));
    }
    // A kernel kept beside its modules (Fedora, Arch) is already in the UKI's .linux section.
    let exclude = if kernel.path.starts_with("/boot/") { vec![] } else { vec![kernel.path.as_bytes().to_vec()] };
    let opts = clay_initramfs::Options {
        compression,
        threads,
        clamp_mtime: epoch,
        init: Content::from_bytes(clay_init_blob::INIT),
        exclude,
    };
    let file = tempfile::tempfile().context("cannot create a temporary file for the initramfs")?;
    // Uncompressed (a squashfs root), the root image stays in its own file and is copied once, into the UKI.
    let (content, stats) = clay_initramfs::write_to_file(tree, &microcode, &opts, file)?;
    for note in &stats.notes {
        warn(note);
    }
    status(&format!(
        "initramfs: {} entries, {} → {} with {}",
        stats.entries,
        human(stats.archive_bytes),
        human(stats.total_bytes),
        compression
    ));
    Ok(Initrd { content })
}

/// The UKI as written: its bytes (for the disks that carry it) and, when asked for, a seed for every identifier
/// derived from it (disk and partition GUIDs, volume IDs): the first half of its SHA-256, so the same OS gets the
/// same identifiers and a different OS different ones.
struct Uki {
    content: Content,
    seed: Option<[u8; 16]>,
}

/// The UKI's sections in order (UAPI UKI spec), with their lengths; `.linux` and `.initrd` are streamed from their
/// content, the others are given here.
fn uki_sections<'a>(parts: &'a BootInputs, initrd: &Initrd, sbat: &'a str) -> Vec<(&'static str, u64, &'a [u8])> {
    let mut sections = vec![(".linux", parts.linux.len(), &[][..])];
    if let Some(osrel) = parts.osrel.as_deref().filter(|o| !o.is_empty()) {
        sections.push((".osrel", osrel.len() as u64, osrel));
    }
    sections.push((".cmdline", parts.cmdline.len() as u64, parts.cmdline.as_bytes()));
    sections.push((".initrd", initrd.content.len(), &[][..]));
    sections.push((".uname", parts.release.len() as u64, parts.release.as_bytes()));
    sections.push((".sbat", sbat.len() as u64, sbat.as_bytes()));
    sections
}

/// How long the UKI will be, before it is written, so a disk can be laid out around it.
fn uki_len(parts: &BootInputs, initrd: &Initrd) -> Result<u64> {
    let sbat = clay_pe::default_sbat(env!("CARGO_PKG_VERSION"));
    let lens: Vec<(&str, u64)> = uki_sections(parts, initrd, &sbat).iter().map(|(n, len, _)| (*n, *len)).collect();
    Ok(clay_pe::uki_len(&parts.stub, &lens, sbat.as_bytes())?)
}

/// Writes the UKI into `file` from its current position (0 for the .efi output, the ESP's file for a disk), and
/// hashes it for a seed when `seed` asks.
fn write_uki(
    file: &mut File,
    name: &str,
    parts: &BootInputs,
    initrd: &Initrd,
    epoch: Option<i64>,
    seed: bool,
) -> Result<Uki> {
    let start = file.stream_position().with_context(|| format!("cannot write `{name}`"))?;
    let linux = parts.linux.read_all(&parts.kernel.path)?;
    let sbat = clay_pe::default_sbat(env!("CARGO_PKG_VERSION"));
    let mut initrd_reader = BufReader::with_capacity(1 << 20, initrd.content.reader("the initramfs")?);
    let mut linux_r = linux.as_slice();
    let listed = uki_sections(parts, initrd, &sbat);
    let mut given: Vec<&[u8]> = listed.iter().map(|(_, _, bytes)| *bytes).collect();
    let mut sections: Vec<clay_pe::SectionInput<'_>> = Vec::with_capacity(listed.len());
    let (mut linux_in, mut initrd_in): (Option<&mut dyn Read>, Option<&mut dyn Read>) =
        (Some(&mut linux_r), Some(&mut initrd_reader));
    for ((section, len, _), bytes) in listed.iter().zip(given.iter_mut()) {
        let data: Option<&mut dyn Read> = match *section {
            ".linux" => linux_in.take(),
            ".initrd" => initrd_in.take(),
            _ => Some(bytes),
        };
        let Some(data) = data else { bail!("internal error: the UKI section {section} is listed twice") };
        sections.push(clay_pe::SectionInput { name: section, len: *len, data });
    }

    let timestamp = epoch.map(|t| u32::try_from(t).unwrap_or(u32::MAX));
    let mut out = Hashing::new(BufWriter::with_capacity(1 << 20, &mut *file), seed);
    let len = clay_pe::write_uki(&parts.stub, &mut sections, timestamp, &mut out)
        .with_context(|| format!("cannot write `{name}`"))?;
    let (buffered, digest) = out.finish().with_context(|| format!("cannot hash `{name}`"))?;
    buffered.into_inner().map_err(|e| anyhow!("cannot write `{name}`: {}", e.error()))?;
    let seed = digest.map(|d| seed_of(&d));
    let reader = Arc::new(file.try_clone().with_context(|| format!("cannot read back `{name}`"))?);
    Ok(Uki { content: Content::Range { file: reader, offset: start, len }, seed })
}

/// Identifiers for an image without a UKI (a BIOS-only disk or ISO): a hash of the command line, the kernel release and the
/// initramfs' size — stable for the same input, different for a different OS.
fn bios_only_seed(boot: &BootInputs, initrd: &Initrd) -> [u8; 16] {
    use sha2::Digest;
    let mut h = sha2::Sha256::default();
    h.update(boot.cmdline.as_bytes());
    h.update([0]);
    h.update(boot.release.as_bytes());
    h.update(initrd.content.len().to_le_bytes());
    seed_of(&h.finalize().into())
}

/// A seed for identifiers: the first half of a SHA-256.
fn seed_of(digest: &[u8; 32]) -> [u8; 16] {
    let mut seed = [0u8; 16];
    seed.copy_from_slice(&digest[..16]);
    seed
}

/// The EFI stub: `--stub`, else the image's, else this machine's.
fn find_stub(tree: &Tree, explicit: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(path) = explicit {
        return std::fs::read(path).with_context(|| format!("cannot read the EFI stub `{}`", path.display()));
    }
    if let Some(bytes) = read_file(tree, &[STUB_PATH])? {
        status(&format!("EFI stub from the image ({STUB_PATH})"));
        return Ok(bytes);
    }
    match std::fs::read(STUB_PATH) {
        Ok(bytes) => {
            status(&format!("EFI stub from this machine ({STUB_PATH})"));
            Ok(bytes)
        }
        Err(_) => bail!(
            "no systemd EFI stub found in the image or on this machine at {STUB_PATH}; install systemd-boot-efi \
             (Debian/Ubuntu) or systemd-ukify (Fedora), or pass --stub PATH"
        ),
    }
}

/// The image's own kernel command line, one of [`CMDLINE_FILES`], with newlines folded to spaces.
fn image_cmdline(tree: &Tree) -> Result<Option<String>> {
    for path in CMDLINE_FILES {
        if let Some(bytes) = read_file(tree, &[path])? {
            let text = String::from_utf8_lossy(&bytes);
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            status(&format!("command line from the image's {path}"));
            return Ok(Some(line));
        }
    }
    Ok(None)
}

/// The content of the first of `paths` that is a regular file in the tree (following symlinks in the tree).
fn read_file(tree: &Tree, paths: &[&str]) -> Result<Option<Vec<u8>>> {
    for path in paths {
        if let Some(id) = tree.resolve(path.as_bytes()) {
            if let Kind::File(content) = &tree.inode(id).kind {
                return Ok(Some(content.read_all(path)?));
            }
        }
    }
    Ok(None)
}

pub fn status(message: &str) {
    eprintln!("clay: {message}");
}

pub fn warn(message: &str) {
    eprintln!("clay: warning: {message}");
}

fn size_of(path: &Path) -> String {
    std::fs::metadata(path).map(|m| human(m.len())).unwrap_or_default()
}

/// A size for people: `12.3 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
