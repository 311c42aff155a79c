#!/bin/bash
# Builds the tiny example system into a directory: busybox, a Debian cloud kernel in /boot, and an /sbin/init
# that shows what clay-init prepared, then gives you a shell on the console.
#   examples/tiny/make-rootfs.sh ROOT
# The kernel package is downloaded once with `apt-get download` and cached in ${XDG_CACHE_HOME:-~/.cache}/claylinux.
# Needs busybox-static and dpkg (apt-get install busybox-static).
set -euo pipefail
root=${1:?usage: $0 ROOT}
here=$(cd "$(dirname "$0")" && pwd)
cache=${CLAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claylinux}/kernel
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
[ -n "$busybox" ] || { echo "busybox is missing: apt-get install busybox-static" >&2; exit 1; }
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' \
  || { echo "$busybox is not static: apt-get install busybox-static" >&2; exit 1; }

# The kernel: the newest linux-image-*-cloud-amd64 known to apt, downloaded and unpacked once.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if ! ls "$cache"/root/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || { echo "apt does not know linux-image-cloud-amd64: run apt-get update" >&2; exit 1; }
  (cd "$cache" && rm -rf root root.tmp ./*.deb && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  dpkg-deb -x "$cache/${pkg}"_*.deb "$cache/root.tmp" && mv "$cache/root.tmp" "$cache/root" && rm -f "$cache"/*.deb
fi
flock -u 9
kernel=$(ls "$cache"/root/boot/vmlinuz-* | head -n1)
release=${kernel##*/vmlinuz-}

mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,boot,var,lib/modules/"$release"}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
cp "$kernel" "$root/boot/"
# efivarfs, so the system can read UEFI variables (Secure Boot's state) from /sys/firmware/efi/efivars.
efivarfs=$(find "$cache/root/lib/modules/$release" -name 'efivarfs.ko*' | head -n1)
[ -z "$efivarfs" ] || cp "$efivarfs" "$root/lib/modules/$release/"
# The modules clay-init loads for --root compressed|verity and --data-size (the loop device, the read-only root's
# filesystem, the overlay, device-mapper and dm-verity, the virtio disk), with what they depend on, at their
# usual paths so clay finds them as it would in any distribution's image.
modules="loop squashfs erofs overlay dm-mod dm-verity dm-bufio reed_solomon libcrc32c crc32c_generic virtio virtio_ring
  virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev virtio_blk virtio_scsi scsi_mod scsi_common sd_mod"
moddir="$cache/root/lib/modules/$release"
for m in $modules; do
  (cd "$moddir" && find kernel -name "$m.ko*" -exec cp --parents {} "$root/lib/modules/$release/" \;)
done
cp "$moddir/modules.builtin" "$root/lib/modules/$release/"
install -m 0755 "$here/init" "$root/sbin/init"
cat > "$root/etc/os-release" <<'OSREL'
NAME="claylinux tiny"
PRETTY_NAME="claylinux tiny example"
ID=claylinux-tiny
OSREL
# Container builds overwrite /etc/hosts; the image's own copy travels as hosts.target and clay-init installs it.
echo "127.0.0.1 localhost tiny" > "$root/etc/hosts.target"
echo "tiny" > "$root/etc/hostname"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
