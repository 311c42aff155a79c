//! The root models that are not the initramfs itself: a read-only filesystem, from an image in the initramfs
//! (`compressed`, on a loop device) or from the disk's root partition checked by dm-verity (`verity`), under a
//! tmpfs overlay so the system can write; then the data partition, and the switch into the new root.
//!
//! What `switch_root` does, done here: the API filesystems move into the new root, the new root moves over `/`, and
//! we chroot into it. The initramfs stays underneath, unreachable; it holds only this program, the root image (which
//! the loop device reads) and the boot plan.

use std::fs::{DirBuilder, File};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clay_manifest::boot::{DataMount, Root};
use rustix::io::Errno;
use rustix::mount::MountFlags;

use crate::block::{self, Wanted};
use crate::cmdline::BootOptions;
use crate::console::{describe, Failure, Log, OrFail};

/// Mount points of the parts, in the initramfs.
const LOWER: &str = "/.clay/lower";
const RW: &str = "/.clay/rw";
const NEW_ROOT: &str = "/.clay/root";
/// The API filesystems mounted before the switch, moved into the new root.
const MOVED: [&str; 3] = ["/dev", "/proc", "/sys"];
/// The device-mapper name of the verity root.
const VERITY_NAME: &str = "root";
/// Bytes of the hash partition read for the verity superblock.
const SUPERBLOCK_READ: usize = 4096;

fn mkdir(path: &str, mode: u32) -> Result<(), Failure> {
    DirBuilder::new().recursive(true).mode(mode).create(path).or_fail(|| format!("cannot create {path}"))
}

/// Mounts the read-only root the plan names at a fresh overlay, mounts the data partition into it, and switches
/// into it. Returns once the process root is the new root.
pub fn assemble(log: &mut Log, root: &Root, data: Option<&DataMount>, options: &BootOptions) -> Result<(), Failure> {
    let wait = options.rootwait.map_or(block::DEFAULT_WAIT, Duration::from_secs);
    // The loop device is held open until its filesystem is mounted: it is attached with autoclear, so closing
    // the last descriptor before the mount holds it would detach it again.
    let (device, _held, fstype, what) = match root {
        Root::Ram => return Err(Failure::new("cannot assemble the root", "the boot plan says the root is in RAM")),
        Root::Compressed { fstype, image } => {
            let device = loop_device(log, image)?;
            (device.path.display().to_string(), Some(device), fstype, "the compressed root image")
        }
        Root::Verity { fstype } => {
            (verity_device(log, options, wait)?, None, fstype, "the verity-checked root partition")
        }
    };
    mkdir(LOWER, 0o700)?;
    if let Err(errno) = rustix::mount::mount(&device, LOWER, fstype.as_str(), MountFlags::RDONLY, c"") {
        let mut why = describe(&errno.into());
        if errno == Errno::IO && matches!(root, Root::Verity { .. }) {
            why.push_str(
                "; dm-verity refused blocks that do not match the root hash on the signed command line: the disk \
                 was modified or is damaged",
            );
        } else if errno == Errno::NODEV {
            why.push_str(&format!("; the kernel has no {fstype} support"));
        }
        return Err(Failure::new(format!("cannot mount {what} ({fstype} on {device})"), why));
    }
    log.step(format_args!("mounted {what} ({fstype} on {device}) read-only on {LOWER}"));
    overlay(log)?;
    if let Some(data) = data {
        mount_data(log, data, NEW_ROOT, wait)?;
    }
    switch(log)
}

/// Attaches the image inside the initramfs to a loop device, read-only.
fn loop_device(log: &mut Log, image: &str) -> Result<clay_ioctl::loopdev::LoopDevice, Failure> {
    let path = Path::new("/").join(image);
    let file = File::open(&path).or_fail(|| format!("cannot open the root image {}", path.display()))?;
    let device = clay_ioctl::loopdev::attach(&file, true, path.as_os_str().as_encoded_bytes()).map_err(|err| {
        Failure::new(
            format!("cannot attach the root image {} to a loop device", path.display()),
            format_args!("{} (the kernel needs loop support, and 5.8 or later for LOOP_CONFIGURE)", describe(&err)),
        )
    })?;
    // The device holds its own reference to the file; with autoclear it goes away when the root is unmounted.
    log.step(format_args!("attached {} to {}", path.display(), device.path.display()));
    Ok(device)
}

/// Finds the verity root's partitions by the UUIDs its root hash gives, reads the hash tree's superblock and maps
/// the checked device. Returns its node.
fn verity_device(log: &mut Log, options: &BootOptions, wait: Duration) -> Result<String, Failure> {
    let what = "cannot set up the verity root";
    let text = options.roothash.as_deref().ok_or_else(|| {
        Failure::new(what, "the kernel command line has no roothash=, which clay build puts there for --root verity")
    })?;
    let hash = decode_hex(text)
        .filter(|h| h.len() == clay_verity::DIGEST_LEN)
        .ok_or_else(|| Failure::new(what, "roothash= is not 64 hexadecimal digits"))?;
    let mut root_hash = [0u8; clay_verity::DIGEST_LEN];
    root_hash.copy_from_slice(&hash);
    let (data_uuid, hash_uuid) = clay_manifest::boot::verity_partition_uuids(&root_hash)
        .ok_or_else(|| Failure::new(what, "roothash= is too short"))?;
    let wanted = [Wanted { uuid: data_uuid, role: "root" }, Wanted { uuid: hash_uuid, role: "root verity" }];
    let parts = block::wait_for(log, &wanted, wait)?;
    let (data, hashes) = (&parts[0], &parts[1]);

    let mut superblock = vec![0u8; SUPERBLOCK_READ];
    File::open(&hashes.node)
        .and_then(|mut f| f.read_exact(&mut superblock))
        .or_fail(|| format!("cannot read the verity superblock on {}", hashes.node.display()))?;
    let params = clay_verity::VerityParams::from_superblock(&superblock, root_hash)
        .map_err(|err| Failure::new(format!("cannot use the verity partition {}", hashes.node.display()), err))?;
    if data.size < params.data_size() {
        return Err(Failure::new(
            what,
            format_args!(
                "the root partition {} holds {} bytes, but its hash tree covers {}",
                data.node.display(),
                data.size,
                params.data_size()
            ),
        ));
    }
    let line = params.table(&data.dev, &hashes.dev);
    let target = parse_target(&line).ok_or_else(|| Failure::new(what, "internal error: a bad verity table"))?;
    let uuid = format!("CLAY-VERITY-{}", params.root_hash_hex());
    let mapped = clay_ioctl::dm::create(VERITY_NAME, &uuid, &[target], true).map_err(|err| {
        Failure::new(
            format!("cannot create the dm-verity device for {}", data.node.display()),
            format_args!("{} (the kernel needs device-mapper and dm-verity)", describe(&err)),
        )
    })?;
    log.step(format_args!("mapped {} through dm-verity as {}", data.node.display(), mapped.path()));
    Ok(mapped.path())
}

/// `start length type params...` → a device-mapper target.
fn parse_target(line: &str) -> Option<clay_ioctl::dm::Target> {
    let mut words = line.splitn(4, ' ');
    let start = words.next()?.parse().ok()?;
    let length = words.next()?.parse().ok()?;
    let kind = words.next()?.to_owned();
    let params = words.next()?.to_owned();
    Some(clay_ioctl::dm::Target { start, length, kind, params })
}

fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
}

/// A tmpfs for the writes and the overlay of it on the read-only root, at [`NEW_ROOT`].
fn overlay(log: &mut Log) -> Result<(), Failure> {
    mkdir(RW, 0o700)?;
    rustix::mount::mount("tmpfs", RW, "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, c"mode=0755")
        .or_fail(|| format!("cannot mount a tmpfs on {RW}"))?;
    let (upper, work) = (format!("{RW}/upper"), format!("{RW}/work"));
    mkdir(&upper, 0o755)?;
    mkdir(&work, 0o700)?;
    mkdir(NEW_ROOT, 0o755)?;
    let data = format!("lowerdir={LOWER},upperdir={upper},workdir={work}");
    let data = std::ffi::CString::new(data).map_err(|_| Failure::new("cannot mount the overlay", "a NUL in a path"))?;
    rustix::mount::mount("overlay", NEW_ROOT, "overlay", MountFlags::empty(), data.as_c_str()).map_err(|errno| {
        let hint = if errno == Errno::NODEV { "; the kernel has no overlay support" } else { "" };
        Failure::new(
            format!("cannot mount the overlay on {NEW_ROOT}"),
            format_args!("{}{hint}", describe(&errno.into())),
        )
    })?;
    log.step(format_args!("mounted a tmpfs overlay on the read-only root at {NEW_ROOT}"));
    Ok(())
}

/// Finds the data partition and mounts it read-write at its target under `root`.
pub fn mount_data(log: &mut Log, data: &DataMount, root: &str, wait: Duration) -> Result<(), Failure> {
    let found = block::wait_for(log, &[Wanted { uuid: data.partuuid, role: "data" }], wait)?;
    let node = &found[0].node;
    let target = format!("{}{}", root.trim_end_matches('/'), data.target);
    let flags = MountFlags::NOSUID | MountFlags::NODEV;
    rustix::mount::mount(node, target.as_str(), data.fstype.as_str(), flags, c"").map_err(|errno| {
        let hint = match errno {
            Errno::NOENT => format!("; the image has no {} to mount it on", data.target),
            Errno::NODEV => format!("; the kernel has no {} support", data.fstype),
            _ => String::new(),
        };
        Failure::new(
            format!("cannot mount the data partition {} ({}) on {}", node.display(), data.fstype, data.target),
            format_args!("{}{hint}", describe(&errno.into())),
        )
    })?;
    log.step(format_args!("mounted the data partition {} on {}", node.display(), data.target));
    Ok(())
}

/// Moves the API filesystems into [`NEW_ROOT`], moves it over `/` and enters it.
fn switch(log: &mut Log) -> Result<(), Failure> {
    for m in MOVED {
        let to = PathBuf::from(format!("{NEW_ROOT}{m}"));
        if !to.is_dir() {
            DirBuilder::new().mode(0o755).create(&to).or_fail(|| format!("cannot create {m} in the new root"))?;
        }
        rustix::mount::mount_move(m, &to).or_fail(|| format!("cannot move {m} into the new root"))?;
    }
    std::env::set_current_dir(NEW_ROOT).or_fail(|| format!("cannot enter {NEW_ROOT}"))?;
    rustix::mount::mount_move(".", "/").or_fail(|| format!("cannot move {NEW_ROOT} over /"))?;
    rustix::process::chroot(".").or_fail(|| "cannot change root into the new root".into())?;
    std::env::set_current_dir("/").or_fail(|| "cannot enter the new /".into())?;
    log.step("switched into the new root");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines_become_targets() {
        let t = parse_target("0 2048 verity 1 254:1 254:2 4096 4096 256 1 sha256 ab cd").unwrap();
        assert_eq!((t.start, t.length, t.kind.as_str()), (0, 2048, "verity"));
        assert_eq!(t.params, "1 254:1 254:2 4096 4096 256 1 sha256 ab cd");
        assert!(parse_target("0 x verity 1").is_none());
    }

    #[test]
    fn hex_decodes_only_pairs_of_digits() {
        assert_eq!(decode_hex(b"00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex(b"0"), None);
        assert_eq!(decode_hex(b"zz"), None);
    }
}
