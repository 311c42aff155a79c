#!/bin/bash
# Issue 2's speed target, measured side by side in one run on the Debian example system (a real bookworm with
# systemd, ~300 MiB): building its UKI with `clay build` against
#   - the shell pipeline the old imager used: sorted find | cpio -o -H newc | zstd -T0 -3, then objcopy into the stub
#   - the floor: tar -cf - ROOT | zstd -T0 -3 > /dev/null
# Targets: clay ≤ 0.5 × shell pipeline and ≤ 1.3 × tar|zstd; peak memory well under the root's size.
# Run as root after scripts/setup.sh:  bench/uki.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. bench/lib.sh
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
kernel=$(ls "$root"/boot/vmlinuz-* | head -n1)
echo "console=ttyS0" > "$work/cmdline"
size=$(du -sb --exclude=./boot "$root" | cut -f1)

shell_pipeline="cd $root && find . -path ./boot -prune -o -print | LC_ALL=C sort | cpio -o -H newc --quiet | zstd -T0 -3 -q > $work/initrd.zst \
 && objcopy --add-section .osrel=$root/usr/lib/os-release --change-section-vma .osrel=0x20000 \
   --add-section .cmdline=$work/cmdline --change-section-vma .cmdline=0x30000 \
   --add-section .linux=$kernel --change-section-vma .linux=0x2000000 \
   --add-section .initrd=$work/initrd.zst --change-section-vma .initrd=0x3000000 $stub $work/shell.efi"
floor="tar -cf - -C $root --exclude=./boot . | zstd -T0 -3 -q > /dev/null"
clay_dir="$clay build $root -o $work/clay.efi --cmdline console=ttyS0 2>/dev/null"
clay_tar="$clay build tar:$tarball -o $work/clay-tar.efi --cmdline console=ttyS0 2>/dev/null"

hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/times.json" \
  -n shell "$shell_pipeline" -n floor "$floor" -n clay-dir "$clay_dir" -n clay-tar "$clay_tar" >&2

python3 - "$work/times.json" "$size" "$(peak "$clay_dir")" "$(peak "$clay_tar")" "$(stat -c %s "$work/clay.efi")" <<'PY'
import json, sys
times = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
size, peak_dir, peak_tar, efi = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
m = lambda k: times[k]["median"]
print(f"root filesystem: {size / 2**20:.0f} MiB; UKI: {efi / 2**20:.0f} MiB")
print("| command | median s | vs shell pipeline | vs tar\\|zstd | peak RSS |")
print("|---|---|---|---|---|")
for name, peak in [("shell", None), ("floor", None), ("clay-dir", peak_dir), ("clay-tar", peak_tar)]:
    rss = f"{peak / 1024:.0f} MiB ({peak * 1024 / size:.0%} of the root)" if peak else "-"
    print(f"| {name} | {m(name):.2f} | {m(name) / m('shell'):.2f} | {m(name) / m('floor'):.2f} | {rss} |")
ok = m("clay-dir") <= 0.5 * m("shell") and m("clay-dir") <= 1.3 * m("floor")
print("targets (clay-dir ≤ 0.5 × shell, ≤ 1.3 × floor):", "met" if ok else "NOT met")
sys.exit(0 if ok else 1)
PY
