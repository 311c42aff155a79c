//! Test helpers shared by the claylinux crates: feeding bytes to reference tools (the oracles: cpio, bsdtar, zstd,
//! xz, ...) and running shell fixtures. A missing tool fails the test with a message saying how to install it;
//! tests never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `cmd` with `input` on its standard input and returns its standard output; fails the test if the tool is
/// missing or fails.
pub fn pipe(cmd: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{}` is needed for this test; scripts/setup.sh installs it: {e}", cmd[0]));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Fed from a thread: a tool that writes as it reads would otherwise deadlock on a full pipe.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout
}

/// [`pipe`], with the output as text.
pub fn pipe_text(cmd: &[&str], input: &[u8]) -> String {
    String::from_utf8(pipe(cmd, input)).unwrap()
}

/// Runs a bash script (`-euo pipefail`) and returns its standard output; a failure fails the test with the
/// script and everything it printed.
pub fn sh(script: &str) -> String {
    run_script(Command::new("bash").arg("-euo").arg("pipefail").arg("-c").arg(script), script)
}

/// [`sh`] in the directory `dir`.
pub fn sh_in(dir: &Path, script: &str) -> String {
    run_script(Command::new("bash").arg("-euo").arg("pipefail").arg("-c").arg(script).current_dir(dir), script)
}

fn run_script(cmd: &mut Command, script: &str) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
