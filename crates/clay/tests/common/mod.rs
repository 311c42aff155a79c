//! Fixtures shared by the end-to-end tests: a Debian cloud kernel (downloaded once, cached), a tiny busybox
//! system built around it, and helpers to run the `clay` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use clay_testkit::sh;

/// The repository's `examples/` directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Marker the tiny example's /sbin/init prints once it has reported on itself.
pub const TINY_MARKER: &str = "Welcome to claylinux: the tiny example is up";
/// Kernel parameter that makes the tiny example power off instead of starting a shell.
pub const TINY_CMDLINE: &str = "console=ttyS0 panic=-1 tiny.poweroff";

/// Writes the tiny example system (busybox, a Debian cloud kernel fetched once and cached) into `root` and
/// returns its kernel release.
pub fn tiny_system(root: &Path) -> String {
    sh(&format!("bash {}/tiny/make-rootfs.sh {}", examples().display(), root.display()));
    let entry = std::fs::read_dir(root.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("vmlinuz-"))
        .expect("the tiny system has a kernel");
    entry.trim_start_matches("vmlinuz-").to_owned()
}

/// The `clay` binary under test.
pub fn clay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clay"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Runs clay and asserts success, returning its output.
pub fn clay_ok(args: &[&str]) -> Output {
    let out = clay().args(args).output().unwrap();
    assert!(out.status.success(), "clay {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs clay and asserts failure, returning its stderr.
pub fn clay_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "clay unexpectedly succeeded:\n{stderr}");
    stderr
}

/// `base` with `.ext` appended: the output `clay build -o BASE` writes for that format.
pub fn with_ext(base: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.{ext}", base.display()))
}

/// Builds the tiny example system into `work/NAME.*` and returns that base path. The system is made once per `work`
/// directory (in `work/rootfs`); each of `formats` becomes a `--format`, `extra` follows as it is, and the build runs
/// with the tiny command line and a fixed SOURCE_DATE_EPOCH (1700000000).
pub fn build_tiny(work: &Path, name: &str, formats: &[&str], extra: &[&str]) -> PathBuf {
    let root = work.join("rootfs");
    if !root.exists() {
        tiny_system(&root);
    }
    let base = work.join(name);
    let mut cmd = clay();
    cmd.args(["build", root.to_str().unwrap(), "-o", base.to_str().unwrap(), "--cmdline", TINY_CMDLINE]);
    for f in formats {
        cmd.args(["--format", f]);
    }
    let out = cmd.args(extra).env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    base
}

/// Boots a UKI under OVMF and returns the console output once `marker` appeared.
pub fn boot_efi(image: &Path, marker: &str, memory_mib: u32, timeout_s: u64) -> String {
    let mut opts = clay_qemu::RunOptions::new(clay_qemu::Boot::Efi(image.to_owned()));
    opts.memory_mib = memory_mib;
    let vm = clay_qemu::Vm::prepare(&opts, &mut |n| eprintln!("{n}")).unwrap();
    vm.run_until(marker, std::time::Duration::from_secs(timeout_s)).unwrap()
}

/// Boots a raw disk under OVMF (writes go to a throwaway overlay) and returns the console once `marker` appeared.
pub fn boot_disk(image: &Path, marker: &str, memory_mib: u32, timeout_s: u64) -> String {
    let boot = clay_qemu::Boot::Disk { path: image.to_owned(), format: clay_qemu::DiskFormat::Raw };
    let mut opts = clay_qemu::RunOptions::new(boot);
    opts.memory_mib = memory_mib;
    let vm = clay_qemu::Vm::prepare(&opts, &mut |n| eprintln!("{n}")).unwrap();
    vm.run_until(marker, std::time::Duration::from_secs(timeout_s)).unwrap()
}

/// Bytes of one section of a PE image.
pub fn pe_section(image: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(image).unwrap();
    let info = clay_pe::read_sections(&bytes[..bytes.len().min(65536)]).unwrap();
    let s = info.sections.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name} section"));
    let start = s.raw_offset as usize;
    bytes[start..start + s.virtual_size as usize].to_vec()
}

/// Where test fixtures are cached between runs: `$XDG_CACHE_HOME/claylinux` or `~/.cache/claylinux`, shared with
/// the examples' own cache.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("CLAY_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join("claylinux")
    });
    std::fs::create_dir_all(&base).unwrap();
    base
}

/// The Debian example as a tarball, built by `examples/debian/make-rootfs.sh` on first use and cached under a
/// name that changes with the script, so editing the example rebuilds it.
pub fn debian_rootfs_tar() -> PathBuf {
    use sha2::Digest;
    let script = examples().join("debian/make-rootfs.sh");
    let digest = sha2::Sha256::digest(std::fs::read(&script).unwrap());
    let key: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let tar = cache_dir().join(format!("debian-bookworm-{key}.tar"));
    sh(&format!(
        "exec 9>{tar}.lock; flock 9; [ -s {tar} ] || {{ bash {script} {tar}.tmp.tar && mv {tar}.tmp.tar {tar}; }}",
        tar = tar.display(),
        script = script.display()
    ));
    tar
}

/// Runs `clay run ARGS` without a terminal until qemu exits (the guest powers off), within `timeout_s`; returns the
/// exit status, the console (stdout) and clay's own messages (stderr).
pub fn clay_run(args: &[&str], timeout_s: u64) -> (std::process::ExitStatus, String, String) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = clay()
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes from threads so a chatty guest never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(&mut stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(&mut stderr).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("clay run {args:?} did not end within {timeout_s} s:\n{}", out.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// Polls `ready` every 10 ms until it holds; after a minute the test fails, saying `what` never happened.
pub fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether process `pid` has ended: it is gone, or a zombie nobody has reaped yet.
pub fn process_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// Whether process `pid` ends within two seconds. One that does not is killed, so a failing test leaves nothing
/// running.
pub fn ends_soon(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !process_ended(pid) {
        if std::time::Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

/// Shell lines with which a stand-in program writes its process ID to `file`, whole or not at all.
pub fn write_pid(file: &Path) -> String {
    format!("echo $$ > {0}.tmp\nmv {0}.tmp {0}\n", file.display())
}

/// The process ID a stand-in wrote with [`write_pid`], once it has; `what` names the program for the failure.
pub fn pid_from(file: &Path, what: &str) -> u32 {
    wait_until(&format!("{what} never started"), || file.exists());
    std::fs::read_to_string(file).unwrap().trim().parse().unwrap()
}

/// Writes the shell script `body` as the program `dir/name`, and returns `PATH` with `dir` first.
pub fn stand_in(dir: &Path, name: &str, body: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let program = dir.join(name);
    std::fs::write(&program, format!("#!/bin/sh\n{body}")).unwrap();
    sh(&format!("chmod 755 {}", program.display()));
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

/// Environment that gives podman (and so the podman clay starts) a private store and this machine's sandbox
/// settings: vfs storage under `work`, cgroupfs, chroot isolation for `RUN` steps.
pub fn private_podman_env(work: &Path) -> Vec<(String, String)> {
    let storage = work.join("storage.conf");
    std::fs::write(
        &storage,
        format!("[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/runroot\"\n", work.display()),
    )
    .unwrap();
    let conf = work.join("containers.conf");
    std::fs::write(&conf, "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n").unwrap();
    vec![
        ("CONTAINERS_STORAGE_CONF".into(), storage.display().to_string()),
        ("CONTAINERS_CONF".into(), conf.display().to_string()),
        ("BUILDAH_ISOLATION".into(), "chroot".into()),
        ("CLAY_CONTAINER_ENGINE".into(), "podman".into()),
    ]
}
