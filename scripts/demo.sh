#!/bin/bash
# Builds clay, builds the tiny example OS (busybox + a Debian cloud kernel) into out/tiny.efi, shows what is
# inside, and boots it here in QEMU with its console on this terminal. Run as root on Debian/Ubuntu.
#   scripts/demo.sh           the tiny example (seconds to build, a shell on the console)
#   scripts/demo.sh debian    a real Debian bookworm with systemd (a few minutes the first time)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p clay
clay=target/release/clay
mkdir -p out
case "${1:-tiny}" in
  tiny)
    rm -rf out/tiny-rootfs
    bash examples/tiny/make-rootfs.sh out/tiny-rootfs
    $clay build out/tiny-rootfs --format efi -o out/tiny.efi --cmdline "console=ttyS0"
    image=out/tiny.efi ;;
  debian)
    [ -s out/debian.tar ] || bash examples/debian/make-rootfs.sh out/debian.tar
    $clay build tar:out/debian.tar --format efi -o out/debian.efi
    image=out/debian.efi ;;
  *) echo "usage: $0 [tiny|debian]" >&2; exit 2 ;;
esac
$clay inspect "$image"
exec $clay run "$image"
