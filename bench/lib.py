"""Shared by the benchmark scripts' Python parts: timing commands, interleaving rounds, peak memory.

Interleaving (every command once per round, round after round) and taking the median of per-round ratios lets the
machine's drift (other VMs on the host, page cache) hit both sides of a comparison alike.
"""
import statistics
import subprocess
import time


def run(cmd):
    """Seconds one run of `cmd` takes, its output discarded; a failure stops the benchmark."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def peak_mib(cmd):
    """Peak resident memory of one run of `cmd`, in MiB (GNU time's %M)."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    return int(r.stderr.strip().splitlines()[-1]) // 1024


def interleave(commands, rounds):
    """Runs each of `commands` (name -> argv) once to warm up, then `rounds` interleaved rounds; the times by name."""
    for cmd in commands.values():
        run(cmd)
    times = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(run(cmd))
    return times


def median_ratio(times, reference):
    """The median over rounds of times / reference (two lists from `interleave`)."""
    return statistics.median(t / r for t, r in zip(times, reference))
