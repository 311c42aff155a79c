#!/bin/bash
# Fuzzes the parsers that read what users and images hand clay (fuzz/fuzz_targets, libFuzzer through cargo-fuzz),
# each for SECONDS (default 60), and stops at the first crash, which cargo-fuzz saves under fuzz/artifacts/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# cargo-fuzz needs nightly features; the stable toolchain is used with RUSTC_BOOTSTRAP=1. Corpora are kept in
# ~/.cache/claylinux/fuzz, seeded with small real inputs made here (a signed stub, a GPT, an ISO, a cpio, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH" RUSTC_BOOTSTRAP=1
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cache="${XDG_CACHE_HOME:-$HOME/.cache}/claylinux/fuzz"
seeds="$cache/seeds"
if [ ! -d "$seeds" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp"/seeds/{pe,authenticode,kernel,disk,iso,cpio,manifest,registry_text} "$tmp/files"
  s="$tmp/seeds" f="$tmp/files"
  stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
  cp "$stub" "$s/pe/stub"
  openssl req -new -x509 -newkey rsa:2048 -nodes -keyout "$f/k.pem" -out "$f/c.pem" -subj /CN=fuzz -days 1 2>/dev/null
  sbsign --key "$f/k.pem" --cert "$f/c.pem" --output "$s/authenticode/signed.efi" "$stub" 2>/dev/null
  cp "$s/authenticode/signed.efi" "$s/pe/signed.efi"
  kernel=$(find "${XDG_CACHE_HOME:-$HOME/.cache}/claylinux" -name 'vmlinuz-*' -print -quit 2>/dev/null || true)
  [ -z "$kernel" ] || head -c 65536 "$kernel" > "$s/kernel/vmlinuz-head"
  module=$(find "${XDG_CACHE_HOME:-$HOME/.cache}/claylinux" -name '*.ko' -size -20k -print -quit 2>/dev/null || true)
  [ -z "$module" ] || cp "$module" "$s/kernel/module.ko"
  truncate -s 2M "$f/d.img"
  sgdisk -n1:2048:+512K -t1:ef00 -n2:0:0 "$f/d.img" >/dev/null
  # The disk target takes the disk size from the first eight bytes (little-endian): 2 MiB.
  { printf '\x00\x00\x20\x00\x00\x00\x00\x00'; head -c 17408 "$f/d.img"; } > "$s/disk/gpt"
  qemu-img create -q -f qcow2 "$f/q.qcow2" 1M && head -c 4096 "$f/q.qcow2" > "$s/disk/qcow2"
  qemu-img create -q -f vpc "$f/q.vhd" 1M && tail -c 512 "$f/q.vhd" > "$s/disk/vhd-footer"
  mkdir "$f/iso" && echo hi > "$f/iso/a.txt" && head -c 2048 /dev/zero > "$f/iso/boot.img"
  xorriso -as mkisofs -quiet -o "$s/iso/small.iso" -b boot.img -no-emul-boot -J -R "$f/iso" 2>/dev/null
  (cd "$f/iso" && find . | cpio -o -H newc --quiet) > "$s/cpio/small.cpio"
  cat > "$s/registry_text/conf" <<'CONF'
[[registry]]
prefix = "registry.example/a"
location = "mirror.example/a"
insecure = true
[[registry.mirror]]
location = "m.example"
pull-from-mirror = "digest-only"
CONF
  printf 'registry.example/a/b:1@sha256:%064d' 0 > "$s/registry_text/ref"
  printf '%s' 'Bearer realm="https://auth.example/token",service="r",scope="repository:a:pull"' \
    > "$s/registry_text/challenge"
  mkdir -p "$cache"
  mv "$s" "$seeds"
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pe authenticode kernel disk iso cpio manifest registry_text)
cd fuzz
for t in "${targets[@]}"; do
  mkdir -p "$cache/corpus/$t" "$seeds/$t"
  echo "fuzz: $t for ${seconds} s"
  log="$cache/$t.log"
  status=0
  cargo fuzz run -O "$t" "$cache/corpus/$t" "$seeds/$t" -- -max_total_time="$seconds" -max_len=131072 \
    -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1 || status=$?
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
  if [ "$status" != 0 ]; then
    grep -E -A20 'panicked|ERROR|SUMMARY' "$log" >&2 || tail -n 30 "$log" >&2
    echo "fuzz: $t failed (exit $status): a crashing input is saved in fuzz/artifacts/$t; the whole log is $log" >&2
    exit 1
  fi
done
