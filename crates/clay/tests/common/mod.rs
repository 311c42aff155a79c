//! Fixtures shared by the end-to-end tests: a Debian cloud kernel (downloaded once, cached), a tiny busybox
//! system built around it, and helpers to run the `clay` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Where downloaded fixtures are kept between runs: `$XDG_CACHE_HOME/claylinux-tests` or `~/.cache/...`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let dir = base.join("claylinux-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a shell script, failing the test with its output when it fails.
pub fn sh(script: &str) -> String {
    let out = Command::new("bash").arg("-euo").arg("pipefail").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The extracted `linux-image-*-cloud-amd64` package: `boot/vmlinuz-*` and `lib/modules/*`. Downloaded with
/// `apt-get download` on first use and kept in the cache; `flock` keeps parallel tests from racing.
pub fn debian_kernel() -> &'static Path {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let dir = cache_dir().join("kernel");
        sh(&format!(
            r#"mkdir -p {dir}; exec 9>{dir}.lock; flock 9
            if ! ls {dir}/root/boot/vmlinuz-* >/dev/null 2>&1; then
              cd {dir}; rm -rf root *.deb
              pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{{print $2; exit}}')
              [ -n "$pkg" ] || {{ echo "linux-image-cloud-amd64 is unknown to apt; run apt-get update" >&2; exit 1; }}
              apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
              dpkg-deb -x "$pkg"_*.deb root.tmp && mv root.tmp root && rm -f *.deb
            fi"#,
            dir = dir.display()
        ));
        dir.join("root")
    })
}

/// The cached kernel image and its release.
pub fn kernel_image() -> (PathBuf, String) {
    let boot = debian_kernel().join("boot");
    let entry = std::fs::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("vmlinuz-"))
        .expect("the kernel package has a vmlinuz");
    let release = entry.trim_start_matches("vmlinuz-").to_owned();
    (boot.join(entry), release)
}

/// Marker printed by the tiny system's own /sbin/init once it has checked itself.
pub const TINY_MARKER: &str = "CLAY-TINY-BOOTED";

/// Writes a tiny busybox system into `root`: the Debian cloud kernel in /boot (no modules: it boots from RAM
/// and needs none), busybox, and an /sbin/init that reports what the tests check, then powers off.
pub fn tiny_system(root: &Path) {
    let (kernel, release) = kernel_image();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists());
    let busybox = busybox.expect("busybox is needed for this test: install the busybox-static package");
    sh(&format!(
        r#"root={root}
        mkdir -p $root/bin $root/sbin $root/etc $root/proc $root/sys $root/dev $root/run $root/tmp $root/boot $root/lib/modules/{release}
        cp {busybox} $root/bin/busybox
        for app in sh cat echo mount umount mkdir poweroff pivot_root awk grep ls sleep sync stat; do ln -sf busybox $root/bin/$app; done
        cp {kernel} $root/boot/
        printf 'NAME="Clay Tiny"\nPRETTY_NAME="Clay Tiny Test System"\nID=claytiny\n' > $root/etc/os-release
        printf '127.0.0.1 tiny.example\n' > $root/etc/hosts.target
        printf 'build host\n' > $root/etc/hosts
        chmod 1777 $root/tmp
        cat > $root/sbin/init <<'INIT'
#!/bin/sh
echo "tiny: pid $$"
echo "tiny: hosts $(cat /etc/hosts)"
echo "tiny: cmdline $(cat /proc/cmdline)"
# The root must be a real mount (it has a parent) so that pivot_root works for container runtimes.
awk '$5 == "/" {{ print "tiny: root mount " $1 " parent " $2 " fs " $9 }}' /proc/self/mountinfo
mkdir -p /newroot && mount -t tmpfs scratch /newroot && mkdir -p /newroot/old && cd /newroot \
  && pivot_root . old && echo "tiny: pivot_root works"
echo {marker}
/old/bin/busybox sync
/old/bin/busybox poweroff -f
INIT
        chmod 755 $root/sbin/init
        "#,
        root = root.display(),
        kernel = kernel.display(),
        marker = TINY_MARKER,
    ));
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

/// Boots a UKI under OVMF and returns the console output once `marker` appeared.
pub fn boot_efi(image: &Path, marker: &str, memory_mib: u32, timeout_s: u64) -> String {
    let mut opts = clay_qemu::RunOptions::new(clay_qemu::Boot::Efi(image.to_owned()));
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
