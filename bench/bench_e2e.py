#!/usr/bin/python3
# bench_e2e.py: the end-to-end benchmark behind `make bench-e2e` (issue 7).
#
# Orchestration only; the load itself comes from build/bench/loadgen (C).
# For each series count N it starts build/rwkvcastd with a temp config (state
# db in a temp dir, free 127.0.0.1 ports, max_series N + 16, max_batch 256),
# then measures, in this order:
#   1. populate: one sample for each of the N series; RSS per series from
#      /proc/PID/status VmRSS minus the RSS before any series existed;
#   1b. with --fixed-rate R: one run at R samples/s offered (the same R for
#      every configuration of the run, e.g. --http both), its samples sent,
#      forecasts back and latency;
#   2. capacity probe: loadgen as fast as the daemon accepts (--nodrop);
#   3. sustained rate: bisection on the rate with short fixed-rate runs (the
#      loadgen sends what is due every --tick-us, 1 ms by default, so it
#      does not wake itself and both ZeroMQ I/O threads per message); a
#      rate passes when every sample's forecast arrived (lost = late = 0,
#      daemon drop counters unchanged) and p99.9 latency stays under --slo-ms
#      (an overloaded daemon queues before it drops, so a growing backlog
#      shows first as latency); a rate that fails narrowly (nothing lost,
#      p99.9 under 5x the bound) is run once more and fails only if that run
#      fails too; the result must pass again in a run twice as
#      long, or it is lowered in steps of 5% and tried again (down to 0.75
#      of it; if that fails too, 0.70 of it is reported, with a warning);
#      (the confirming run's latency is reported as "at sustained");
#   4. latency p50/p99/p99.9 at 25%, 50% and 90% of the sustained rate;
#   5. a checkpoint with every state dirty ("checkpoint" on the control
#      socket), its duration and rows as the daemon reports them, and the
#      ingest latency of a 25%-rate run while it runs (max per 100 ms);
#   6. restart: SIGTERM (final checkpoint), start again, time until the
#      control socket answers (the daemon restores every state before it
#      binds), and 'restored' from stats;
# and in the same run build/bench/rwkv_bench (--quick with --quick) for the
# model-only batched B=256 steps/s of the default model, before and after the
# daemon runs, so end-to-end / model-only is measured (against their mean).
# ipc:// is measured on a second daemon for the smallest N (ingest and output
# over ipc). Prints Markdown for bench/RESULTS.md (with the CPU model) and
# writes every raw loadgen JSON line to OUTDIR/e2e.json.
#
# Every wait is bounded; every process started here is stopped here.
#
# SPDX-License-Identifier: MIT
import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(*a):
    print("[bench-e2e %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Daemon:
    """One rwkvcastd with its own temp dir, config, ports and SQLite store."""

    def __init__(self, binary, workdir, n, transport, model, rcvhwm, threads=None, pipeline=None, silence=None,
                 http=None, curve=None):
        self.binary = binary
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        if transport == "ipc":
            self.ingest = "ipc://%s/in.sock" % self.dir
            self.out = "ipc://%s/out.sock" % self.dir
        else:
            self.ingest = "tcp://127.0.0.1:%d" % free_port()
            self.out = "tcp://127.0.0.1:%d" % free_port()
        self.ctl_ep = "ipc://%s/ctl.sock" % self.dir
        cfg = {
            "log_level": "notice",
            "state_db": os.path.join(self.dir, "state.db"),
            # Checkpoints only when asked, so they do not land inside other runs.
            "checkpoint_interval": 86400,
            "stats_interval": 0,
            "shutdown_timeout": 300,
            "input": {"endpoints": [{"type": "sub", "endpoint": self.ingest, "bind": True, "topics": []}],
                      "rcvhwm": rcvhwm},
            "output": {"endpoint": self.out, "bind": True, "sndhwm": 100000},
            "control": {"endpoint": self.ctl_ep},
            "series": {"max": n + 16, "policy": "refuse"},
            "engine": {"max_batch": 256},
            # On (the default) on a free port; http=False switches it off.
            "http": {"listen": "" if http is False else "127.0.0.1:%d" % free_port(), "series": "*"},
        }
        self.http = cfg["http"]["listen"]
        self.curve_args = []
        if curve:
            # CURVE on ingest and output (docs/PROTOCOL.md §9): a server and a
            # client key pair from `rwkvcast keygen`, the client on both lists.
            cli = os.path.join(os.path.dirname(binary), "rwkvcast")
            for name in ("server", "client"):
                subprocess.run([cli, "keygen", os.path.join(self.dir, name)], check=True, capture_output=True)
            allow = os.path.join(self.dir, "client.pub")
            cfg["curve"] = {"server_key": os.path.join(self.dir, "server.key")}
            cfg["input"]["endpoints"][0]["curve_allow"] = allow
            cfg["output"]["curve_allow"] = allow
            self.curve_args = ["--curve-key", os.path.join(self.dir, "client.key"),
                               "--curve-server-key", os.path.join(self.dir, "server.pub")]
        if model:
            cfg["model"] = model
        if threads is not None:
            # Issue 7 item 3: engine threads with series sharded by hash. The
            # key is what this harness expects the daemon to accept; a daemon
            # without it rejects the config (exit 2) and the row says so.
            cfg["engine"]["threads"] = threads
        if pipeline is not None:
            cfg["engine"]["pipeline"] = bool(pipeline)
        if silence is not None:
            # anomaly.silence: 0 switches the silence timers off (their cost).
            cfg["anomaly"] = {"silence": silence}
        self.cfg_path = os.path.join(self.dir, "rwkvcast.yaml")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)  # JSON is YAML
        self.proc = None
        self.logf = None
        self.zctx = zmq.Context.instance()

    def start(self, timeout=600):
        """Starts the daemon; returns seconds until the control socket answered."""
        self.logf = open(os.path.join(self.dir, "daemon.log"), "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "-c", self.cfg_path], stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=ROOT)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                self.logf.close()
                with open(os.path.join(self.dir, "daemon.log"), "rb") as f:
                    tail = f.read().decode(errors="replace").strip().splitlines()[-2:]
                raise RuntimeError("rwkvcastd exited with %d: %s" % (self.proc.returncode, " / ".join(tail)))
            r = self.ctl({"cmd": "ping"}, timeout=0.5)
            if r and r.get("ok"):
                return time.monotonic() - t0
        raise RuntimeError("rwkvcastd did not answer ping within %d s" % timeout)

    def stop(self, timeout=600):
        """SIGTERM; returns (seconds until exit, exit code)."""
        if not self.proc:
            return 0.0, 0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(10)
        dt = time.monotonic() - t0
        self.proc = None
        self.logf.close()
        return dt, rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def ctl(self, req, timeout=5.0):
        """One REQ/REP round trip; None on timeout (the REQ socket is discarded)."""
        s = self.zctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        try:
            s.connect(self.ctl_ep)
            s.send(msgpack.packb(req, use_bin_type=True))
            if s.poll(int(timeout * 1000)) == 0:
                return None
            return msgpack.unpackb(s.recv(), raw=False)
        except zmq.ZMQError:
            return None
        finally:
            s.close()

    def stats(self):
        return self.ctl({"cmd": "stats"}) or {}

    def rss_kb(self):
        return rss_kb(self.proc.pid) if self.proc else 0

    def wait_idle(self, timeout=120, quiet=0.5):
        """Waits until no sample is decoded or stepped for `quiet` s and the engine queue is empty."""
        t_end = time.monotonic() + timeout
        last = None
        since = time.monotonic()
        while time.monotonic() < t_end:
            st = self.stats()
            key = (st.get("decoded"), st.get("steps"), st.get("dropped_total"))
            busy = (st.get("queues") or {}).get("engine", 0)
            if key != last or busy:
                last = key
                since = time.monotonic()
            elif time.monotonic() - since >= quiet:
                return st
            time.sleep(0.1)
        log("warning: daemon still busy after %d s" % timeout)
        return self.stats()


class Runner:
    """Runs loadgen against one daemon, keeping series times increasing across runs."""

    def __init__(self, loadgen, d, n, args, all_runs):
        self.loadgen = loadgen
        self.d = d
        self.n = n
        self.args = args
        self.t0 = 1.7e9  # fixed start: runs are reproducible; chained by next_t0
        self.all = all_runs

    def run(self, label, rate, duration, extra=(), background=False):
        cmd = [self.loadgen, "--in", self.d.ingest, "--out", self.d.out, "-n", str(self.n),
               "--shape", self.args.shape, "--batch", str(self.args.batch), "--rate", "%.1f" % rate,
               "--duration", "%.3f" % duration, "--t0", "%.6f" % self.t0, "--drain", str(self.args.drain),
               "--tick", "%g" % self.args.tick_us, "--label", label] + self.d.curve_args + list(extra)
        before = self.d.stats()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if background:
            return p, before
        return self.finish(p, before, duration)

    def finish(self, p, before, duration):
        try:
            out, err = p.communicate(timeout=duration + self.args.drain + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        line = next((ln for ln in out.splitlines() if ln.startswith("{")), "{}")
        r = json.loads(line)
        if "error" in r or "next_t0" not in r:
            raise RuntimeError("loadgen failed: %s %s" % (line, err.strip()))
        self.t0 = r["next_t0"] + 1.0
        after = self.d.stats()
        r["daemon_dropped"] = after.get("dropped_total", 0) - before.get("dropped_total", 0)
        r["daemon_decoded"] = after.get("decoded", 0) - before.get("decoded", 0)
        r["daemon_published"] = after.get("published", 0) - before.get("published", 0)
        # The longest event-loop iteration since the previous stats request:
        # the longest any message could have waited on the daemon itself.
        r["daemon_loop_max_s"] = after.get("loop_max_s")
        self.all.append(r)
        lat = r["lat_us"]
        log("%-16s rate %9.0f sent %9d lost %7d late %6d ddrop %6d  p50 %8.0f p99 %8.0f p99.9 %8.0f max %8.0f us"
            % (r["label"], r["target_rate"], r["sent"], r["lost"], r["late"], r["daemon_dropped"],
               lat["p50"], lat["p99"], lat["p999"], lat["max"]))
        return r

    def passes(self, r):
        return (r["lost"] == 0 and r["late"] == 0 and r["daemon_dropped"] == 0 and r["sent"] > 0
                and r["lat_us"]["p999"] < self.args.slo_ms * 1000.0
                and r["rate_sent"] >= 0.97 * r["target_rate"])


def populate(rn, d, n, args):
    """One sample for every series (new series cost a store lookup each)."""
    for attempt in range(3):
        dur = max(10.0, n / 2000.0)
        rn.run("populate", 0, dur, ["--rounds", "1", "--nodrop", "--sndhwm", "100"])
        st = d.wait_idle()
        if st.get("series", 0) >= n:
            return st
        log("populate: %d of %d series exist; another round" % (st.get("series", 0), n))
    return d.stats()


def sustained(rn, d, args):
    """Bisection on the rate; returns (sustained rate, capacity probe result)."""
    cap = rn.run("capacity", 0, args.run_s, ["--nodrop", "--sndhwm", "100"])
    d.wait_idle()
    top = max(cap["rate_fc"], 1000.0)
    lo, hi = 0.0, None
    rate = top
    for it in range(args.search_steps):
        r = rn.run("search", rate, args.run_s)
        d.wait_idle()
        if not rn.passes(r):
            # A failure is final for the bisection (every rate above it is
            # skipped), a pass is not (the confirmation below checks it), so
            # one latency episode of the shared vCPUs in a 5 s run cost up to
            # a sixth of the result (3 Dec 2026: 341k vs 400k, same build).
            # A failing rate gets a second run and fails only if that fails
            # too, unless the first was far off (samples lost, or p99.9 over
            # five times the bound: a backlog, not an episode).
            if r["lost"] == 0 and r["daemon_dropped"] == 0 and r["lat_us"]["p999"] < 5 * args.slo_ms * 1000.0:
                r = rn.run("search-again", rate, args.run_s)
                d.wait_idle()
        if rn.passes(r):
            lo = rate
            rate = (lo + hi) / 2 if hi else rate * 1.3
        else:
            hi = rate
            rate = (lo + hi) / 2 if lo else rate * 0.6
    # One pass can be luck on a noisy machine (a backlog that had not yet
    # crossed the SLO when the run ended): the rate must pass a second,
    # twice as long run too, or it is lowered in steps of 5% of the
    # bisection's result (at most 6 times). Steps of 10% (until 3 Dec 2026)
    # reported up to a tenth less than the machine sustained.
    found, confirmed = lo, False
    for step in range(1, 7):
        if lo == 0:
            break
        r = rn.run("confirm", lo, 2 * args.run_s)
        d.wait_idle()
        if rn.passes(r):
            confirmed = True
            rn.confirm_run = r  # the latency at the reported rate
            break
        lo = found * (1.0 - 0.05 * step)
    if lo and not confirmed:
        log("warning: %.0f/s (0.70 of the bisection's result) is reported unconfirmed" % lo)
    if lo == 0:
        log("warning: no rate passed; the sustained rate is below %.0f/s" % rate)
    return lo, cap


def checkpoint_under_load(rn, d, n, rate, args):
    """A 25%-rate load while a checkpoint of every state runs. No checkpoint
    has run since populate (checkpoint_interval is a day), so every state is dirty."""
    run_s = args.ck_run_s
    p, before = rn.run("during-ckpt", max(rate * 0.25, 100.0), run_s, ["--timeline"], background=True)
    time.sleep(1.0)
    t_req = time.monotonic()
    rep = d.ctl({"cmd": "checkpoint", "wait": True}, timeout=600) or {}
    t_rep = time.monotonic()
    r = rn.finish(p, before, run_s)
    st = d.stats().get("checkpoint", {})
    # The loadgen timeline is max latency per 100 ms of send time from its own
    # start; the checkpoint began ~1 s after it (probe time varies slightly).
    tl = r.get("max_us_by_100ms", [])
    during = tl[5:10 + int((t_rep - t_req) * 10) + 5] if tl else []
    return {
        "rows": rep.get("rows", st.get("last_rows")),
        "duration_s": rep.get("duration", st.get("last_duration")),
        "reply_s": t_rep - t_req,
        "ok": rep.get("ok", False),
        "ingest_max_us_during": max(during) if during else None,
        "loop_max_s": r.get("daemon_loop_max_s"),
        "snapshot_s": st.get("last_snapshot_s"),
        "slice_max_s": st.get("last_slice_max_s"),
        "ingest_p99_us": r["lat_us"]["p99"],
        "ingest_max_us": r["lat_us"]["max"],
        "lost": r["lost"],
    }


def restart(rn, d, n, args):
    stop_s, code = d.stop()
    start_s = d.start()
    st = d.stats()
    return {"stop_s": stop_s, "exit_code": code, "restore_s": start_s, "restored": st.get("restored", 0),
            "series": st.get("series", 0), "rss_kb": d.rss_kb()}


def model_only(build, quick):
    exe = os.path.join(build, "bench", "rwkv_bench")
    out = subprocess.run([exe] + (["--quick"] if quick else []), capture_output=True, text=True,
                         timeout=600).stdout
    res = {"cpu": None, "batched256": None, "engine": None, "engine2": None}
    sect = None
    for line in out.splitlines():
        if line.startswith("CPU:"):
            res["cpu"] = line[4:].split(",")[0].strip()
        if line.startswith("## "):
            sect = line
        m = re.match(r"\|\s*batched B=256\s*\|\s*([0-9.]+)", line)
        if m and sect and sect.startswith("## default"):
            res["batched256"] = float(m.group(1))
        m = re.match(r"\|\s*engine\b.*?threads: ([0-9]+)[^|]*\|\s*([0-9.]+)", line)
        if m:
            res["engine" if m.group(1) == "1" else "engine" + m.group(1)] = float(m.group(2))
    return res


def task_ticks(pid):
    """{tid: (thread name, utime + stime in clock ticks)} of one process."""
    out = {}
    for t in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(t + "/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        out[int(t.rsplit("/", 1)[1])] = (name, int(fields[11]) + int(fields[12]))
    return out


def cpu_during(rn, d, label, rate, run_s):
    """A fixed-rate run with the CPU of each daemon thread group and of the
    loadgen over its middle part, in cores (1.0 = one core busy)."""
    p, before = rn.run(label, rate, run_s, background=True)
    time.sleep(min(1.0, run_s / 4))
    a, la, t0 = task_ticks(d.proc.pid), task_ticks(p.pid), time.monotonic()
    time.sleep(max(run_s / 2, 0.5))
    b, lb, t1 = task_ticks(d.proc.pid), task_ticks(p.pid), time.monotonic()
    r = rn.finish(p, before, run_s)
    hz = float(os.sysconf("SC_CLK_TCK")) * (t1 - t0)
    groups = {"loop": 0.0, "engine_workers": 0.0, "zmq_io": 0.0, "checkpoint": 0.0, "other": 0.0}
    for tid, (name, ticks) in b.items():
        used = (ticks - a.get(tid, (name, ticks))[1]) / hz
        if tid == d.proc.pid:
            groups["loop"] += used
        elif name.startswith("rk-engine"):
            groups["engine_workers"] += used
        elif name.startswith("ZMQbg"):
            groups["zmq_io"] += used
        elif name.startswith("rk-checkpoint"):
            groups["checkpoint"] += used
        else:
            groups["other"] += used
    groups["loadgen"] = (sum(t for _, t in lb.values()) - sum(t for _, t in la.values())) / hz
    r["cpu_cores"] = groups
    return r


class Scraper(threading.Thread):
    """GETs /metrics every `every` seconds, as a Prometheus server would."""

    def __init__(self, listen, every):
        super().__init__(daemon=True)
        self.listen, self.every, self.stop_ev, self.times = listen, every, threading.Event(), []

    def run(self):
        import http.client
        host, port = self.listen.rsplit(":", 1)
        while not self.stop_ev.wait(self.every):
            try:
                t0 = time.perf_counter()
                c = http.client.HTTPConnection(host, int(port), timeout=30)
                c.request("GET", "/metrics")
                c.getresponse().read()
                c.close()
                self.times.append(time.perf_counter() - t0)
            except OSError:
                pass


def bench_one(args, n, transport, all_runs, full, threads=None, pipeline=None, http=None, curve=None):
    work = tempfile.mkdtemp(prefix="rwkvcast-e2e-%s-%d-" % (transport, n))
    d = Daemon(args.daemon, work, n, transport, args.model, args.rcvhwm, threads, pipeline, args.silence, http,
               curve)
    label = transport if threads is None else "%s, %d engine thread%s" % (transport, threads, "s" if threads > 1 else "")
    if pipeline is not None:
        label += ", pipeline %s" % ("on" if pipeline else "off")
    if http is not None:
        label += ", http %s" % ("on, scraped every %g s" % args.scrape_s if http else "off")
    if curve is not None:
        label += ", CURVE %s" % ("on" if curve else "off")
    res = {"series": n, "transport": label}
    scraper = None
    try:
        d.start()
        if http and d.http:
            scraper = Scraper(d.http, args.scrape_s)
            scraper.start()
        time.sleep(0.3)
        res["rss_base_kb"] = d.rss_kb()
        rn = Runner(args.loadgen, d, n, args, all_runs)
        st = populate(rn, d, n, args)
        res["series_created"] = st.get("series", 0)
        if res["series_created"] < n:
            log("warning: only %d of %d series exist after populate" % (res["series_created"], n))
        # The engine touches every preallocated slot at start (en_new resets
        # them all), so RSS minus this daemon's own empty RSS would hide the
        # per-series cost; the baseline is a daemon with max_series 16.
        res["rss_kb"] = d.rss_kb()
        res["rss_per_series_b"] = (res["rss_kb"] - args.rss_tiny_kb) * 1024.0 / max(n, 1)
        if args.fixed_rate:
            # One offered rate for every configuration of the run (e.g. HTTP
            # on and off at 100k samples/s): what came back, and how fast.
            r = rn.run("fixed", args.fixed_rate, args.fixed_s or args.run_s)
            d.wait_idle()
            res["fixed"] = {"offered": args.fixed_rate, "sent": r["rate_sent"], "forecasts": r["rate_recv"],
                            "lost": r["lost"] + r["late"] + r["daemon_dropped"], "lat": r["lat_us"],
                            "loop_max_s": r.get("daemon_loop_max_s")}
        rn.confirm_run = None
        rate, cap = sustained(rn, d, args)
        res["capacity_fc"] = cap["rate_fc"]
        res["sustained"] = rate
        if rn.confirm_run:
            res["at_sustained"] = {"sent": rn.confirm_run["rate_sent"], "forecasts": rn.confirm_run["rate_recv"],
                                   "lat": rn.confirm_run["lat_us"]}
        for f in (0.25, 0.5, 0.9):
            if f == 0.9:
                # CPU per thread group too: how much of a core the engine
                # had at this rate, so throughput per busy engine core can
                # be set against model-only.
                r = cpu_during(rn, d, "lat-90%", max(rate * f, 100.0), args.run_s)
                res["cpu90"] = r["cpu_cores"]
                res["rate90"] = r["rate_sent"]
            else:
                r = rn.run("lat-%d%%" % int(f * 100), max(rate * f, 100.0), args.run_s)
            d.wait_idle()
            res["lat%d" % int(f * 100)] = r["lat_us"]
            res["lost%d" % int(f * 100)] = r["lost"] + r["late"]
        if full:
            res["ckpt"] = checkpoint_under_load(rn, d, n, rate, args)
            # The checkpoint snapshot buffer (max_series rows) is touched now.
            res["rss_after_ckpt_kb"] = d.rss_kb()
            res["rss_per_series_ckpt_b"] = (res["rss_after_ckpt_kb"] - args.rss_tiny_kb) * 1024.0 / max(n, 1)
            res["restart"] = restart(rn, d, n, args)
            r = rn.run("after-restart", max(rate * 0.5, 100.0), min(args.run_s, 2.0))
            res["after_restart_lost"] = r["lost"]
        d.stop()
    except Exception as e:  # keep going with the other sizes; the table says what failed
        log("error at N=%d %s: %s" % (n, transport, e))
        res["error"] = str(e)
        d.kill()
    finally:
        if scraper:
            scraper.stop_ev.set()
            scraper.join(60)
            t = sorted(scraper.times)
            res["scrapes"] = len(t)
            res["scrape_ms"] = [1e3 * t[len(t) // 2], 1e3 * t[-1]] if t else None
            log("http: %d scrapes of /metrics, median %s ms, max %s ms" % (
                len(t), "%.1f" % res["scrape_ms"][0] if t else "-", "%.1f" % res["scrape_ms"][1] if t else "-"))
            log("http: scrape times in order (ms): %s" % " ".join("%.0f" % (1e3 * x) for x in scraper.times))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("kept %s" % work)
    return res


def fmt(x, f="%.0f"):
    return "n/a" if x is None else f % x


def markdown(cpu, mo, results, args):
    out = []
    out.append("CPU: %s (%d logical CPUs visible). Mode: %s; runs of %.1f s; shape %s x%d, sent every %g us "
               "at a fixed rate; SLO for 'sustained': every forecast back and p99.9 < %g ms." %
               (cpu, os.cpu_count() or 0, "quick" if args.quick else "full", args.run_s, args.shape, args.batch,
                args.tick_us, args.slo_ms))
    out.append("")
    out.append("Model-only (rwkv_bench%s, default model, batched B=256): %s steps/s, the mean of %s before the "
               "end-to-end runs and %s after them (the VM's speed drifts); engine path (featurize + score + "
               "step + denormalize, no sockets): %s steps/s on 1 engine thread, %s on 2." %
               (" --quick" if args.quick else "", fmt(mo.get("batched256")), fmt(mo.get("batched256_start")),
                fmt(mo.get("batched256_end")), fmt(mo.get("engine")), fmt(mo.get("engine2"))))
    out.append("")
    out.append("| N series | transport | sustained samples/s | e2e / model-only | capacity probe /s "
               "| p50 / p99 / p99.9 @25% (us) | @50% (us) | @90% (us) | RSS/series (B) | RSS/series after a checkpoint (B) |")
    out.append("|---:|---|---:|---:|---:|---|---|---|---:|---:|")
    for r in results:
        if "error" in r and "sustained" not in r:
            out.append("| %d | %s | error: %s | | | | | | | |" % (r["series"], r["transport"], r["error"]))
            continue
        ratio = r["sustained"] / mo["batched256"] if mo.get("batched256") else None

        def lat(k):
            v = r.get(k)
            return "%.0f / %.0f / %.0f" % (v["p50"], v["p99"], v["p999"]) if v else "n/a"
        out.append("| %d | %s | %.0f | %s | %.0f | %s | %s | %s | %s | %s |" % (
            r["series"], r["transport"], r["sustained"], fmt(ratio, "%.2f"), r["capacity_fc"], lat("lat25"),
            lat("lat50"), lat("lat90"), fmt(r.get("rss_per_series_b")), fmt(r.get("rss_per_series_ckpt_b"))))
    fx = [r for r in results if "fixed" in r or "at_sustained" in r]
    if fx:
        out.append("")
        out.append("At one offered rate (--fixed-rate, the same for every row) and at the sustained rate (its "
                   "confirming run): samples/s sent, forecasts/s back, ingest-to-publish latency (us).")
        out.append("")
        out.append("| N series | transport | offered /s | sent /s | forecasts /s | lost | p50 / p99 / p99.9 (us) "
                   "| loop max (ms) | sustained /s | forecasts /s | p50 / p99 / p99.9 at sustained (us) |")
        out.append("|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
        for r in fx:
            f, m = r.get("fixed") or {}, r.get("at_sustained") or {}

            def l3(v):
                return "%.0f / %.0f / %.0f" % (v["p50"], v["p99"], v["p999"]) if v else "n/a"
            lm = f.get("loop_max_s")
            out.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["series"], r["transport"], fmt(f.get("offered")), fmt(f.get("sent")), fmt(f.get("forecasts")),
                fmt(f.get("lost")), l3(f.get("lat")), fmt(lm * 1e3 if lm is not None else None, "%.1f"),
                fmt(r.get("sustained")), fmt(m.get("forecasts")), l3(m.get("lat"))))
    cp = [r for r in results if "cpu90" in r]
    if cp:
        out.append("")
        out.append("CPU at 90% of the sustained rate, in cores (/proc/PID/task/*/stat over the middle of the run); "
                   "'per engine core' = samples/s divided by the CPU of the threads that decode and step "
                   "(event loop + engine workers).")
        out.append("")
        out.append("| N series | transport | samples/s | event loop | engine workers | ZeroMQ I/O | loadgen "
                   "| samples/s per engine core | per engine core / model-only |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in cp:
            c = r["cpu90"]
            eng = c["loop"] + c["engine_workers"]
            per = r["rate90"] / eng if eng > 0 else None
            out.append("| %d | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %s | %s |" % (
                r["series"], r["transport"], r["rate90"], c["loop"], c["engine_workers"], c["zmq_io"],
                c["loadgen"], fmt(per), fmt(per / mo["batched256"] if per and mo.get("batched256") else None,
                                          "%.2f")))
    ck = [r for r in results if "ckpt" in r]
    if ck:
        out.append("")
        out.append("| N series | transport | checkpoint rows | checkpoint s (writer) | ctl reply s | ingest max latency "
                   "during it (us) | daemon loop max during it (ms) | snapshot s | longest snapshot slice (ms) "
                   "| stop (SIGTERM) s "
                   "| restart+restore s | restored | RSS after restore (MB) |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in ck:
            c, s = r["ckpt"], r.get("restart", {})
            lm = c.get("loop_max_s")
            sm = c.get("slice_max_s")
            out.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["series"], r["transport"], fmt(c.get("rows")), fmt(c.get("duration_s"), "%.3f"),
                fmt(c.get("reply_s"), "%.3f"), fmt(c.get("ingest_max_us_during")),
                fmt(lm * 1e3 if lm is not None else None, "%.1f"), fmt(c.get("snapshot_s"), "%.2f"),
                fmt(sm * 1e3 if sm is not None else None, "%.2f"),
                fmt(s.get("stop_s"), "%.2f"), fmt(s.get("restore_s"), "%.2f"),
                fmt(s.get("restored")), fmt(s.get("rss_kb", 0) / 1024.0 if s else None, "%.0f")))
    errs = [r for r in results if "error" in r]
    for r in errs:
        out.append("")
        out.append("Error at N=%d (%s): %s" % (r["series"], r["transport"], r["error"]))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description="End-to-end benchmark of rwkvcastd (issue 7).")
    ap.add_argument("--quick", action="store_true", help="N up to 100k, short runs")
    ap.add_argument("--series", help="comma-separated N list (default: 1000,100000[,1000000])")
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--model", default="", help="weights file (default: the daemon's default)")
    ap.add_argument("--shape", default="batch", choices=["single", "batch", "columnar"])
    ap.add_argument("--batch", type=int, default=64, help="samples per message")
    ap.add_argument("--tick-us", type=float, default=1000.0,
                    help="fixed-rate runs: the loadgen sends what is due every TICK_US microseconds "
                         "(0: each message at its own time, one wake-up per message)")
    ap.add_argument("--run-s", type=float, help="seconds per measured run")
    ap.add_argument("--search-steps", type=int, help="bisection steps for the sustained rate")
    ap.add_argument("--slo-ms", type=float, default=100.0, help="p99.9 bound for 'sustained'")
    ap.add_argument("--drain", type=float, default=3.0)
    ap.add_argument("--rcvhwm", type=int, default=1000,
                    help="daemon input.rcvhwm (messages); small so overload shows within a short run")
    ap.add_argument("--no-ipc", action="store_true", help="skip the ipc:// daemon")
    ap.add_argument("--engine-threads", default="",
                    help="e.g. 1,2: repeat the tcp runs with engine.threads set to each (needs daemon support)")
    ap.add_argument("--pipeline", choices=["default", "on", "off", "both"], default="default",
                    help="engine.pipeline for the tcp runs; 'both' runs each with it off and on (A/B in one run)")
    ap.add_argument("--http", choices=["default", "on", "off", "both"], default="default",
                    help="the HTTP endpoint for the tcp runs; 'on' also scrapes /metrics (every series "
                         "exported) every --scrape-s; 'both' runs each with it off and on (A/B in one run)")
    ap.add_argument("--curve", choices=["default", "on", "off", "both"], default="default",
                    help="CURVE (keys from rwkvcast keygen) on the tcp runs' ingest and output; 'both' runs "
                         "each with it off and on (A/B in one run)")
    ap.add_argument("--scrape-s", type=float, default=1.0, help="seconds between /metrics scrapes with --http on")
    ap.add_argument("--fixed-rate", type=float, default=0.0,
                    help="also run every configuration at this offered rate (samples/s), before the search")
    ap.add_argument("--fixed-s", type=float, default=0.0, help="seconds of that run (default: --run-s)")
    ap.add_argument("--no-lifecycle", action="store_true", help="skip checkpoint and restart")
    ap.add_argument("--silence", type=float, default=None,
                    help="anomaly.silence for the daemon (default: its default; 0 = silence timers off)")
    ap.add_argument("--keep", action="store_true", help="keep temp dirs (daemon logs)")
    ap.add_argument("--outdir", default=None)
    args = ap.parse_args()
    if args.series:
        sizes = [int(x) for x in args.series.split(",") if x]
    else:
        sizes = [1000, 100000] if args.quick else [1000, 100000, 1000000]
    args.run_s = args.run_s or (2.0 if args.quick else 5.0)
    args.search_steps = args.search_steps or (4 if args.quick else 7)
    args.ck_run_s = 6.0 if args.quick else 15.0
    args.daemon = os.path.join(ROOT, args.build, "rwkvcastd")
    args.loadgen = os.path.join(ROOT, args.build, "bench", "loadgen")
    outdir = args.outdir or os.path.join(ROOT, args.build, "bench-e2e")
    os.makedirs(outdir, exist_ok=True)
    for exe in (args.daemon, args.loadgen):
        if not os.access(exe, os.X_OK):
            sys.exit("Error: '%s' not built (make all)." % exe)

    cpu = cpu_model()
    log("CPU: %s; sizes %s; model-only first" % (cpu, sizes))
    mo = model_only(os.path.join(ROOT, args.build), args.quick)
    log("model-only default B=256: %s steps/s, engine path %s steps/s" % (mo["batched256"], mo["engine"]))
    tiny = Daemon(args.daemon, tempfile.mkdtemp(prefix="rwkvcast-e2e-tiny-"), 0, "tcp", args.model, args.rcvhwm)
    try:
        tiny.start()
        time.sleep(0.5)
        args.rss_tiny_kb = tiny.rss_kb()
        tiny.stop()
    finally:
        tiny.kill()
        shutil.rmtree(tiny.dir, ignore_errors=True)
    log("RSS of an empty daemon (max_series 16): %d kB" % args.rss_tiny_kb)
    runs, results = [], []
    threads = [int(x) for x in args.engine_threads.split(",") if x] or [None]
    pipes = {"default": [None], "on": [True], "off": [False], "both": [False, True]}[args.pipeline]
    https = {"default": [None], "on": [True], "off": [False], "both": [False, True]}[args.http]
    curves = {"default": [None], "on": [True], "off": [False], "both": [False, True]}[args.curve]
    for n in sizes:
        for th in threads:
            for pp in pipes:
                for hh in https:
                    for cv in curves:
                        log("N=%d over tcp%s%s%s%s" % (n, "" if th is None else ", engine.threads %d" % th,
                                                     "" if pp is None else ", engine.pipeline %s" % pp,
                                                     "" if hh is None else ", http %s" % ("on" if hh else "off"),
                                                     "" if cv is None else ", CURVE %s" % ("on" if cv else "off")))
                        results.append(bench_one(args, n, "tcp", runs, not args.no_lifecycle, th, pp, hh, cv))
    if not args.no_ipc:
        log("N=%d over ipc" % min(sizes))
        results.append(bench_one(args, min(sizes), "ipc", runs, False))
    # Model-only once more: the ratios divide by the mean of both measurements.
    end = model_only(os.path.join(ROOT, args.build), args.quick)
    mo["batched256_start"], mo["batched256_end"] = mo["batched256"], end["batched256"]
    if mo["batched256"] and end["batched256"]:
        mo["batched256"] = (mo["batched256"] + end["batched256"]) / 2
    log("model-only default B=256 at the end: %s steps/s" % end["batched256"])
    md = markdown(cpu, mo, results, args)
    with open(os.path.join(outdir, "e2e.json"), "w") as f:
        json.dump({"cpu": cpu, "model_only": mo, "results": results, "runs": runs}, f, indent=1)
    with open(os.path.join(outdir, "e2e.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    log("raw runs: %s/e2e.json; table: %s/e2e.md" % (outdir, outdir))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
