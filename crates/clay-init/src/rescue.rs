//! The rescue path: a shell on the console when there is one, then power off. PID 1 never exits.

use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use rustix::fs::Access;
use rustix::io::Errno;
use rustix::process::WaitOptions;
use rustix::system::RebootCommand;

use crate::console::{describe, say};

const SHELL: &str = "/bin/sh";

/// The kernel gives init no `PATH`; shells differ in their fallback, so the rescue shell gets a usual one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long the last message stays on screen when there is nothing to run.
const GRACE: Duration = Duration::from_secs(10);

/// What the rescue path does, decided from what the image holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Rescue {
    Shell,
    PowerOffLater,
}

pub fn choose(shell_present: bool) -> Rescue {
    if shell_present {
        Rescue::Shell
    } else {
        Rescue::PowerOffLater
    }
}

/// `/bin/sh` exists (perhaps as a symlink) and, following links, is executable.
fn shell_present() -> bool {
    std::fs::symlink_metadata(SHELL).is_ok() && rustix::fs::access(SHELL, Access::EXEC_OK).is_ok()
}

pub fn rescue() -> ! {
    match choose(shell_present()) {
        Rescue::Shell => {
            say(format_args!("starting {SHELL} for rescue; exit to power off"));
            run_shell();
        }
        Rescue::PowerOffLater => {
            say("no shell in the image; powering off in 10 seconds");
            std::thread::sleep(GRACE);
        }
    }
    power_off()
}

/// Runs the shell to completion, reaping every orphan that is reparented to us meanwhile.
fn run_shell() {
    take_console();
    let mut command = Command::new(SHELL);
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", DEFAULT_PATH);
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            say(format_args!("cannot start {SHELL}: {}; powering off in 10 seconds", describe(&err)));
            std::thread::sleep(GRACE);
            return;
        }
    };
    let shell = i32::try_from(child.id()).ok();
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, _))) if Some(pid.as_raw_nonzero().get()) == shell => break,
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => break,
        }
    }
    say(format_args!("{SHELL} exited; powering off"));
}

/// Makes the console our controlling terminal, which the shell shares (same session) for job control and Ctrl-C.
///
/// The kernel starts init without a session of its own or a controlling terminal; without one, Ctrl-C on the
/// console reaches nobody and a runaway command in the rescue shell cannot be stopped.
fn take_console() {
    let _ = rustix::process::setsid();
    let _ = rustix::process::ioctl_tiocsctty(std::io::stdin().as_fd());
}

/// Flushes the filesystems and powers off; if the kernel refuses, idles forever rather than exit.
pub fn power_off() -> ! {
    rustix::fs::sync();
    if let Err(err) = rustix::system::reboot(RebootCommand::PowerOff) {
        say(format_args!("cannot power off: {}; halting here", describe(&err.into())));
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_when_present_else_power_off() {
        assert_eq!(choose(true), Rescue::Shell);
        assert_eq!(choose(false), Rescue::PowerOffLater);
    }
}
