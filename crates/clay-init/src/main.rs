//! clay-init: the PID 1 of a claylinux initramfs.
//!
//! The boot plan the image builder left in the initramfs (`clay_manifest::boot`) names the root model. With `ram`
//! the whole OS is the initramfs, and this program prepares it the way a real root would be:
//!
//! 1. make `/` a bind mount of rootfs, so `pivot_root(2)` works for container runtimes;
//! 2. mount `/proc`, `/sys`, `/dev`, `/dev/pts`, `/dev/shm` and `/run`; load the plan's kernel modules and mount
//!    the data partition, if any;
//! 3. apply the extended attributes cpio could not carry (`clay-manifest`), then delete their manifest;
//! 4. rename `/etc/hosts.target` and `/etc/resolv.conf.target` over the files they stand for;
//! 5. execute `init=` from `/proc/cmdline`, else `/sbin/init`.
//!
//! With `compressed` and `verity`, step 1 instead mounts a read-only root (an image in the initramfs on a loop
//! device, or the disk's root partition through dm-verity) under a tmpfs overlay and switches into it (`root.rs`).
//!
//! A failure prints one line naming what failed and why, then starts the rescue shell; every path ends in `exec` or
//! power-off, because PID 1 exiting panics the kernel. Kernel parameters: `clay.debug` reports each step,
//! `clay.rescue` starts the rescue shell instead of the init.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod block;
mod cmdline;
mod console;
mod handover;
mod kmod;
mod mounts;
mod rescue;
mod root;
mod xattrs;

use clay_manifest::boot::{BootPlan, Root, BOOT_PLAN_PATH};
use cmdline::BootOptions;
use console::{say, Failure, Log, OrFail};
use handover::Plan;

fn main() {
    if !rustix::process::getpid().is_init() {
        say("must run as process 1 from an initramfs; refusing to change this system");
        std::process::exit(1);
    }
    let mut log = Log::default();
    match boot(&mut log) {
        Ok(options) => match handover::plan(&options) {
            Plan::Init(init) => say(handover::exec_init(&mut log, init)),
            Plan::Rescue => log.step("clay.rescue is set; not starting the init"),
        },
        Err(failure) => say(failure),
    }
    rescue::rescue()
}

/// Steps 1 to 4, and reading the command line for step 5.
fn boot(log: &mut Log) -> Result<BootOptions, Failure> {
    let plan = read_plan()?;
    let in_ram = plan.root == Root::Ram;
    if in_ram {
        mounts::make_root_a_mount(log)?;
    }
    let [proc_mount, sys_mount, dev_mount, others @ ..] = &mounts::API_MOUNTS;
    mounts::mount_api(log, proc_mount)?;
    let cmdline = std::fs::read("/proc/cmdline").or_fail(|| "cannot read /proc/cmdline".into())?;
    let options = BootOptions::parse(&cmdline);
    log.set_debug(options.debug);
    log.step(format_args!("the root model is {}", plan.root.model()));
    mounts::mount_api(log, sys_mount)?;
    mounts::mount_api(log, dev_mount)?;
    console::reopen_if_lost(log);
    kmod::load(log, &plan.modules)?;
    if in_ram {
        if let Some(data) = &plan.data {
            let wait = options.rootwait.map_or(block::DEFAULT_WAIT, std::time::Duration::from_secs);
            root::mount_data(log, data, "/", wait)?;
        }
    } else {
        root::assemble(log, &plan.root, plan.data.as_ref(), &options)?;
    }
    for m in others {
        mounts::mount_api(log, m)?;
    }
    xattrs::apply_manifest(log)?;
    handover::install_target_files(log)?;
    Ok(options)
}

/// The boot plan, or the plain RAM root when the initramfs has none.
fn read_plan() -> Result<BootPlan, Failure> {
    let path = std::path::Path::new("/").join(BOOT_PLAN_PATH);
    match std::fs::read_to_string(&path) {
        Ok(text) => BootPlan::decode(&text).map_err(|err| Failure::new(format!("cannot use {}", path.display()), err)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(BootPlan::default()),
        Err(err) => Err(Failure::io(format!("cannot read the boot plan {}", path.display()), err)),
    }
}
