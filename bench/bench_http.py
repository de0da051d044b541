#!/usr/bin/env python3
# bench_http.py: how long rwkvcastd takes to answer GET /metrics with N
# series exported as per-series gauges (issue 20: 10,000 series under
# 100 ms), and the page size. One daemon on loopback, N series of a few
# samples each, then R scrapes timed from request to last byte: the first
# on its own (cold buffers), p50/p99/max of the rest, the daemon's render
# time (rwkvcast_http_metrics_render_seconds: event-loop time, in slices)
# and the longest event-loop stall while they ran (stats loop_max_s).
# `make bench-http` runs it with one and with four horizons per series.
#
#   /usr/bin/python3 bench/bench_http.py [--build build] [--series 10000] [--steps 1,6] [--scrapes 51] [-v]
#
# SPDX-License-Identifier: MIT
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import msgpack
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--steps", default="1", help="http.horizons, comma-separated")
    ap.add_argument("--scrapes", type=int, default=51)
    ap.add_argument("--curl", action="store_true", help="time each scrape with curl (a new process each)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every scrape's times")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rwkvcast-bench-http-")
    port = free_port()
    cfg = {"log_level": "warning", "model": os.path.join(ROOT, "model", "default.rwkv"), "state_db": tmp + "/s.db", "checkpoint_interval": 86400, "stats_interval": 0,
           "input": {"endpoints": [{"type": "pull", "endpoint": "ipc://%s/in.sock" % tmp, "bind": True}]},
           "output": {"endpoint": "ipc://%s/out.sock" % tmp}, "control": {"endpoint": "ipc://%s/ctl.sock" % tmp},
           "series": {"max": a.series + 16},
           "http": {"listen": "127.0.0.1:%d" % port, "series": "*", "series_max": a.series,
                    "horizons": [int(x) for x in a.steps.split(",")]}}
    with open(tmp + "/c.yaml", "w") as f:
        json.dump(cfg, f)
    d = subprocess.Popen([os.path.join(ROOT, a.build, "rwkvcastd"), "-c", tmp + "/c.yaml"], cwd=tmp)
    ctx = zmq.Context.instance()
    try:
        ctl = ctx.socket(zmq.REQ)
        ctl.connect("ipc://%s/ctl.sock" % tmp)

        def stats():
            ctl.send(msgpack.packb({"cmd": "stats"}))
            if not ctl.poll(30000):
                raise SystemExit("daemon did not answer")
            return msgpack.unpackb(ctl.recv())

        deadline = time.time() + 60
        while not os.path.exists(tmp + "/ctl.sock"):
            if time.time() > deadline or d.poll() is not None:
                raise SystemExit("daemon did not start")
            time.sleep(0.05)
        push = ctx.socket(zmq.PUSH)
        push.connect("ipc://%s/in.sock" % tmp)
        n = a.series
        for k in range(3):
            for i in range(0, n, 500):
                push.send(msgpack.packb([{"s": "series-%05d" % j, "t": 1.7e9 + 60 * k, "v": float(j % 97 + k)}
                                         for j in range(i, min(n, i + 500))]))
        deadline = time.time() + 120
        while stats()["steps"] < 3 * n:
            if time.time() > deadline:
                raise SystemExit("samples not stepped")
            time.sleep(0.1)
        times, size, renders = [], 0, []
        stats()  # resets loop_max_s: the stall printed below is the scrapes'
        for _ in range(a.scrapes):
            if a.curl:
                # A fresh client process per scrape, timed by curl itself.
                r = subprocess.run(["curl", "-s", "-o", tmp + "/page", "-w", "%{time_total}",
                                    "http://127.0.0.1:%d/metrics" % port], capture_output=True, text=True, timeout=60)
                times.append(float(r.stdout))
                with open(tmp + "/page", "rb") as f:
                    body = f.read()
            else:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                t0 = time.perf_counter()
                c.request("GET", "/metrics")
                body = c.getresponse().read()
                times.append(time.perf_counter() - t0)
            # The daemon's own figure for the previous page: loop time and slices.
            k = body.find(b"\nrwkvcast_http_metrics_render_seconds ")
            k2 = body.find(b"\nrwkvcast_http_metrics_render_slices ")
            if k >= 0 and k2 >= 0:
                renders.append((float(body[k + 38:body.index(b"\n", k + 1)]),
                                int(float(body[k2 + 37:body.index(b"\n", k2 + 1)]))))
            if not a.curl:
                c.close()
            size = len(body)
        lines = body.count(b"\n")
        exported = [ln for ln in body.split(b"\n") if ln.startswith(b"rwkvcast_series_exported ")]
        if a.verbose:
            print("per scrape, request to last byte (ms):", " ".join("%.0f" % (1e3 * t) for t in times))
            print("render loop time (ms) / slices, previous page:",
                  " ".join("%.1f/%d" % (1e3 * r, n) for r, n in renders))
        rs = sorted(r for r, _ in renders[1:]) or [0.0]
        # The first scrape after start faults in the page and label buffers
        # (and the engine's results, cold): reported on its own.
        first = times[0]
        ts = sorted(times[1:])
        p99 = ts[min(len(ts) - 1, int(round(0.99 * (len(ts) - 1))))]
        st = stats()
        print("series %d, steps %s: page %d bytes, %d lines (%s); first GET /metrics %.1f ms; the next %d: "
              "min %.1f ms, p50 %.1f ms, p99 %.1f ms, max %.1f ms; render (loop time, in slices of ~1 ms) "
              "p50 %.1f ms, max %.1f ms; longest event-loop stall %.1f ms"
              % (n, a.steps, size, lines, exported[0].decode() if exported else "?", 1e3 * first, len(ts),
                 1e3 * ts[0], 1e3 * statistics.median(ts), 1e3 * p99, 1e3 * ts[-1],
                 1e3 * statistics.median(rs), 1e3 * rs[-1], 1e3 * st["loop_max_s"]))
    finally:
        d.terminate()
        d.wait(60)
        ctx.destroy(linger=0)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
