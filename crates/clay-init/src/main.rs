//! clay-init: the PID 1 of a claylinux initramfs.
//!
//! The whole OS lives in the initramfs, so there is no root to find and switch to. This program only prepares the
//! RAM root the way a real root would be and hands over to the image's own init:
//!
//! 1. make `/` a bind mount of rootfs, so `pivot_root(2)` works for container runtimes;
//! 2. mount `/proc`, `/sys`, `/dev`, `/dev/pts`, `/dev/shm` and `/run`;
//! 3. apply the extended attributes cpio could not carry (`clay-manifest`), then delete their manifest;
//! 4. rename `/etc/hosts.target` and `/etc/resolv.conf.target` over the files they stand for;
//! 5. execute `init=` from `/proc/cmdline`, else `/sbin/init`.
//!
//! A failure prints one line naming what failed and why, then starts the rescue shell; every path ends in `exec` or
//! power-off, because PID 1 exiting panics the kernel. Kernel parameters: `clay.debug` reports each step,
//! `clay.rescue` starts the rescue shell instead of the init.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod cmdline;
mod console;
mod handover;
mod mounts;
mod rescue;
mod xattrs;

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
    mounts::make_root_a_mount(log)?;
    let [proc_mount, others @ ..] = &mounts::API_MOUNTS;
    mounts::mount_api(log, proc_mount)?;
    let cmdline = std::fs::read("/proc/cmdline").or_fail(|| "cannot read /proc/cmdline".into())?;
    let options = BootOptions::parse(&cmdline);
    log.set_debug(options.debug);
    for m in others {
        mounts::mount_api(log, m)?;
    }
    console::reopen_if_lost(log);
    xattrs::apply_manifest(log)?;
    handover::install_target_files(log)?;
    Ok(options)
}
