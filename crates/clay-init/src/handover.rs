//! Steps 4 and 5: put the image's own network files in place, then hand over to its init.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use rustix::fs::Access;

use crate::cmdline::BootOptions;
use crate::console::{Failure, Log, OrFail};

/// Files that container builds cannot leave in place (the engine bind-mounts over `/etc/hosts` and
/// `/etc/resolv.conf`), so images keep the wanted version beside them under a `.target` name.
const TARGET_FILES: [(&str, &str); 2] =
    [("/etc/hosts.target", "/etc/hosts"), ("/etc/resolv.conf.target", "/etc/resolv.conf")];

/// Renames each `.target` file over the file it stands for; a symlink in the way is replaced, not followed.
pub fn install_target_files(log: &mut Log) -> Result<(), Failure> {
    for (from, to) in TARGET_FILES {
        match fs::rename(from, to) {
            Ok(()) => log.step(format_args!("renamed {from} over {to}")),
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(Failure::io(format!("cannot rename {from} over {to}"), err)),
        }
    }
    Ok(())
}

/// What to do once the system is prepared.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan<'a> {
    /// Execute this init.
    Init(&'a [u8]),
    /// `clay.rescue` asked for the rescue shell instead.
    Rescue,
}

pub fn plan(options: &BootOptions) -> Plan<'_> {
    if options.rescue {
        Plan::Rescue
    } else {
        Plan::Init(options.init())
    }
}

/// Replaces this process with `init`, passing on our arguments and environment as the kernel gave them.
///
/// Returns only on failure. The checks first give a clearer message than `execve`'s bare errno would.
pub fn exec_init(log: &mut Log, init: &[u8]) -> Failure {
    let path = Path::new(OsStr::from_bytes(init));
    let what = || format!("cannot run the init {}", path.display());
    match fs::metadata(path) {
        Err(err) => return Failure::io(what(), err),
        Ok(meta) if !meta.is_file() => return Failure::new(what(), "it is not a regular file"),
        Ok(_) => {}
    }
    if let Err(failure) = rustix::fs::access(path, Access::EXEC_OK).or_fail(what) {
        return failure;
    }
    log.step(format_args!("handing over to {}", path.display()));
    // The kernel passes the parameters it does not know (without `=`) as our arguments, and the rest as our
    // environment; `init=` it kept for itself. std resets the signal mask and SIGPIPE before executing.
    let err = Command::new(path).args(std::env::args_os().skip(1)).exec();
    Failure::io(format!("cannot execute the init {}", path.display()), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_the_command_line() {
        assert_eq!(plan(&BootOptions::parse(b"quiet")), Plan::Init(b"/sbin/init"));
        assert_eq!(plan(&BootOptions::parse(b"init=/bin/sh")), Plan::Init(b"/bin/sh"));
        assert_eq!(plan(&BootOptions::parse(b"init=/bin/sh clay.rescue")), Plan::Rescue);
        assert_eq!(plan(&BootOptions::parse(b"clay.rescue=0 init=/x")), Plan::Init(b"/x"));
    }

    #[test]
    fn exec_refuses_missing_and_non_executable_inits_with_a_clear_reason() {
        let mut log = Log::default();
        let failure = exec_init(&mut log, b"/nonexistent/clay-init-test");
        assert_eq!(failure.to_string(), "cannot run the init /nonexistent/clay-init-test: No such file or directory");
        let failure = exec_init(&mut log, b"/");
        assert_eq!(failure.to_string(), "cannot run the init /: it is not a regular file");
    }
}
