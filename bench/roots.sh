#!/bin/bash
# Issue 5's figures, on the Debian example system, in one run:
#  1. building the root filesystem image: `clay build -f squashfs` against `mksquashfs -comp zstd` (both zstd level
#     15, 128 KiB blocks) and `clay build -f erofs` against `mkfs.erofs`, from the same unpacked tree; and the UKI of
#     the default root model (compressed) against the UKI of `--root ram`; interleaved, median of the per-round
#     ratios, with output sizes and peak RSS;
#  2. booting each root model (ram and compressed as a UKI, verity as a raw disk with a 1 GiB data partition)
#     under OVMF with 2 GiB of RAM: seconds until the system says it is up, and MemAvailable then.
# Run as root after scripts/setup.sh:  bench/roots.sh [ROUNDS]   (PARTS="build boot" by default; PARTS=boot for one)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
. bench/lib.sh
marker="Welcome to claylinux: Debian GNU/Linux 12 (bookworm) is up"

parts=${PARTS:-build boot}
if [[ " $parts " == *" build "* ]]; then
PYTHONPATH=bench python3 - "$clay" "$root" "$work" "$rounds" <<'PY'
import os, statistics, sys
from lib import interleave, median_ratio, peak_mib
clay, root, work, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pairs = {
    "squashfs": ([clay, "build", root, "-f", "squashfs", "--compression", "zstd:15", "-o", f"{work}/clay"],
                 ["mksquashfs", root, f"{work}/ref.squashfs", "-comp", "zstd", "-Xcompression-level", "15",
                  "-noappend", "-quiet", "-no-progress"]),
    "erofs": ([clay, "build", root, "-f", "erofs", "-o", f"{work}/clay"],
              ["mkfs.erofs", "--quiet", f"{work}/ref.erofs", root]),
    # The UKI of the default root model against the UKI of --root ram (the reference here).
    "efi": ([clay, "build", root, "-f", "efi", "-o", f"{work}/clay"],
            [clay, "build", root, "--root", "ram", "-f", "efi", "-o", f"{work}/ref"]),
}
print(f"building the root image, {rounds} interleaved rounds:\n")
print("| image | clay s | reference s | clay / reference | clay size | reference size | clay peak RSS | reference peak RSS |")
print("|---|---|---|---|---|---|---|---|")
for name, (ours, theirs) in pairs.items():
    t = interleave({"clay": ours, "reference": theirs}, rounds)
    a, b = t["clay"], t["reference"]
    size = lambda p: f"{os.path.getsize(p) / 2**20:.0f} MiB"
    print(f"| {name} | {statistics.median(a):.2f} | {statistics.median(b):.2f} | {median_ratio(a, b):.2f} | "
          f"{size(f'{work}/clay.{name}')} | {size(f'{work}/ref.{name}')} | {peak_mib(ours)} MiB | {peak_mib(theirs)} MiB |")
PY
fi
[[ " $parts " == *" boot "* ]] || exit 0

echo
echo "booting each root model (OVMF, 2 GiB, $(nproc) CPUs, TCG unless KVM works):"
echo
"$clay" build "$root" --root ram -o "$work/ram.efi" 2>/dev/null
"$clay" build "$root" --root compressed -o "$work/compressed.efi" 2>/dev/null
"$clay" build "$root" --root verity --data-size 1G -f raw -o "$work/verity" 2>/dev/null
echo "| root model | image | boot to the marker s | MemAvailable after boot |"
echo "|---|---|---|---|"
for image in ram.efi compressed.efi verity.img; do
  log=$work/$image.log
  : >"$log"
  start=$(date +%s%N)
  setsid "$clay" run --memory 2048 "$work/$image" </dev/null >"$log" 2>&1 &
  pid=$!
  while ! grep -q "$marker" "$log"; do
    sleep 0.2
    kill -0 $pid 2>/dev/null || { echo "$image stopped before the marker:" >&2; tail -n 30 "$log" >&2; exit 1; }
    [ $(( $(date +%s%N) - start )) -lt 600000000000 ] || { echo "$image: no marker in 600 s" >&2; kill -- -$pid; exit 1; }
  done
  took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  mem=$(grep -o 'MemAvailable: [0-9]* kB' "$log" | awk '{ printf "%.0f MiB", $2 / 1024 }')
  kill -- -$pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  printf '| %s | %s (%s) | %d.%d | %s |\n' "${image%.*}" "$image" "$(du -h --apparent-size "$work/$image" | cut -f1)" \
    $((took_ms / 1000)) $((took_ms % 1000 / 100)) "$mem"
done
