//! Test helpers shared by the claylinux crates: feeding bytes to reference tools (the oracles: cpio, bsdtar, zstd,
//! xz, ...), running shell fixtures, the example kernel and its modules, and building test trees ([`trees`]). A
//! missing tool fails the test with a message saying how to install it; tests never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod registry;
pub mod trees;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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

/// The MD5 sum of `bytes` in hex, as `md5sum` prints it.
pub fn md5sum(bytes: &[u8]) -> String {
    pipe_text(&["md5sum"], bytes).split_whitespace().next().unwrap().to_owned()
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

/// The Debian cloud kernel of the tiny example: `examples/tiny/make-rootfs.sh` downloads it once and caches it;
/// built once per test process. `CLAY_TEST_KERNEL` overrides it.
pub fn example_kernel() -> PathBuf {
    if let Some(kernel) = std::env::var_os("CLAY_TEST_KERNEL") {
        return PathBuf::from(kernel);
    }
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let root = tempfile::tempdir().unwrap().keep();
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tiny/make-rootfs.sh");
            sh(&format!("bash {} {}", script.display(), root.display()));
            let kernel = std::fs::read_dir(root.join("boot"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")));
            kernel.expect("the tiny example has a kernel")
        })
        .clone()
}

/// The release of [`example_kernel`]: its file name after `vmlinuz-`.
pub fn example_kernel_release() -> String {
    let kernel = example_kernel();
    kernel.file_name().unwrap().to_str().unwrap().trim_start_matches("vmlinuz-").to_owned()
}

/// The unpacked Debian kernel package [`example_kernel`] came from, as `examples/tiny/make-rootfs.sh` caches it:
/// `kernel/root` in `$CLAY_CACHE`, else in `$XDG_CACHE_HOME/claylinux`, else in `~/.cache/claylinux`.
pub fn kernel_package_root() -> PathBuf {
    let cache = std::env::var_os("CLAY_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"))
            .join("claylinux")
    });
    cache.join("kernel/root")
}

/// The module directory of [`example_kernel`] in its package: `lib/modules/<release>` in [`kernel_package_root`].
pub fn kernel_modules_dir() -> PathBuf {
    kernel_package_root().join("lib/modules").join(example_kernel_release())
}

/// One module file of [`example_kernel`], by its path below `kernel/` in [`kernel_modules_dir`] (such as
/// `fs/squashfs/squashfs.ko`); fails the test if the package lacks it.
pub fn kernel_module(rel_path: &str) -> PathBuf {
    let path = kernel_modules_dir().join("kernel").join(rel_path);
    assert!(path.is_file(), "{} is missing; examples/tiny/make-rootfs.sh caches the kernel package", path.display());
    path
}

/// The module files `rel_paths` of [`example_kernel`] (as [`kernel_module`] takes them), in that order, as (file
/// name, bytes): for [`files_cpio`].
pub fn kernel_module_files(rel_paths: &[&str]) -> Vec<(String, Vec<u8>)> {
    let paths: Vec<PathBuf> = rel_paths.iter().map(|rel| kernel_module(rel)).collect();
    paths.iter().map(|m| (m.file_name().unwrap().to_str().unwrap().to_owned(), std::fs::read(m).unwrap())).collect()
}

/// (name, mode, device numbers, data) of one archive entry.
type CpioEntry<'a> = (&'a str, u32, (u32, u32), &'a [u8]);

/// A minimal initramfs (cpio newc): static busybox, `/dev/console`, and `init` as `/init`.
pub fn busybox_initramfs(init: &str) -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox is missing; install the busybox-static package");
    let entries: [CpioEntry<'_>; 5] = [
        ("bin", 0o040_755, (0, 0), b""),
        ("bin/busybox", 0o100_755, (0, 0), &busybox),
        ("dev", 0o040_755, (0, 0), b""),
        ("dev/console", 0o020_600, (5, 1), b""),
        ("init", 0o100_755, (0, 0), init.as_bytes()),
    ];
    cpio_archive(1, &entries)
}

/// [`busybox_initramfs`] with [`files_cpio`] of `files` after it, 4-byte aligned: the kernel unpacks concatenated
/// archives (buffer-format.rst), so `init` finds the files in `/`.
pub fn busybox_initramfs_with(init: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut initrd = busybox_initramfs(init);
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    initrd.extend_from_slice(&files_cpio(files));
    initrd
}

/// A cpio newc archive of regular files (mode 0644, inode numbers from 100), to append after another archive:
/// the kernel unpacks each over the ones before it.
pub fn files_cpio(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<CpioEntry<'_>> =
        files.iter().map(|(name, data)| (name.as_str(), 0o100_644, (0, 0), data.as_slice())).collect();
    cpio_archive(100, &entries)
}

/// Writes `entries` as one archive, numbering inodes from `first_ino`.
fn cpio_archive(first_ino: u32, entries: &[CpioEntry<'_>]) -> Vec<u8> {
    let mut cpio = clay_cpio::Writer::new(Vec::new());
    for (ino, &(name, mode, rdev, data)) in (first_ino..).zip(entries) {
        let header = clay_cpio::Header {
            name: name.as_bytes(),
            ino,
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            filesize: u32::try_from(data.len()).unwrap(),
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
        };
        cpio.entry(&header).unwrap();
        cpio.data().write_all(data).unwrap();
    }
    cpio.finish().unwrap()
}
