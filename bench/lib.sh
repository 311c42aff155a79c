# Shared by the benchmark scripts: the Debian example system (the same cached tarball the Debian boot test uses),
# unpacked into a scratch directory, and a release build of clay. Sourced, not run.
#   after `. bench/lib.sh`: $tarball, $work (removed on exit), $root (the unpacked system), $clay
cache=${CLAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claylinux}
key=$(sha256sum examples/debian/make-rootfs.sh | cut -c1-12)
tarball=$cache/debian-bookworm-$key.tar
mkdir -p "$cache"
[ -s "$tarball" ] || { bash examples/debian/make-rootfs.sh "$tarball.tmp.tar" && mv "$tarball.tmp.tar" "$tarball"; }
cargo build --release --locked -p clay >/dev/null 2>&1
clay=$PWD/target/release/clay
work=$(mktemp -d /var/tmp/clay-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir "$root"
tar -xpf "$tarball" -C "$root" --numeric-owner --xattrs --xattrs-include='*'
# Peak resident memory (KiB) of one run of a shell command.
peak() { /usr/bin/time -f %M bash -c "$1" 2>&1 >/dev/null | tail -n1; }
