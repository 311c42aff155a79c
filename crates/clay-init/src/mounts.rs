//! Steps 1 and 2: turn the initramfs root into a real mount, then mount the API filesystems.
//!
//! The initramfs is unpacked into the kernel's `rootfs`, the first mount of the initial namespace. It has no parent
//! mount, and `pivot_root(2)` refuses (`EINVAL`, the `!mnt_has_parent(root_mnt)` check in `fs/namespace.c`) when
//! the caller's root is such a mount; container runtimes (runc, crun, podman) rely on `pivot_root`. Copying the
//! files into a fresh tmpfs would double the memory the OS takes, so instead we bind-mount `/` onto a directory of
//! itself and move that bind mount over `/`, as `switch_root` does: the new root shares rootfs's files but is a
//! mount whose parent is rootfs.

use std::ffi::CStr;
use std::fs::{self, DirBuilder};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags};

use crate::console::{describe, Failure, Log, OrFail};

/// Where the bind mount of `/` is made before it is moved over `/`; removed again when we created it.
const BIND_DIR: &str = "/.clay-root";

/// Makes the process root a bind mount of rootfs, so that `pivot_root(2)` works inside the booted system.
pub fn make_root_a_mount(log: &mut Log) -> Result<(), Failure> {
    // pivot_root also refuses when the parent of the current root is shared; nothing has made anything shared yet,
    // but the kernel default may change, and the init (systemd) sets the propagation it wants later anyway.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .or_fail(|| "cannot make the mounts under / private".into())?;
    let created = match DirBuilder::new().mode(0o700).create(BIND_DIR) {
        Ok(()) => true,
        Err(err) if err.kind() == ErrorKind::AlreadyExists => false,
        Err(err) => return Err(Failure::io(format!("cannot create {BIND_DIR}"), err)),
    };
    if let Err(failure) = move_bind_over_root() {
        let _ = std::env::set_current_dir("/");
        return Err(failure);
    }
    // In the new root the directory is empty again: the bind mount that covered it has moved away.
    if created {
        if let Err(err) = fs::remove_dir(BIND_DIR) {
            log.step(format_args!("left {BIND_DIR} behind: {}", describe(&err)));
        }
    }
    log.step("made / a private bind mount of the initramfs, so pivot_root works");
    Ok(())
}

fn move_bind_over_root() -> Result<(), Failure> {
    // Recursive, so anything the kernel mounted already stays visible.
    rustix::mount::mount_bind_recursive("/", BIND_DIR).or_fail(|| format!("cannot bind-mount / on {BIND_DIR}"))?;
    std::env::set_current_dir(BIND_DIR).or_fail(|| format!("cannot enter {BIND_DIR}"))?;
    rustix::mount::mount_move(".", "/").or_fail(|| format!("cannot move the bind mount at {BIND_DIR} over /"))?;
    rustix::process::chroot(".").or_fail(|| "cannot change root into the bind mount of /".into())?;
    std::env::set_current_dir("/").or_fail(|| "cannot enter the new /".into())
}

/// One API filesystem mount.
#[derive(Debug)]
pub struct ApiMount {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MountFlags,
    pub data: &'static CStr,
}

/// The API filesystems, parents before children. `proc` comes first: `/proc/cmdline` says whether to log steps.
pub const API_MOUNTS: [ApiMount; 6] = [
    ApiMount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV).union(MountFlags::NOEXEC),
        data: c"",
    },
    ApiMount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV).union(MountFlags::NOEXEC),
        data: c"",
    },
    ApiMount { source: "devtmpfs", target: "/dev", fstype: "devtmpfs", flags: MountFlags::NOSUID, data: c"mode=0755" },
    ApiMount {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
        data: c"gid=5,mode=620,ptmxmode=000",
    },
    ApiMount {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: c"mode=1777",
    },
    ApiMount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: c"mode=0755",
    },
];

/// Mounts one API filesystem unless something is mounted there already, creating the mount point if missing.
pub fn mount_api(log: &mut Log, m: &ApiMount) -> Result<(), Failure> {
    let target = Path::new(m.target);
    let what = || format!("cannot mount {} on {}", m.fstype, m.target);
    match fs::metadata(target) {
        Err(err) if err.kind() == ErrorKind::NotFound => {
            DirBuilder::new().mode(0o755).create(target).or_fail(|| format!("cannot create {}", m.target))?;
        }
        Err(err) => return Err(Failure::io(what(), err)),
        Ok(meta) if !meta.is_dir() => {
            return Err(Failure::new(what(), format_args!("{} is not a directory", m.target)))
        }
        Ok(meta) => {
            let parent = target.parent().unwrap_or(Path::new("/"));
            let parent_dev = fs::metadata(parent).or_fail(what)?.dev();
            if meta.dev() != parent_dev {
                log.step(format_args!("{} is mounted already", m.target));
                return Ok(());
            }
        }
    }
    rustix::mount::mount(m.source, m.target, m.fstype, m.flags, m.data).or_fail(what)?;
    log.step(format_args!("mounted {} on {}", m.fstype, m.target));
    Ok(())
}
