//! The root models (`--root ram|compressed|verity`) and the data partition (`--data-size`): what the initramfs
//! holds beside clay-init, the partitions a disk gains, and what the command line gains (`roothash=`).
//!
//! - `ram`: the whole tree is the initramfs.
//! - `compressed`: the tree as one squashfs (or EROFS) image inside an otherwise tiny initramfs; clay-init mounts it
//!   through a loop device under a tmpfs overlay. RAM holds the compressed image plus what the system writes.
//! - `verity`: the image goes to the disk's root partition (Discoverable Partitions type for x86-64 root) and its
//!   dm-verity hash tree to the matching verity partition; the root hash goes on the UKI's signed command line,
//!   and the partitions' UUIDs are its two halves, as systemd-repart makes them.
//! - `--data-size`: an ext4 partition seeded with the tree's `--data-mount` directory (default `/var`), mounted
//!   read-write there at boot; the directory's contents leave the root, so they exist once.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use clay_compress::Compression;
use clay_gpt::{Guid, PartitionSpec};
use clay_manifest::boot::{BootPlan, DataMount, Module, Root};
use clay_tree::{Content, Inode, InodeId, Kind, Metadata, Tree};

use super::disk::ExtraPartition;
use super::{human, status, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RootModel {
    /// The whole OS is the initramfs, uncompressed in RAM.
    Ram,
    /// The OS is a compressed squashfs image in the initramfs, mounted read-only under a tmpfs overlay.
    Compressed,
    /// The OS is on the disk's root partition, every block checked by dm-verity against the root hash on the
    /// signed command line, under a tmpfs overlay (disk formats only).
    Verity,
}

/// The filesystem of a `compressed` or `verity` root, and of `--format squashfs|erofs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RootFs {
    Squashfs,
    /// EROFS, written uncompressed.
    Erofs,
}

impl RootFs {
    pub fn name(self) -> &'static str {
        match self {
            RootFs::Squashfs => "squashfs",
            RootFs::Erofs => "erofs",
        }
    }
}

/// What the root model needs from the command line.
#[derive(Debug)]
pub struct RootOptions<'a> {
    pub model: RootModel,
    pub fs: RootFs,
    pub data_size: Option<u64>,
    pub data_mount: &'a str,
    /// `--compression` when given: the root image's compressor in the `compressed` and `verity` models.
    pub compression: Option<Compression>,
    pub epoch: Option<i64>,
    /// Whether a disk format (raw or a VM image) is being built.
    pub has_disk: bool,
    /// Whether an ISO is being built.
    pub has_iso: bool,
    /// Root image blocks compressed while the source was read.
    pub ahead: &'a super::ahead::Blocks,
}

/// The root model `--root` names, or the default: `compressed`, unless `--compression` names one only the
/// initramfs knows (lz4, none), which means RAM.
pub fn model(args: &super::BuildArgs) -> RootModel {
    args.root.unwrap_or(match args.compression {
        Some(Compression::Lz4 | Compression::None) => RootModel::Ram,
        _ => RootModel::Compressed,
    })
}

/// Where the root image lives in the initramfs of the `compressed` model.
const ROOT_IMAGE: &str = ".clay/root.img";
/// Where the modules clay-init loads live in the initramfs.
const MODULE_DIR: &str = ".clay/modules";
/// Storage drivers loaded when the init must find a partition; those the kernel lacks are skipped.
const STORAGE_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "nvme",
    "ahci",
    "ata_piix",
    "xhci_pci",
    "ehci_pci",
    "usb_storage",
    "uas",
    "hv_storvsc",
    "xen_blkfront",
    "vmw_pvscsi",
    "mmc_block",
    "sdhci_pci",
];
/// The smallest data partition: ext4 with a journal needs a few MiB of metadata.
const MIN_DATA_SIZE: u64 = 16 << 20;

/// The initramfs content and disk partitions a root model makes.
pub struct Prepared {
    /// What goes into the initramfs (clay-initramfs adds `/init` and `/dev/console`).
    pub initramfs_tree: Tree,
    /// The initramfs compression this model asks for, when it differs from `--compression`'s default.
    pub initramfs_compression: Option<Compression>,
    /// Appended to the kernel command line.
    pub cmdline_extra: Option<String>,
    /// Partitions after the ESP.
    pub partitions: Vec<ExtraPartition>,
}

pub fn prepare(tree: &Tree, release: &str, o: &RootOptions<'_>) -> Result<Prepared> {
    if o.model == RootModel::Verity && !o.has_disk {
        bail!(
            "--root verity puts the OS on a disk partition, so it needs a disk format: add --format raw (or qcow2, \
             vmdk, vhdx, vdi, vhd)"
        );
    }
    if o.model == RootModel::Verity && o.has_iso {
        bail!("--root verity cannot make an ISO: the root lives on the disk's partitions; build the ISO separately");
    }
    if o.data_size.is_some() && !o.has_disk {
        bail!("--data-size adds a partition to the disk, so it needs a disk format: add --format raw (or qcow2, …)");
    }
    let seed = tree_seed(tree, o);
    let mut root_tree = boot_tree(tree);
    let mut partitions = Vec::new();
    let mut wanted: Vec<clay_kmod::Want<'_>> = Vec::new();

    let data = match o.data_size {
        Some(size) => {
            let (mount, partition) = data_partition(&mut root_tree, size, o, &seed)?;
            partitions.push(partition);
            wanted.extend(STORAGE_MODULES.iter().map(|name| clay_kmod::Want { name, required: false }));
            wanted.push(clay_kmod::Want { name: "ext4", required: true });
            Some(mount)
        }
        None => None,
    };

    let fs = o.fs.name();
    let mut cmdline_extra = None;
    let (root, image) = match o.model {
        RootModel::Ram => (Root::Ram, None),
        RootModel::Compressed => {
            wanted.splice(0..0, [("loop", true), (fs, true), ("overlay", true)].map(want));
            let image = root_image(&root_tree, o)?;
            (Root::Compressed { fstype: fs.into(), image: ROOT_IMAGE.into() }, Some(image))
        }
        RootModel::Verity => {
            let mut first = vec![want(("dm_mod", true)), want(("dm_verity", true)), want((fs, true))];
            first.push(want(("overlay", true)));
            first.extend(STORAGE_MODULES.iter().map(|name| clay_kmod::Want { name, required: false }));
            wanted.splice(0..0, first);
            let image = root_image(&root_tree, o)?;
            let (root_part, hash_part, hash) = verity_partitions(&image, &seed)?;
            partitions.splice(0..0, [root_part, hash_part]);
            cmdline_extra = Some(format!("roothash={hash}"));
            (Root::Verity { fstype: fs.into() }, None)
        }
    };

    let needs = || format!("--root {} needs kernel modules the image lacks", model_name(o.model));
    let resolution = clay_kmod::resolve(tree, release, &wanted).with_context(needs)?;
    // What the required modules pull in is required too; the rest are drivers for hardware that may be absent.
    let required: Vec<clay_kmod::Want<'_>> = wanted.iter().filter(|w| w.required).copied().collect();
    let required: std::collections::BTreeSet<String> =
        clay_kmod::resolve(tree, release, &required).with_context(needs)?.load.into_iter().map(|m| m.name).collect();
    let mtime = o.epoch.unwrap_or(0);
    let mut initramfs_tree = match o.model {
        RootModel::Ram => root_tree,
        _ => Tree::new(Metadata::root_owned(0o755, mtime)),
    };
    let private = Metadata::root_owned(0o700, mtime);
    let mut modules = Vec::new();
    for (i, m) in resolution.load.into_iter().enumerate() {
        let path = format!("{MODULE_DIR}/{i:02}-{}.ko", m.name);
        add_file(&mut initramfs_tree, &path, Content::from_bytes(m.bytes), 0o600, &private)?;
        modules.push(Module { path, required: required.contains(&m.name) });
    }
    if !modules.is_empty() {
        status(&format!("kernel modules for the init: {}", modules.len()));
    }
    if let Some(image) = image {
        add_file(&mut initramfs_tree, ROOT_IMAGE, image, 0o600, &private)?;
    }
    if o.model != RootModel::Ram {
        status(&format!("root model: {} ({fs})", model_name(o.model)));
    }
    let plan = BootPlan { modules, root, data };
    if !plan.is_encodable() {
        bail!("--data-mount `{}` contains white space, which the boot plan cannot carry", o.data_mount);
    }
    add_file(
        &mut initramfs_tree,
        clay_manifest::boot::BOOT_PLAN_PATH,
        Content::from_bytes(plan.encode().into_bytes()),
        0o600,
        &private,
    )?;
    // The squashfs is compressed already: compressing the archive around it again would only cost time.
    let initramfs_compression = (o.model == RootModel::Compressed).then_some(Compression::None);
    Ok(Prepared { initramfs_tree, initramfs_compression, cmdline_extra, partitions })
}

fn want((name, required): (&str, bool)) -> clay_kmod::Want<'_> {
    clay_kmod::Want { name, required }
}

fn model_name(model: RootModel) -> &'static str {
    match model {
        RootModel::Ram => "ram",
        RootModel::Compressed => "compressed",
        RootModel::Verity => "verity",
    }
}

fn add_file(tree: &mut Tree, path: &str, content: Content, mode: u32, dir_meta: &Metadata) -> Result<()> {
    let inode = Inode { meta: Metadata { mode, ..dir_meta.clone() }, kind: Kind::File(content) };
    tree.insert(path.as_bytes(), inode, dir_meta)?;
    Ok(())
}

/// The tree as it boots: `/boot` emptied (the kernel is in the UKI), as the RAM root has it.
fn boot_tree(tree: &Tree) -> Tree {
    let mut t = tree.clone();
    if let Some(boot) = t.lookup(b"boot").ok().flatten() {
        let names: Vec<Vec<u8>> = t.children(boot).map(|(n, _)| n.to_vec()).collect();
        for name in names {
            let _ = t.remove(&[b"boot/".as_slice(), &name].concat());
        }
    }
    t
}

/// A seed for the data partition's UUID and the verity salt: the tree's shape (names, kinds, owners, modes, times,
/// sizes), the epoch and the options. Equal inputs give equal identifiers; another OS gets others.
fn tree_seed(tree: &Tree, o: &RootOptions<'_>) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::default();
    for e in tree.walk() {
        let inode = tree.inode(e.inode);
        h.update(&e.path);
        h.update([0]);
        h.update(inode.st_mode().to_le_bytes());
        h.update(inode.meta.uid.to_le_bytes());
        h.update(inode.meta.gid.to_le_bytes());
        h.update(inode.meta.mtime.to_le_bytes());
        match &inode.kind {
            Kind::File(c) => h.update(c.len().to_le_bytes()),
            Kind::Symlink(target) => h.update(target),
            _ => {}
        }
    }
    h.update(o.epoch.unwrap_or(0).to_le_bytes());
    h.update(o.data_size.unwrap_or(0).to_le_bytes());
    h.update(o.data_mount.as_bytes());
    h.finalize().into()
}

/// A tree holding what `tree` holds under the directory `dir`, with `dir`'s metadata as its root.
fn subtree(tree: &Tree, dir: InodeId, prefix: &[u8]) -> Result<Tree> {
    let mut sub = Tree::new(tree.inode(dir).meta.clone());
    let mut first_path: std::collections::BTreeMap<InodeId, Vec<u8>> = std::collections::BTreeMap::new();
    for e in tree.walk() {
        let Some(rel) = e.path.strip_prefix(prefix).and_then(|r| r.strip_prefix(b"/")) else { continue };
        let inode = tree.inode(e.inode);
        let parent_meta = inode.meta.clone();
        if let Some(first) = first_path.get(&e.inode) {
            sub.link(rel, first, &parent_meta)?;
            continue;
        }
        if !inode.kind.is_dir() {
            first_path.insert(e.inode, rel.to_vec());
        }
        let copy = match &inode.kind {
            Kind::Directory(_) => Inode::directory(inode.meta.clone()),
            other => Inode { meta: inode.meta.clone(), kind: other.clone() },
        };
        sub.insert(rel, copy, &parent_meta)?;
    }
    Ok(sub)
}

/// The data partition: its boot-plan entry and its ext4 image seeded with the tree's `--data-mount` directory,
/// whose contents leave `root_tree`.
fn data_partition(
    root_tree: &mut Tree,
    size: u64,
    o: &RootOptions<'_>,
    seed: &[u8; 32],
) -> Result<(DataMount, ExtraPartition)> {
    let target = o.data_mount;
    if !target.starts_with('/') || target == "/" || target.split('/').any(|c| c == "..") {
        bail!("--data-mount must be an absolute path below / (like /var or /srv/data), not `{target}`");
    }
    let rel = target.trim_matches('/').as_bytes();
    let Some(dir) = root_tree.lookup(rel).ok().flatten().filter(|id| root_tree.inode(*id).kind.is_dir()) else {
        bail!("the image has no directory {target} to mount the data partition on; create it in the image or choose another --data-mount");
    };
    if size < MIN_DATA_SIZE {
        bail!(
            "--data-size {} is too small: an ext4 data partition needs at least {}",
            human(size),
            human(MIN_DATA_SIZE)
        );
    }
    let sub = subtree(root_tree, dir, rel)?;
    let names: Vec<Vec<u8>> = root_tree.children(dir).map(|(n, _)| n.to_vec()).collect();
    for name in names {
        root_tree.remove(&[rel, b"/", &name].concat())?;
    }
    let file = write_data_fs(&sub, size, o, seed, target)?;
    // The filesystem's tail is free space the writer never touched: the file may end early, and the disk's own
    // zeros stand for the rest.
    let written = file.metadata().context("cannot read back the data partition")?.len().min(size);
    let uuid = Guid::from_seed(seed, "data");
    status(&format!("data partition: ext4, {} for {target}", human(size)));
    let partition = ExtraPartition {
        spec: PartitionSpec {
            type_guid: clay_gpt::types::LINUX_DATA,
            guid: uuid,
            name: "clay-data".into(),
            size,
            attributes: 0,
        },
        content: Content::Range { file: Arc::new(file), offset: 0, len: written },
    };
    let mount = DataMount { partuuid: uuid, fstype: "ext4".into(), target: target.into() };
    Ok((mount, partition))
}

/// The squashfs compressor `--compression` names.
fn squashfs_compression(c: Option<Compression>) -> Result<clay_squashfs::Compression> {
    Ok(match c.unwrap_or(Compression::DEFAULT) {
        Compression::Zstd { level } => clay_squashfs::Compression::Zstd { level },
        Compression::Xz { level } => clay_squashfs::Compression::Xz { preset: level },
        Compression::Gzip { level } => clay_squashfs::Compression::Gzip { level },
        other => bail!(
            "a squashfs root is compressed with zstd, xz or gzip; --compression {} is not available for it",
            other.name()
        ),
    })
}

/// Writes `tree` as the root filesystem image (`--root-fs`) into a temporary file.
fn root_image(tree: &Tree, o: &RootOptions<'_>) -> Result<Content> {
    let mut file = tempfile::tempfile().context("cannot create a temporary file for the root image")?;
    let len = write_fs_image(tree, o.fs, o.compression, o.epoch, o.ahead, &mut file)?;
    Ok(Content::Range { file: Arc::new(file), offset: 0, len })
}

/// The squashfs options `--compression` and the epoch give.
pub fn squashfs_options(compression: Option<Compression>, epoch: Option<i64>) -> Result<clay_squashfs::Options> {
    Ok(clay_squashfs::Options {
        compression: squashfs_compression(compression)?,
        clamp_mtime: epoch,
        ..clay_squashfs::Options::default()
    })
}

/// Writes `tree` as a squashfs or EROFS image into `out` from its start, taking the blocks in `ahead`; returns
/// the image's length.
pub fn write_fs_image(
    tree: &Tree,
    fs: RootFs,
    compression: Option<Compression>,
    epoch: Option<i64>,
    ahead: &super::ahead::Blocks,
    out: &mut File,
) -> Result<u64> {
    let mut buffered = BufWriter::with_capacity(1 << 20, &mut *out);
    let len = match fs {
        RootFs::Squashfs => {
            let opts = squashfs_options(compression, epoch)?;
            let mut ahead = ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            let stats = clay_squashfs::write_squashfs_with(tree, &opts, ahead.as_mut(), &mut buffered)?;
            for note in &stats.notes {
                warn(note);
            }
            status(&format!(
                "squashfs: {} inodes, {} → {}",
                stats.inodes,
                human(stats.content_bytes),
                human(stats.total_bytes)
            ));
            stats.total_bytes
        }
        RootFs::Erofs => {
            if compression.is_some() {
                warn("EROFS images are written uncompressed; --compression does not apply to them");
            }
            let opts = clay_erofs::Options { clamp_mtime: epoch, ..clay_erofs::Options::default() };
            let stats = clay_erofs::write_erofs(tree, &opts, &mut buffered)?;
            status(&format!("erofs: {} inodes, {}", stats.inodes, human(stats.total_bytes)));
            stats.total_bytes
        }
    };
    buffered.flush().context("cannot write the root image")?;
    drop(buffered);
    out.seek(SeekFrom::Start(0)).context("cannot read back the root image")?;
    Ok(len)
}

/// The root and verity partitions of `image`, and the root hash in hex.
fn verity_partitions(image: &Content, seed: &[u8; 32]) -> Result<(ExtraPartition, ExtraPartition, String)> {
    let salt = clay_verity::salt_from_seed(seed);
    let mut opts = clay_verity::VerityOptions::new(salt.to_vec());
    opts.uuid = Some(Guid::from_seed(seed, "verity-superblock").to_u128().to_be_bytes());
    let reader = BufReader::with_capacity(1 << 20, image.reader("the root image")?);
    let tree = clay_verity::format(reader, &opts).context("cannot build the dm-verity hash tree")?;
    let hash = tree.params.root_hash_hex();
    let (root_uuid, verity_uuid) = clay_manifest::boot::verity_partition_uuids(&tree.params.root_hash)
        .context("internal error: a short root hash")?;
    status(&format!("dm-verity: root hash {hash}, hash tree {}", human(tree.hash_device.len() as u64)));
    let ro = clay_gpt::ATTR_READ_ONLY;
    let root = ExtraPartition {
        spec: PartitionSpec {
            type_guid: clay_gpt::types::ROOT_X86_64,
            guid: root_uuid,
            name: "root-x86-64".into(),
            size: image.len(),
            attributes: ro,
        },
        content: image.clone(),
    };
    let hash_len = tree.hash_device.len() as u64;
    let verity = ExtraPartition {
        spec: PartitionSpec {
            type_guid: clay_gpt::types::ROOT_VERITY_X86_64,
            guid: verity_uuid,
            name: "root-x86-64-verity".into(),
            size: hash_len,
            attributes: ro,
        },
        content: Content::from_bytes(tree.hash_device),
    };
    Ok((root, verity, hash))
}

/// The data partition's ext4 filesystem, seeded with `sub`, in a temporary file.
fn write_data_fs(sub: &Tree, size: u64, o: &RootOptions<'_>, seed: &[u8; 32], target: &str) -> Result<File> {
    let fs_uuid = Guid::from_seed(seed, "data-filesystem");
    let opts = clay_ext4::Options {
        size,
        label: "clay-data".into(),
        uuid: fs_uuid.to_u128().to_be_bytes(),
        hash_seed: Guid::from_seed(seed, "data-hash-seed").to_u128().to_be_bytes(),
        timestamp: o.epoch.unwrap_or(0),
        journal: true,
    };
    let mut file = tempfile::tempfile().context("cannot create a temporary file for the data partition")?;
    let mut out = BufWriter::with_capacity(1 << 20, &mut file);
    clay_ext4::write_ext4(sub, &opts, &mut out).map_err(|err| match err {
        clay_ext4::Ext4Error::TooSmall { needed, .. } => anyhow::anyhow!(
            "the data partition of {} cannot hold the image's {target} ({} needed); raise --data-size",
            human(size),
            human(needed)
        ),
        other => anyhow::Error::new(other).context("cannot write the data partition"),
    })?;
    out.flush().context("cannot write the data partition")?;
    drop(out);
    Ok(file)
}
