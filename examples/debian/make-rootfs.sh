#!/bin/bash
# Builds a real Debian bookworm system with systemd and the cloud kernel as a root filesystem tarball:
#   examples/debian/make-rootfs.sh OUT.tar
# Needs root and mmdebstrap (apt-get install mmdebstrap). The system prints "Welcome to claylinux" on its
# console once it reaches multi-user.target, and root may log in on the serial console without a password.
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
hook='
mkdir -p "$1/etc/systemd/system/multi-user.target.wants"
cat > "$1/etc/systemd/system/claylinux-hello.service" <<UNIT
[Unit]
Description=Say hello on the console once the system is up
After=multi-user.target
[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/console
ExecStart=/bin/sh -c "echo; echo \"claylinux: root is \$(findmnt -no FSTYPE /), /var is \$(findmnt -no FSTYPE /var || echo on the root), ping has \$(getcap /usr/bin/ping), \$(grep MemAvailable /proc/meminfo | tr -s \" \")\"; echo \"Welcome to claylinux: \$(. /etc/os-release; echo \$PRETTY_NAME) is up\""
[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../claylinux-hello.service "$1/etc/systemd/system/multi-user.target.wants/claylinux-hello.service"
echo claylinux > "$1/etc/hostname"
chroot "$1" passwd -d root >/dev/null
'
mmdebstrap --variant=minbase --quiet \
  --include=systemd-sysv,udev,linux-image-cloud-amd64,iputils-ping,libcap2-bin,util-linux \
  --customize-hook="$hook" \
  bookworm "$out" "$mirror"
