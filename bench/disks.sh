#!/bin/bash
# Issue 3's speed target, measured side by side in one run on the Debian example system: producing raw + iso +
# qcow2 together must cost at most 1.15 × producing the UKI alone (the disks share its initramfs and UKI).
# Run as root after scripts/setup.sh:  bench/disks.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. bench/lib.sh

uki="$clay build $root -f efi -o $work/uki 2>/dev/null"
disks="$clay build $root -f raw -f iso -f qcow2 -o $work/disks 2>/dev/null"
all="$clay build $root -f efi -f raw -f iso -f qcow2 -f vmdk -f vhdx -f vdi -f vhd --firmware uefi -o $work/all 2>/dev/null"
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$work/times.json" \
  -n uki "$uki" -n raw+iso+qcow2 "$disks" -n every-disk-format "$all" >&2

python3 - "$work/times.json" "$(peak "$uki")" "$(peak "$disks")" <<'PY'
import json, sys
times = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
peaks = {"uki": int(sys.argv[2]), "raw+iso+qcow2": int(sys.argv[3])}
print("| command | median s | vs UKI alone | peak RSS |")
print("|---|---|---|---|")
for name, t in times.items():
    rss = f"{peaks[name] / 1024:.0f} MiB" if name in peaks else "-"
    print(f"| {name} | {t:.2f} | {t / times['uki']:.2f} | {rss} |")
ok = times["raw+iso+qcow2"] <= 1.15 * times["uki"]
print("target (raw+iso+qcow2 ≤ 1.15 × UKI alone):", "met" if ok else "NOT met")
sys.exit(0 if ok else 1)
PY
