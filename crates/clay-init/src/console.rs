//! Messages on the console: one line each, written unbuffered to stderr, never panicking.
//!
//! The kernel opens `/dev/console` as fds 0-2 for the initramfs init when the archive holds that device node.

use std::fmt::{self, Display};
use std::io::{self, Write};
use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags};

/// Every line starts with this, so the user can tell our words from the kernel's and the init's.
const PREFIX: &str = "clay-init: ";

/// Writes one line. `eprintln!` would panic when the console is gone; PID 1 must not.
pub fn say(message: impl Display) {
    let line = format!("{PREFIX}{message}\n");
    let _ = io::stderr().write_all(line.as_bytes());
}

/// The console log: errors always, step-by-step progress only with `clay.debug`.
///
/// Whether `clay.debug` is set is known only once `/proc` is mounted, so progress is held back until then.
#[derive(Debug, Default)]
pub struct Log {
    debug: Option<bool>,
    pending: Vec<String>,
}

impl Log {
    /// Reports progress when `clay.debug` is set.
    pub fn step(&mut self, message: impl Display) {
        match self.debug {
            Some(true) => say(message),
            Some(false) => {}
            None => self.pending.push(message.to_string()),
        }
    }

    /// Settles whether progress is shown, printing what was held back if it is.
    pub fn set_debug(&mut self, on: bool) {
        self.debug = Some(on);
        for message in std::mem::take(&mut self.pending) {
            if on {
                say(message);
            }
        }
    }
}

/// A step that failed: what was attempted and why it failed, printed as `what: why`.
#[derive(Debug)]
pub struct Failure {
    what: String,
    why: String,
}

impl Failure {
    pub fn new(what: impl Into<String>, why: impl Display) -> Self {
        Failure { what: what.into(), why: why.to_string() }
    }

    pub fn io(what: impl Into<String>, err: impl Into<io::Error>) -> Self {
        Failure { what: what.into(), why: describe(&err.into()) }
    }
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// Attaches what was being attempted to an I/O error.
pub trait OrFail<T> {
    fn or_fail(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: Into<io::Error>> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|err| Failure::io(what(), err))
    }
}

/// The C library's text for an error (`No such device`), without std's ` (os error 19)` tail.
pub fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// Puts `/dev/console` on fds 0-2 when the kernel could not (no `/dev/console` node in the archive).
///
/// The Rust runtime then put `/dev/null` there, so messages would vanish; once devtmpfs is mounted the console
/// node exists and can be opened.
pub fn reopen_if_lost(log: &mut Log) {
    const DEV_NULL: (u32, u32) = (1, 3);
    let lost = match rustix::fs::fstat(io::stderr().as_fd()) {
        Ok(stat) => {
            let dev = rustix::fs::Dev::from(stat.st_rdev);
            (rustix::fs::major(dev), rustix::fs::minor(dev)) == DEV_NULL
        }
        Err(_) => true,
    };
    if !lost {
        return;
    }
    let Ok(console) = rustix::fs::open("/dev/console", OFlags::RDWR | OFlags::NOCTTY, Mode::empty()) else {
        return;
    };
    let _ = rustix::stdio::dup2_stdin(&console);
    let _ = rustix::stdio::dup2_stdout(&console);
    let _ = rustix::stdio::dup2_stderr(&console);
    log.step("opened /dev/console for the standard streams");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_strerror() {
        let err = io::Error::from_raw_os_error(19);
        assert_eq!(describe(&err), "No such device");
        let f = Failure::io("cannot mount proc on /proc", rustix::io::Errno::NODEV);
        assert_eq!(f.to_string(), "cannot mount proc on /proc: No such device");
        assert_eq!(describe(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn progress_is_held_until_debug_is_known() {
        let mut log = Log::default();
        log.step("a");
        assert_eq!(log.pending, ["a"]);
        log.set_debug(false);
        assert!(log.pending.is_empty());
        log.step("b");
        assert!(log.pending.is_empty());
    }
}
