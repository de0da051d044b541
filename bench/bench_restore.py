#!/usr/bin/python3
"""Checkpoint and restart cost of rwkvcastd at N series (issue 7).

For each SQLite page size asked for, in a fresh temp dir: start the daemon
(default model; configured as bench_e2e.py configures it), create N series
with bench/loadgen (one sample each), take a checkpoint with every state
dirty (the writer's duration and rows from stats), stop it (SIGTERM), then
restart it R times, each after `sync` and a 5 s pause, timing start ->
control socket answers and reading stats.restore_s. A store created by the
daemon itself has 16 KB pages; other sizes are set by creating the empty
file with the sqlite3 command first (the daemon keeps an existing store's
page size), to compare.

Usage: /usr/bin/python3 bench/bench_restore.py [--series N] [--page-sizes 4096,16384]
       [--restarts R] [--build DIR]   (needs N * ~8 KB of disk and ~4 KB of RAM per series)
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_e2e import ROOT, Daemon  # noqa: E402  (one daemon harness for both benchmarks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=1000000)
    ap.add_argument("--page-sizes", default="16384", help="comma-separated, e.g. 4096,16384")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    n = a.series
    for ps in [int(x) for x in a.page_sizes.split(",")]:
        d = tempfile.mkdtemp(prefix="rwkvcast-restore-")
        dm = None
        try:
            dm = Daemon(os.path.join(a.build, "rwkvcastd"), d, n, "tcp", None, rcvhwm=100000)
            if ps != 16384:
                subprocess.run(["sqlite3", os.path.join(d, "state.db"),
                                "PRAGMA page_size=%d; PRAGMA journal_mode=WAL;" % ps],
                               check=True, stdout=subprocess.DEVNULL)
            dm.start()
            subprocess.run([os.path.join(a.build, "bench", "loadgen"), "--in", dm.ingest, "--out", dm.out,
                            "-n", str(n), "--rate", "0", "--nodrop", "--rounds", "1", "--duration", "120",
                            "--label", "populate"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            dm.wait_idle(timeout=300)
            dm.ctl({"cmd": "checkpoint"}, timeout=10)
            time.sleep(1)
            while dm.stats().get("checkpoint", {}).get("busy", True):
                time.sleep(1)
            ck = dm.stats()["checkpoint"]
            st, _ = dm.stop()
            size = os.path.getsize(os.path.join(d, "state.db"))
            print("page size %d: %d series; checkpoint of %d rows %.1f s (writer); stop %.1f s; store %.2f GB"
                  % (ps, n, ck["last_rows"], ck["last_duration"], st, size / 1e9), flush=True)
            for k in range(a.restarts):
                subprocess.run(["sync"])
                time.sleep(5)
                ts = dm.start()
                s = dm.stats()
                print("  restart %d: %.2f s until the control socket answered (restore %.2f s, %d restored)"
                      % (k + 1, ts, s["restore_s"], s["restored"]), flush=True)
                dm.stop()
        finally:
            if dm:
                dm.kill()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
