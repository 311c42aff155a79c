#!/bin/bash
# `clay push` of a large disk against the plainest upload there is, side by side in one run. The disk is 512 MiB
# (a GPT over random bytes), pushed to docker-registry on loopback. The baseline is `sha256sum` of the file plus
# curl's POST and one monolithic PUT streaming it. clay sends it in 32 MiB chunks that can resume (README,
# "Pushing"); this shows what the chunks cost. Each round pushes to new repositories, so nothing is skipped as
# already there. The verdict is the median of the per-round ratios, with clay's peak RSS beside it.
# Run as root after scripts/setup.sh:  bench/push.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cargo build --release --locked -p clay >/dev/null 2>&1
clay=$PWD/target/release/clay
work=$(mktemp -d /var/tmp/clay-bench.XXXXXX)
registry_pid=
trap '[ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
YAML
/usr/bin/docker-registry serve "$work/config.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
# Random bytes with a GPT on them, so clay pushes the file as the raw disk it looks like.
head -c 512M /dev/urandom > "$work/disk.img"
sgdisk -n1:2048:0 -t1:8300 "$work/disk.img" >/dev/null

PYTHONPATH=bench python3 - "$clay" "$work" "$port" "$rounds" <<'PY'
import statistics, subprocess, sys, time
from lib import peak_mib
clay, work, port, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
host = f"127.0.0.1:{port}"

def curl_push(repo):
    digest = "sha256:" + subprocess.run(["sha256sum", f"{work}/disk.img"], check=True, capture_output=True,
                                        text=True).stdout.split()[0]
    head = subprocess.run(["curl", "-sf", "-i", "-X", "POST", f"http://{host}/v2/{repo}/blobs/uploads/"],
                          check=True, capture_output=True, text=True).stdout
    location = next(l.split(" ", 1)[1].strip() for l in head.splitlines() if l.lower().startswith("location:"))
    url = location if location.startswith("http") else f"http://{host}{location}"
    # -T streams the file (--data-binary would read it all into memory first).
    subprocess.run(["curl", "-sf", "-o", "/dev/null", "-H", "Content-Type: application/octet-stream",
                    "-T", f"{work}/disk.img", f"{url}&digest={digest}"], check=True)

def clay_cmd(repo):
    return [clay, "push", f"{work}/disk.img", f"docker://{host}/{repo}:1", "--tls-verify=false"]

def timed(f):
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    f()
    return time.perf_counter() - start

times = {"clay push": [], "sha256sum + curl PUT": []}
for i in range(rounds):
    times["sha256sum + curl PUT"].append(timed(lambda: curl_push(f"bench/curl-{i}")))
    times["clay push"].append(timed(lambda: subprocess.run(clay_cmd(f"bench/clay-{i}"), check=True,
                                                           capture_output=True)))
ratio = statistics.median(c / b for c, b in zip(times["clay push"], times["sha256sum + curl PUT"]))
print(f"{rounds} interleaved rounds, a 512 MiB raw disk to docker-registry on loopback:\n")
print("| upload | median s | peak RSS |")
print("|---|---|---|")
print(f"| sha256sum + curl POST + one PUT | {statistics.median(times['sha256sum + curl PUT']):.2f} | |")
print(f"| clay push (32 MiB chunks) | {statistics.median(times['clay push']):.2f} | "
      f"{peak_mib(clay_cmd('bench/clay-peak'))} MiB |")
print(f"\nclay push vs the single PUT: {ratio:.2f} ×")
PY
