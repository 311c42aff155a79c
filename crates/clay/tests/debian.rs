//! End to end: a real Debian bookworm system with systemd becomes a UKI that boots to multi-user.target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Printed by the Debian example's `claylinux-hello.service`, which runs after multi-user.target.
const DEBIAN_MARKER: &str = "Welcome to claylinux: Debian GNU/Linux 12 (bookworm) is up";

#[test]
fn debian_with_systemd_boots_in_ram_and_compressed_and_compressed_saves_memory() {
    let tar = debian_rootfs_tar();
    let work = tempfile::tempdir().unwrap();
    let efi = work.path().join("debian.efi");
    clay_ok(&["build", &format!("tar:{}", tar.display()), "--root", "ram", "-o", efi.to_str().unwrap()]);
    let console = boot_efi(&efi, DEBIAN_MARKER, 2048, 420);
    assert!(console.contains("Multi-User System"), "systemd reached multi-user.target:\n{console}");
    // ping's file capability crossed the initramfs (which cannot carry xattrs) through clay-init's manifest.
    assert!(console.contains("ping has /usr/bin/ping cap_net_raw=ep"), "{console}");
    let ram = mem_available_kib(&console);

    // The same system kept compressed in RAM (the default): a squashfs under a tmpfs overlay leaves far more memory
    // free.
    let efi = work.path().join("compressed.efi");
    clay_ok(&["build", &format!("tar:{}", tar.display()), "-o", efi.to_str().unwrap()]);
    let console = boot_efi(&efi, DEBIAN_MARKER, 2048, 420);
    assert!(console.contains("claylinux: root is overlay"), "{console}");
    assert!(console.contains("ping has /usr/bin/ping cap_net_raw=ep"), "squashfs keeps xattrs:\n{console}");
    let compressed = mem_available_kib(&console);
    eprintln!("MemAvailable after boot: ram {ram} kB, compressed {compressed} kB");
    assert!(
        compressed >= ram + 150 * 1024,
        "--root compressed leaves {compressed} kB available, --root ram {ram} kB: less than 150 MiB more"
    );
}

/// The `MemAvailable: N kB` the example's hello service prints once the system is up.
fn mem_available_kib(console: &str) -> u64 {
    let at = console.find("MemAvailable: ").unwrap_or_else(|| panic!("no MemAvailable on the console:\n{console}"));
    console[at + 14..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn debian_boots_from_a_verity_root_with_var_on_a_data_partition() {
    let tar = debian_rootfs_tar();
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("debian");
    clay_ok(&[
        "build",
        &format!("tar:{}", tar.display()),
        "--root",
        "verity",
        "--data-size",
        "1G",
        "-f",
        "raw",
        "-o",
        base.to_str().unwrap(),
    ]);
    let img = work.path().join("debian.img");
    // The marker comes from a service ordered after multi-user.target: seeing it means systemd got there (its own
    // "Reached target" line may land after the marker on the shared console).
    let console = boot_disk(&img, DEBIAN_MARKER, 2048, 480);
    assert!(console.contains("claylinux: root is overlay, /var is ext4"), "{console}");
    assert!(console.contains("ping has /usr/bin/ping cap_net_raw=ep"), "{console}");
}
