#!/bin/bash
# Issue 3's speed target, measured side by side in one run on the Debian example system: producing raw + iso +
# qcow2 together must cost at most 1.15 × producing the UKI alone (the disks share its initramfs and UKI).
#
# The commands run interleaved (UKI, disks, every format, UKI, ...) and the verdict uses the median of the per-round
# ratios, so the machine's drift (other VMs on the host) hits both sides alike. Each round writes fresh outputs;
# a second set of rounds replaces the previous outputs, which on ext4 costs extra (it starts writing back a file
# that replaces another on rename), and is reported beside it.
# Run as root after scripts/setup.sh:  bench/disks.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
. bench/lib.sh

python3 - "$clay" "$root" "$work" "$rounds" "$(peak "$clay build $root -f efi -o $work/p1")" \
  "$(peak "$clay build $root -f raw -f iso -f qcow2 -o $work/p2")" <<'PY'
import glob, os, statistics, subprocess, sys, time
clay, root, work, rounds, peak_uki, peak_disks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), *map(int, sys.argv[5:7])
commands = {
    "uki": ["-f", "efi"],
    "raw+iso+qcow2": ["-f", "raw", "-f", "iso", "-f", "qcow2"],
    "every-disk-format": ["-f", "efi", "-f", "raw", "-f", "iso", "-f", "qcow2", "-f", "vmdk", "-f", "vhdx", "-f", "vdi", "-f", "vhd"],
}

def run(name, fresh):
    out = os.path.join(work, name)
    if fresh:
        for f in glob.glob(out + ".*"):
            os.unlink(f)
    t = time.perf_counter()
    subprocess.run([clay, "build", root, *commands[name], "-o", out], check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t

def measure(fresh):
    times = {name: [] for name in commands}
    for name in commands:  # warm-up round
        run(name, fresh)
    for _ in range(rounds):
        for name in commands:
            times[name].append(run(name, fresh))
    return times

ok = True
for label, fresh in [("fresh outputs", True), ("replacing the previous outputs", False)]:
    times = measure(fresh)
    uki = times["uki"]
    print(f"\n{label}, {rounds} interleaved rounds:\n")
    print("| command | median s | ratio to the UKI (median of rounds) | peak RSS |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        ratio = statistics.median(t / u for t, u in zip(ts, uki))
        rss = {"uki": peak_uki, "raw+iso+qcow2": peak_disks}.get(name)
        rss = f"{rss / 1024:.0f} MiB" if rss else "-"
        print(f"| {name} | {statistics.median(ts):.2f} | {ratio:.2f} | {rss} |")
        if name == "raw+iso+qcow2" and fresh:
            ok = ratio <= 1.15
print("\ntarget (raw+iso+qcow2 ≤ 1.15 × UKI alone, fresh outputs):", "met" if ok else "NOT met")
sys.exit(0 if ok else 1)
PY
