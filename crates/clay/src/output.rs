//! Output files that appear whole or not at all, and scratch directories that never outlive the run.
//!
//! Each output is written to a temporary file beside its final path and renamed into place only when complete.
//! Intermediate files with names (a pulled image, a saved archive, a key set being made) live in a [`ScratchDir`].
//! A failed run drops both; an interrupted one (SIGINT, SIGTERM, SIGHUP) has them removed by the signal handler
//! before the process exits, since destructors do not run then. The handler first stops every child process (the
//! container engine, QEMU, its KVM probe, a credential helper): a signal sent to clay alone (`kill PID`, a service
//! manager stopping it) never reaches them, and they would run on with nobody waiting. Last it runs the
//! [`UndoOnInterrupt`] commands that take back what a run did elsewhere. From the moment it starts, the process is
//! its to end: a thread that sees a child fail because the handler stopped it waits for the end instead of
//! reporting the failure ([`park_if_interrupted`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Temporary files to remove if the process is interrupted.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Scratch directories to remove, with all they hold, if the process is interrupted.
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Commands that undo what a run did outside its files (an image tagged in a container engine's store), to run if
/// the process is interrupted; each with the number that deregisters it.
static UNDO: Mutex<Vec<(u64, Vec<String>)>> = Mutex::new(Vec::new());
static UNDO_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Set by the signal handler as it starts: the process is ending, whatever else finishes meanwhile.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// What the handler's message adds after "interrupted": what became of the command's work ([`on_interrupt_say`]).
static INTERRUPT_NOTE: Mutex<&str> = Mutex::new("");
static HANDLER: Once = Once::new();

/// How long an interrupted run waits for its children to end after asking them (SIGTERM), before it kills them.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Exit status for a run ended by a signal, as shells report SIGINT (128 + 2).
const INTERRUPTED_EXIT: i32 = 130;

/// An output being written; [`commit`](Self::commit) renames it into place.
#[derive(Debug)]
pub struct PendingOutput {
    /// Always `Some` until committed.
    temp: Option<tempfile::NamedTempFile>,
    target: PathBuf,
}

impl PendingOutput {
    /// Creates the temporary file for `target` in its directory (created if missing).
    pub fn create(target: &Path) -> Result<Self> {
        install_handler();
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the output directory `{}`", dir.display()))?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".clay-tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in `{}`", dir.display()))?;
        lock(&PENDING).push(temp.path().to_owned());
        Ok(PendingOutput { temp: Some(temp), target: target.to_owned() })
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn file(&mut self) -> Result<&mut File> {
        Ok(self.temp.as_mut().context("the output was already committed")?.as_file_mut())
    }

    /// Renames the file to its final name. Like other build tools, clay does not fsync: an output is whole once
    /// clay exits successfully, and an interrupted run leaves none; durability across power loss is the
    /// filesystem's (and `sync`'s) business, and fsyncing hundreds of megabytes would dominate the build.
    pub fn commit(mut self) -> Result<PathBuf> {
        park_if_interrupted();
        let temp = self.temp.take().context("the output was already committed")?;
        let temp_path = temp.path().to_owned();
        let result = (|| {
            // Outputs are readable like any build artifact, not 0600 as temporary files are created.
            set_mode(temp.as_file(), 0o644)?;
            temp.persist(&self.target).with_context(|| format!("cannot create `{}`", self.target.display()))?;
            Ok(self.target.clone())
        })();
        untrack(&PENDING, &temp_path);
        result
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        // An uncommitted output: NamedTempFile's own drop removes the file; stop tracking it.
        if let Some(temp) = &self.temp {
            untrack(&PENDING, temp.path());
        }
    }
}

/// A private temporary directory for what a run needs on disk but does not output: removed, with everything in it,
/// when dropped or when the run is interrupted.
#[derive(Debug)]
pub struct ScratchDir {
    /// Always `Some` until kept.
    dir: Option<tempfile::TempDir>,
}

impl ScratchDir {
    /// A fresh directory in the system's temporary directory (`TMPDIR`), named `PREFIXrandom`.
    pub fn create(prefix: &str) -> Result<Self> {
        Self::create_in(&std::env::temp_dir(), prefix)
    }

    /// A fresh directory in `parent`, named `PREFIXrandom`.
    pub fn create_in(parent: &Path, prefix: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a directory in `{}`", parent.display()))?;
        install_handler();
        lock(&SCRATCH).push(dir.path().to_owned());
        Ok(Self { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), tempfile::TempDir::path)
    }

    /// Stops removing the directory, on drop or on interrupt: for one that was renamed into place.
    pub fn keep(mut self) {
        if let Some(dir) = self.dir.take() {
            untrack(&SCRATCH, dir.path());
            let _ = dir.keep();
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // TempDir's own drop removes the directory; stop tracking it.
        if let Some(dir) = &self.dir {
            untrack(&SCRATCH, dir.path());
        }
    }
}

/// A command that undoes something the run did outside its files, run by the signal handler if the process is
/// interrupted while this is alive. Dropping it means the run undid the thing itself (or no longer needs to).
#[derive(Debug)]
pub struct UndoOnInterrupt {
    id: u64,
}

impl UndoOnInterrupt {
    /// `command[0]` with the rest as its arguments; its output is discarded and its failure ignored.
    pub fn register(command: Vec<String>) -> Self {
        install_handler();
        let id = UNDO_IDS.fetch_add(1, Ordering::Relaxed);
        lock(&UNDO).push((id, command));
        Self { id }
    }
}

impl Drop for UndoOnInterrupt {
    fn drop(&mut self) {
        lock(&UNDO).retain(|(id, _)| *id != self.id);
    }
}

/// Runs `command` to its end, like [`Command::status`]. If clay is interrupted meanwhile, the signal handler stops
/// the child and ends the process, and this never returns: the caller cannot mistake the stopped child for one
/// that failed.
pub fn status_of(command: &mut Command) -> std::io::Result<ExitStatus> {
    install_handler();
    park_if_interrupted();
    let status = command.status();
    park_if_interrupted();
    status
}

/// Blocks for good if the signal handler is ending the process: whatever this thread was about to do (report a
/// child's failure, commit an output, exit) is no longer wanted.
pub fn park_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Asks every child of this process to end (SIGTERM), waits up to [`STOP_GRACE`] for them to be gone (the threads
/// waiting for them reap them), and kills (SIGKILL) the ones still there.
fn stop_children() {
    use rustix::process::{kill_process, Pid, Signal};
    let send = |pid: u32, signal: Signal| {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, signal);
        }
    };
    let children = children_of(std::process::id());
    for &pid in &children {
        send(pid, Signal::TERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while children.iter().any(|p| running(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in children.iter().filter(|p| running(**p)) {
        send(pid, Signal::KILL);
    }
}

/// The running (not yet ended) processes whose parent is `parent`, from `/proc`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| proc_stat(*pid).is_some_and(|(state, ppid)| ppid == parent && state != 'Z'))
        .collect()
}

/// Whether `pid` exists and has not ended (a zombie has ended; its waiter has yet to reap it).
fn running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// A process's state letter and parent, from `/proc/PID/stat` (proc(5): `pid (comm) state ppid ...`; the command
/// name may hold spaces and parentheses, so the fields are read after its last `)`).
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

fn set_mode(file: &File, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode)).context("cannot set the output's permissions")
}

/// Forgets `path` in `list` (of [`PENDING`] or [`SCRATCH`]): it is the run's own business again.
fn untrack(list: &Mutex<Vec<PathBuf>>, path: &Path) {
    lock(list).retain(|p| p != path);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets what an interrupted run says became of its work, after "clay: interrupted; " (for a command that writes
/// outputs, "no output was written"). Without it the message is "clay: interrupted".
pub fn on_interrupt_say(note: &'static str) {
    *lock(&INTERRUPT_NOTE) = note;
}

/// Installs the signal handler (once; every type here does it too, so library-like callers need not).
pub fn install_handler() {
    HANDLER.call_once(|| {
        // If another handler is already installed there is nothing better to do than keep it.
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            stop_children();
            for path in lock(&PENDING).drain(..) {
                let _ = std::fs::remove_file(path);
            }
            for path in lock(&SCRATCH).drain(..) {
                // Another thread may still be adding a file to it: a second pass takes what the first missed.
                if std::fs::remove_dir_all(&path).is_err() {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
            for (_, command) in lock(&UNDO).drain(..) {
                if let Some((program, args)) = command.split_first() {
                    let _ = Command::new(program)
                        .args(args)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status();
                }
            }
            match *lock(&INTERRUPT_NOTE) {
                "" => eprintln!("clay: interrupted"),
                note => eprintln!("clay: interrupted; {note}"),
            }
            std::process::exit(INTERRUPTED_EXIT);
        });
    });
}

/// The output path for a format: `-o PATH` as given when it already ends with the extension, else with the
/// extension appended (DESIGN.md §2).
pub fn output_path(base: &Path, extension: &str) -> PathBuf {
    let dotted = format!(".{extension}");
    if base.to_string_lossy().ends_with(&dotted) {
        base.to_owned()
    } else {
        let mut s = base.as_os_str().to_owned();
        s.push(dotted);
        PathBuf::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_follow_the_extension_rule() {
        assert_eq!(output_path(Path::new("out/os.efi"), "efi"), PathBuf::from("out/os.efi"));
        assert_eq!(output_path(Path::new("out/os"), "efi"), PathBuf::from("out/os.efi"));
        assert_eq!(output_path(Path::new("os.v1"), "efi"), PathBuf::from("os.v1.efi"));
    }
}
