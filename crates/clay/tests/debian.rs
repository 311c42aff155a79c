//! End to end: a real Debian bookworm system with systemd becomes a UKI that boots to multi-user.target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Printed by the Debian example's `claylinux-hello.service`, which runs after multi-user.target.
const DEBIAN_MARKER: &str = "Welcome to claylinux: Debian GNU/Linux 12 (bookworm) is up";

#[test]
fn debian_with_systemd_boots_to_multi_user_under_ovmf() {
    let tar = debian_rootfs_tar();
    let work = tempfile::tempdir().unwrap();
    let efi = work.path().join("debian.efi");
    clay_ok(&["build", &format!("tar:{}", tar.display()), "-o", efi.to_str().unwrap()]);
    let console = boot_efi(&efi, DEBIAN_MARKER, 2048, 420);
    assert!(console.contains("Multi-User System"), "systemd reached multi-user.target:\n{console}");
    // ping's file capability crossed the initramfs (which cannot carry xattrs) through clay-init's manifest.
    assert!(console.contains("ping has /usr/bin/ping cap_net_raw=ep"), "{console}");
}
