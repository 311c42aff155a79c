#!/bin/bash
# Installs what building, running and testing claylinux needs on Debian or Ubuntu (run as root):
# the host packages, and a Rust toolchain when none is there. Safe to run again.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run this as root (it installs packages with apt-get)" >&2; exit 1; }

packages=(
  build-essential pkg-config ca-certificates curl file util-linux   # building clay; setpriv, flock
  musl-tools                                                        # the static clay of the imager (musl-gcc)
  qemu-system-x86 qemu-utils ovmf systemd-boot-efi                  # booting; qemu-img oracle; the UKI stub
  busybox-static dpkg mmdebstrap                                    # the example systems
  cpio libarchive-tools zstd xz-utils lz4 gzip binutils             # test oracles and baselines
  gdisk fdisk dosfstools mtools xorriso                             # disk, FAT and ISO oracles
  isolinux syslinux syslinux-common                                 # BIOS boot code for ISOs and disks
  sbsigntool osslsigncode efitools openssl                          # Secure Boot oracles and test keys
  cryptsetup-bin squashfs-tools erofs-utils kmod                    # dm-verity, squashfs, EROFS and module oracles
  docker-registry apache2-utils skopeo podman                       # images and a real registry on loopback (issue 6)
  attr libcap2-bin python3 python3-venv hyperfine time              # fixtures with xattrs; benchmarks
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# apt must know the kernel package the examples download, so the lists are refreshed once per setup.
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# virt-firmware's virt-fw-vars reads OVMF variable stores: the oracle for the ones clay writes. Debian 12 does not
# package it, so it goes into a virtual environment of its own.
if ! command -v virt-fw-vars >/dev/null 2>&1; then
  echo "setup: installing virt-firmware (virt-fw-vars) into /opt/claylinux-tools"
  python3 -m venv /opt/claylinux-tools
  /opt/claylinux-tools/bin/pip install -q virt-firmware
  ln -sf /opt/claylinux-tools/bin/virt-fw-vars /usr/local/bin/virt-fw-vars
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "setup: installing a Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  }
fi

# The static clay (scripts/build-static.sh, the imager and its test) is built for musl.
rustup=rustup
command -v rustup >/dev/null 2>&1 || rustup="$HOME/.cargo/bin/rustup"
if [ -x "$(command -v "$rustup")" ] && ! "$rustup" target list --installed | grep -qx x86_64-unknown-linux-musl; then
  echo "setup: adding the Rust target x86_64-unknown-linux-musl"
  "$rustup" target add x86_64-unknown-linux-musl
fi
