#!/bin/bash
# Builds the claylinux imager image: a static clay, the systemd EFI stub and syslinux's boot code, FROM scratch
# (imager/Containerfile). No base image is pulled, so this works without registry access.
#
#   scripts/build-imager.sh [TAG] [ENGINE BUILD OPTIONS...]     # TAG defaults to localhost/claylinux-imager
#
# The engine is podman, else docker, else buildah; CONTAINER_ENGINE=docker (etc.) picks one. It runs with the
# caller's environment, so CONTAINERS_STORAGE_CONF and friends choose the image store. Publishing is a push of the
# result, e.g. `podman push localhost/claylinux-imager docker://ghcr.io/OWNER/imager:TAG` (see imager/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-localhost/claylinux-imager}"
[ $# -gt 0 ] && shift
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  for candidate in podman docker buildah; do
    command -v "$candidate" >/dev/null && { engine="$candidate"; break; }
  done
fi
[ -n "$engine" ] || { echo "build-imager: no container engine (podman, docker or buildah) found" >&2; exit 1; }

stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
[ -f "$stub" ] || { echo "build-imager: $stub is missing; install the systemd-boot-efi package" >&2; exit 1; }

clay="$(scripts/build-static.sh | tail -n 1)"

# The build context, rebuilt from scratch each time so nothing stale goes into the image.
context="${CARGO_TARGET_DIR:-target}/imager-context"
rm -rf "$context"
mkdir -p "$context/syslinux" "$context/tmp"
chmod 1777 "$context/tmp"
# Symbols are of no use in the image: strip them from the copy (the cached build keeps its own).
strip -o "$context/clay" "$clay"
cp "$stub" "$context/linuxx64.efi.stub"
# syslinux's boot code where clay looks for it on a host, when this machine has it: disks' BIOS boot (the installer
# holding ldlinux.sys, gptmbr.bin) and ISOs' (isolinux.bin, isohdpfx.bin, ldlinux.c32). About 360 KiB.
for file in /usr/bin/syslinux /usr/lib/syslinux/mbr/gptmbr.bin /usr/lib/ISOLINUX/isolinux.bin \
  /usr/lib/ISOLINUX/isohdpfx.bin /usr/lib/syslinux/modules/bios/ldlinux.c32; do
  if [ -f "$file" ]; then
    mkdir -p "$context/syslinux$(dirname "$file")"
    cp "$file" "$context/syslinux$file"
  else
    echo "build-imager: $file is missing: the imager will not do BIOS boot (packages syslinux, syslinux-common, isolinux)" >&2
  fi
done

case "$engine" in
  buildah) build=(buildah bud) ;;
  *) build=("$engine" build) ;;
esac
"${build[@]}" -f imager/Containerfile -t "$tag" "$@" "$context" >&2
echo "$tag"
