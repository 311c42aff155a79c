#!/bin/bash
# Issue 6's speed target, side by side in one run on the Debian example system: converting the podman-built image
# from its oci-archive into a UKI must cost at most 1.3 × building the same UKI from the unpacked directory.
#
# The image is the example's root filesystem imported into podman (private vfs store in the scratch directory) and
# saved with `podman save --format oci-archive` (one gzip layer, as podman writes it). The two builds run
# interleaved; the verdict is the median of the per-round ratios, with peak RSS beside it. For comparison it also
# times what users do without clay reading images: unpack the layer with tar, then build from the directory.
# Run as root after scripts/setup.sh:  bench/oci.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
. bench/lib.sh

store=$work/podman
podman=(podman --root "$store/graph" --runroot "$store/run" --storage-driver vfs --cgroup-manager=cgroupfs
  --events-backend=none)
"${podman[@]}" import -q "$tarball" localhost/clay-bench-debian >/dev/null
"${podman[@]}" save -q --format oci-archive -o "$work/debian-oci.tar" localhost/clay-bench-debian
"${podman[@]}" rmi -f localhost/clay-bench-debian >/dev/null
# The same image with its layer recompressed as zstd (what `podman push --compression-format zstd` sends).
skopeo --insecure-policy copy -q --dest-compress-format zstd "oci-archive:$work/debian-oci.tar" "oci:$work/debian-zstd:latest"
layer=$(tar -tvf "$work/debian-oci.tar" | awk '$6 ~ /^blobs/ { print $3, $6 }' | sort -n | tail -n1)

PYTHONPATH=bench python3 - "$clay" "$root" "$work" "$rounds" "$layer" <<'PY'
import statistics, sys
from lib import interleave, median_ratio, peak_mib
clay, root, work, rounds, layer = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
commands = {
    "directory": [clay, "build", root, "-f", "efi", "-o", f"{work}/dir.efi"],
    "oci-archive": [clay, "build", f"oci-archive:{work}/debian-oci.tar", "-f", "efi", "-o", f"{work}/oci.efi"],
    "oci (zstd layer)": [clay, "build", f"oci:{work}/debian-zstd:latest", "-f", "efi", "-o", f"{work}/zst.efi"],
}
times = interleave(commands, rounds)
ratio = median_ratio(times["oci-archive"], times["directory"])
print(f"the image's gzip layer blob: {int(layer.split()[0]) / 2**20:.0f} MiB\n")
print(f"{rounds} interleaved rounds, UKI of the default root model:\n")
print("| source | median s | vs the directory | peak RSS |")
print("|---|---|---|---|")
for name, cmd in commands.items():
    r = median_ratio(times[name], times["directory"])
    print(f"| {name} | {statistics.median(times[name]):.2f} | {r:.2f} | {peak_mib(cmd)} MiB |")

# For comparison, what it takes without clay reading the image: unpack the layer with tar, then build from the
# directory (3 rounds; the unpack writes 345 MB to disk, so it swings with the machine's writeback).
import os, shutil, subprocess, tarfile
from lib import run
blob = layer.split()[1]
with tarfile.open(f"{work}/debian-oci.tar") as archive, open(f"{work}/layer.tar.gz", "wb") as out:
    shutil.copyfileobj(archive.extractfile(blob), out)
unpack_ratios = []
for _ in range(3):
    shutil.rmtree(f"{work}/unpacked", ignore_errors=True)
    os.mkdir(f"{work}/unpacked")
    subprocess.run(["sync"], check=True)
    manual = run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xzf", f"{work}/layer.tar.gz", "-C",
                  f"{work}/unpacked"])
    manual += run([clay, "build", f"{work}/unpacked", "-f", "efi", "-o", f"{work}/unpacked.efi"])
    unpack_ratios.append(run(commands["oci-archive"]) / manual)
print(f"\noci-archive vs `tar -xzf` of its layer + the directory build: {statistics.median(unpack_ratios):.2f} ×")

ok = ratio <= 1.3
print("\ntarget (oci-archive, podman's gzip layer, ≤ 1.3 × the directory):", "met" if ok else "NOT met")
sys.exit(0 if ok else 1)
PY
