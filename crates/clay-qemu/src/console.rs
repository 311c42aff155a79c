//! Running qemu with its serial console captured: reader threads, a deadline, and a child that never outlives us.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::QemuError;

/// How many console lines an error message quotes.
const TAIL_LINES: usize = 40;
/// How many lines of qemu's own stderr an error message quotes.
const STDERR_TAIL_LINES: usize = 20;
/// How often we look for the child's exit once both its pipes have closed.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// One read from one of the child's pipes; an empty chunk means end of file.
enum Chunk {
    Out(Vec<u8>),
    Err(Vec<u8>),
}

/// Why [`Session::wait`] returned.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The stop condition held.
    Stopped,
    /// qemu exited by itself.
    Exited(ExitStatus),
    /// The deadline passed first.
    TimedOut,
}

/// A running qemu whose stdout (the serial console) and stderr are collected. Dropping it kills and reaps qemu.
pub(crate) struct Session {
    child: Child,
    chunks: Receiver<Chunk>,
    open_pipes: u8,
    /// Everything the console printed so far.
    pub out: Vec<u8>,
    /// Everything qemu itself printed to stderr so far.
    pub err: Vec<u8>,
    echo: Option<Utf8Echo>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("pid", &self.child.id()).field("console_bytes", &self.out.len()).finish()
    }
}

impl Session {
    /// Starts `cmd` with stdin closed and both output pipes read by background threads. With `echo`, console
    /// output is copied to our stderr as it arrives (through `eprint!`, so the test harness captures it).
    pub fn spawn(mut cmd: Command, echo: bool) -> Result<Session, QemuError> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(QemuError::Spawn)?;
        let (tx, chunks) = mpsc::channel();
        let mut open_pipes = 0;
        if let Some(stdout) = child.stdout.take() {
            pump(stdout, tx.clone(), Chunk::Out);
            open_pipes += 1;
        }
        if let Some(stderr) = child.stderr.take() {
            pump(stderr, tx, Chunk::Err);
            open_pipes += 1;
        }
        Ok(Session { child, chunks, open_pipes, out: Vec::new(), err: Vec::new(), echo: echo.then(Utf8Echo::default) })
    }

    /// Collects output until `stop(console, stderr)` holds, qemu exits, or `deadline` passes.
    pub fn wait(
        &mut self,
        deadline: Instant,
        mut stop: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<Outcome, QemuError> {
        loop {
            if stop(&self.out, &self.err) {
                return Ok(Outcome::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Outcome::TimedOut);
            }
            if self.open_pipes == 0 {
                // Both pipes are closed, so qemu is exiting: reap it, still within the deadline.
                if let Some(status) = self.child.try_wait().map_err(QemuError::Wait)? {
                    return Ok(Outcome::Exited(status));
                }
                std::thread::sleep(EXIT_POLL.min(deadline - now));
                continue;
            }
            match self.chunks.recv_timeout(deadline - now) {
                Ok(Chunk::Out(bytes)) if bytes.is_empty() => self.open_pipes -= 1,
                Ok(Chunk::Err(bytes)) if bytes.is_empty() => self.open_pipes -= 1,
                Ok(Chunk::Out(bytes)) => {
                    if let Some(echo) = &mut self.echo {
                        echo.write(&bytes);
                    }
                    self.out.extend_from_slice(&bytes);
                }
                Ok(Chunk::Err(bytes)) => self.err.extend_from_slice(&bytes),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.open_pipes = 0,
            }
        }
    }

    /// The console output so far as text.
    pub fn console_text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    /// The last console lines, for error messages.
    pub fn console_tail(&self) -> String {
        tail_lines(&self.out, TAIL_LINES)
    }

    /// qemu's own last stderr lines, introduced for appending to an error message; empty when it said nothing.
    pub fn qemu_said(&self) -> String {
        let said = tail_lines(&self.err, STDERR_TAIL_LINES);
        if said.trim().is_empty() {
            String::new()
        } else {
            format!("\nqemu said:\n{said}")
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Errors mean qemu already exited (kill) or was already reaped (wait): nothing is left to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(echo) = &mut self.echo {
            echo.finish();
        }
    }
}

/// Reads `pipe` on its own thread until end of file, sending each read (and a final empty chunk) to `tx`.
fn pump(mut pipe: impl Read + Send + 'static, tx: Sender<Chunk>, wrap: fn(Vec<u8>) -> Chunk) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(wrap(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(wrap(Vec::new()));
    });
}

/// Copies console bytes to stderr as text, holding back a UTF-8 sequence split across reads.
#[derive(Debug, Default)]
struct Utf8Echo {
    pending: Vec<u8>,
}

impl Utf8Echo {
    fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // An incomplete sequence at the end (no error length) may be finished by the next read.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let rest = self.pending.split_off(complete);
        eprint!("{}", String::from_utf8_lossy(&self.pending));
        self.pending = rest;
    }

    fn finish(&mut self) {
        if !self.pending.is_empty() {
            eprint!("{}", String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
        eprintln!();
    }
}

/// The last `n` lines of `bytes` as lossy text, carriage returns dropped so serial `\r\n` reads as one break.
pub(crate) fn tail_lines(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().map(|line| line.trim_end_matches('\r')).collect();
    let start = lines.len().saturating_sub(n);
    let mut tail = lines[start..].join("\n");
    if tail.is_empty() {
        tail.push_str("(none)");
    }
    tail
}

/// Whether `needle` occurs in `haystack` at or after `from`, so repeated searches of a growing buffer stay linear.
pub(crate) fn contains_from(haystack: &[u8], needle: &[u8], from: usize) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack.get(from..).is_some_and(|rest| rest.windows(needle.len()).any(|w| w == needle))
}

/// A stop condition for [`Session::wait`] that holds once `marker` appears on the console.
pub(crate) fn marker_seen(marker: &str) -> impl FnMut(&[u8], &[u8]) -> bool + '_ {
    let mut searched = 0usize;
    move |out, _| {
        let start = searched.saturating_sub(marker.len().saturating_sub(1));
        searched = out.len();
        contains_from(out, marker.as_bytes(), start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines_without_carriage_returns() {
        let text: String = (0..50).map(|i| format!("line {i}\r\n")).collect();
        let tail = tail_lines(text.as_bytes(), 3);
        assert_eq!(tail, "line 47\nline 48\nline 49");
        assert_eq!(tail_lines(b"", 3), "(none)");
    }

    #[test]
    fn marker_found_across_chunk_boundaries() {
        let mut seen = marker_seen("HELLO");
        let mut buf = b"xxHEL".to_vec();
        assert!(!seen(&buf, b""));
        buf.extend_from_slice(b"LO");
        assert!(seen(&buf, b""));
    }

    #[test]
    fn session_stops_on_marker_and_reports_exit() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo MARK; echo oops >&2; sleep 30"]);
        let mut session = Session::spawn(cmd, false).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let started = Instant::now();
        assert!(matches!(session.wait(deadline, marker_seen("MARK")).unwrap(), Outcome::Stopped));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(session);

        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let mut session = Session::spawn(cmd, false).unwrap();
        let outcome = session.wait(deadline, marker_seen("never")).unwrap();
        assert!(matches!(outcome, Outcome::Exited(status) if status.code() == Some(3)), "{outcome:?}");
        assert_eq!(session.console_text(), "out\n");
        assert_eq!(session.qemu_said(), "\nqemu said:\nerr");
    }

    #[test]
    fn session_times_out() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut session = Session::spawn(cmd, false).unwrap();
        let outcome = session.wait(Instant::now() + Duration::from_millis(200), |_, _| false).unwrap();
        assert!(matches!(outcome, Outcome::TimedOut));
    }
}
