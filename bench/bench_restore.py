#!/usr/bin/python3
"""Checkpoint and restart cost of rwkvcastd at N series (issue 7).

For each SQLite page size asked for, in a fresh temp dir: start the daemon
(default model), create N series with bench/loadgen (one sample each), take a
checkpoint with every state dirty (the writer's duration and rows from stats),
stop it (SIGTERM), then restart it R times, each after `sync` and a 5 s pause,
timing start -> control socket answers and reading stats.restore_s. A store
created by the daemon itself has 16 KB pages; other sizes are set by creating
the empty file with the sqlite3 command first (the daemon keeps an existing
store's page size), to compare.

Usage: /usr/bin/python3 bench/bench_restore.py [--series N] [--page-sizes 4096,16384]
       [--restarts R] [--build DIR]   (needs N * ~8 KB of disk and ~4 KB of RAM per series)
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ctl(ep, req, timeout=2.0):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    try:
        s.connect(ep)
        s.send(msgpack.packb(req, use_bin_type=True))
        if s.poll(int(timeout * 1000)) == 0:
            return None
        return msgpack.unpackb(s.recv(), raw=False)
    finally:
        s.close()


def start(build, d, cfg, timeout=300):
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(build, "rwkvcastd"), "-c", cfg], cwd=ROOT,
                         stdout=open(os.path.join(d, "daemon.log"), "ab"), stderr=subprocess.STDOUT)
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            sys.exit("rwkvcastd exited with %d (see %s/daemon.log)" % (p.returncode, d))
        r = ctl("ipc://%s/ctl.sock" % d, {"cmd": "ping"}, 0.5)
        if r and r.get("ok"):
            return p, time.monotonic() - t0
        time.sleep(0.05)
    p.kill()
    sys.exit("rwkvcastd did not answer within %d s" % timeout)


def stop(p):
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait(900)
    return time.monotonic() - t0


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
        try:
            if ps != 16384:
                subprocess.run(["sqlite3", os.path.join(d, "state.db"),
                                "PRAGMA page_size=%d; PRAGMA journal_mode=WAL;" % ps],
                               check=True, stdout=subprocess.DEVNULL)
            pin, pout = free_port(), free_port()
            cfg = os.path.join(d, "rwkvcast.yaml")
            with open(cfg, "w") as f:  # JSON is YAML
                f.write('{"log_level": "notice", "state_db": "%s/state.db", "checkpoint_interval": 86400,'
                        ' "stats_interval": 0, "shutdown_timeout": 900,'
                        ' "input": {"endpoints": [{"type": "sub", "endpoint": "tcp://127.0.0.1:%d",'
                        ' "bind": true, "topics": []}], "rcvhwm": 100000},'
                        ' "output": {"endpoint": "tcp://127.0.0.1:%d", "bind": true},'
                        ' "control": {"endpoint": "ipc://%s/ctl.sock"},'
                        ' "series": {"max": %d, "policy": "refuse"}}' % (d, pin, pout, d, n + 16))
            ep = "ipc://%s/ctl.sock" % d
            p, _ = start(a.build, d, cfg)
            subprocess.run([os.path.join(a.build, "bench", "loadgen"), "--in", "tcp://127.0.0.1:%d" % pin,
                            "--out", "tcp://127.0.0.1:%d" % pout, "-n", str(n), "--rate", "0", "--nodrop",
                            "--rounds", "1", "--duration", "120", "--label", "populate"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            t0 = time.monotonic()
            while (ctl(ep, {"cmd": "stats"}, 10) or {}).get("series", 0) < n and time.monotonic() - t0 < 300:
                time.sleep(1)
            ctl(ep, {"cmd": "checkpoint"}, 10)
            time.sleep(1)
            while (ctl(ep, {"cmd": "stats"}, 10) or {}).get("checkpoint", {}).get("busy", True):
                time.sleep(1)
            ck = ctl(ep, {"cmd": "stats"}, 10)["checkpoint"]
            st = stop(p)
            size = os.path.getsize(os.path.join(d, "state.db"))
            print("page size %d: %d series; checkpoint of %d rows %.1f s (writer); stop %.1f s; store %.2f GB"
                  % (ps, n, ck["last_rows"], ck["last_duration"], st, size / 1e9), flush=True)
            for k in range(a.restarts):
                subprocess.run(["sync"])
                time.sleep(5)
                p, ts = start(a.build, d, cfg)
                s = ctl(ep, {"cmd": "stats"}, 10)
                print("  restart %d: %.2f s until the control socket answered (restore %.2f s, %d restored)"
                      % (k + 1, ts, s["restore_s"], s["restored"]), flush=True)
                stop(p)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
