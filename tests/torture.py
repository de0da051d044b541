#!/usr/bin/python3
# torture.py: `make torture`: kill -9 rwkvcastd under load, ROUNDS times,
# and check every restart (issue 22). One daemon, one store in a temp dir;
# a sender pushes one sample to each of SERIES series every tick (TICK_HZ
# ticks per second, t = the tick number, so every series' newest time says
# which tick it saw last). Each round: start (or restart) the daemon, check
# what it restored, send for a random 0.3-2.5 s while checkpoints run every
# INTERVAL s, then SIGKILL it, often in the middle of a checkpoint. A
# restart counts as good when
#   - the store is intact: SQLite's integrity_check says ok after the kill,
#     and the daemon starts (it refuses a store failing quick_check);
#   - every series is restored: `stats` says SERIES restored and `get`
#     answers for each, none newer than what was sent;
#   - at most one interval is lost. A monitor asks the daemon every 50 ms
#     which tick it has stepped (`get` of the first series) and for its
#     checkpoint stats, so the loss is measured in the daemon's own time,
#     not the sender's (on a loaded machine samples wait in ZeroMQ's
#     queues): (a) every series comes back with at least the tick the
#     daemon had stepped when the last checkpoint committed before the
#     kill began (nothing committed is lost), and (b) the daemon's
#     progress after the restored tick lasted at most INTERVAL + that
#     checkpoint's duration + SLACK s (the checkpoint in flight at the kill
#     is the one lost).
# Prints one line per round and the tally; exits 1 unless every round passed.
#
# SPDX-License-Identifier: MIT
import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pack(o):
    return msgpack.packb(o, use_bin_type=True)


class Sender(threading.Thread):
    """Sends tick after tick to the daemon's PULL socket until stopped;
    remembers the wall time each tick was handed to ZeroMQ."""

    def __init__(self, ctx, endpoint, ids, hz, first_tick, sent):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 4)
        self.sock.connect(endpoint)
        self.ids, self.hz, self.tick, self.sent = ids, hz, first_tick, sent
        self.halt = threading.Event()

    def run(self):
        nxt = time.monotonic()
        while not self.halt.is_set():
            batch = [{"s": s, "t": float(self.tick), "v": float((self.tick + k) % 17)} for k, s in enumerate(self.ids)]
            try:
                self.sock.send(pack(batch), zmq.NOBLOCK)
            except zmq.Again:
                time.sleep(0.005)  # the daemon is behind (or dead): retry the same tick
                continue
            self.sent[self.tick] = time.time()
            self.tick += 1
            nxt += 1.0 / self.hz
            time.sleep(max(0.0, nxt - time.monotonic()))
        self.sock.close()


class Torture:
    def __init__(self, args):
        self.a = args
        self.dir = tempfile.mkdtemp(prefix="rk_torture_")
        self.db = os.path.join(self.dir, "state.db")
        self.pull = "ipc://%s/in.sock" % self.dir
        self.ctl_ep = "ipc://%s/ctl.sock" % self.dir
        self.cfg_path = os.path.join(self.dir, "rwkvcast.yaml")
        cfg = {
            "log_level": "notice", "state_db": self.db, "checkpoint_interval": args.interval,
            "stats_interval": 0,
            "input": {"endpoints": [{"type": "pull", "endpoint": self.pull, "bind": True}]},
            "output": {"endpoint": "ipc://%s/out.sock" % self.dir, "bind": True},
            "control": {"endpoint": self.ctl_ep},
            "series": {"max": max(1000, args.series), "policy": "refuse"},
            "http": {"listen": ""},  # no fixed port: other daemons may run beside it
        }
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        self.ctx = zmq.Context()
        self.ids = ["torture-%04d" % k for k in range(args.series)]
        self.sent = {}
        self.tick = 1
        self.proc = None
        self.log = open(os.path.join(self.dir, "daemon.log"), "ab")

    def ctl(self, cmd, timeout=5.0, **kw):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.ctl_ep)
        try:
            req = {"cmd": cmd}
            req.update(kw)
            s.send(pack(req))
            if not s.poll(int(timeout * 1000)):
                raise TimeoutError(cmd)
            return msgpack.unpackb(s.recv(), raw=False)
        finally:
            s.close()

    def start(self):
        """Starts the daemon; None when it is up, else why not."""
        self.proc = subprocess.Popen([self.a.daemon, "-c", self.cfg_path], stdout=self.log, stderr=self.log,
                                     cwd=self.dir)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return "exited with %d (see %s/daemon.log)" % (self.proc.returncode, self.dir)
            try:
                if self.ctl("ping", timeout=0.5).get("ok"):
                    return None
            except TimeoutError:
                pass
        return "no answer to ping within 60 s"

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def integrity(self):
        c = sqlite3.connect(self.db, timeout=10)
        try:
            return c.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            c.close()

    def send_for(self, seconds, watch=None):
        s = Sender(self.ctx, self.pull, self.ids, self.a.hz, self.tick, self.sent)
        s.start()
        end = time.time() + seconds
        while time.time() < end:
            if watch is not None:
                # (wall time, tick stepped, last committed checkpoint's start and duration)
                try:
                    g = self.ctl("get", s=self.ids[0], timeout=2)
                    c = self.ctl("stats", timeout=2).get("checkpoint", {})
                    watch.append((time.time(), g.get("last_t") or 0, c.get("last_time", 0), c.get("last_duration", 0)))
                except TimeoutError:
                    pass
            time.sleep(0.05)
        return s

    def newest_times(self):
        out = {}
        for s in self.ids:
            r = self.ctl("get", s=s)
            out[s] = r.get("last_t") if r.get("ok") else None
        return out

    def run(self):
        a = self.a
        why = self.start()
        if why:
            print("torture: the first start failed: " + why)
            return 1
        # Every series exists in the store before the first kill.
        s = self.send_for(1.0)
        s.halt.set()
        s.join()
        self.tick = s.tick
        assert self.ctl("checkpoint", wait=True, timeout=60)["ok"]
        intact = restored = in_bound = 0
        worst = 0.0
        for rnd in range(1, a.rounds + 1):
            watch = []
            s = self.send_for(random.uniform(0.3, 2.5), watch)
            kill_at = time.time()
            self.kill9()
            s.halt.set()
            s.join()
            self.tick = s.tick
            # The daemon saw at most up to here; what was queued in ZeroMQ is gone.
            problems = []
            chk = self.integrity()
            ok_store = chk == "ok"
            if not ok_store:
                problems.append("integrity_check: " + chk)
            why = self.start()
            if why:
                problems.append("restart: " + why)
                ok_store = False
            intact += ok_store
            ok_all = ok_bound = False
            lost = float("nan")
            if not why:
                st = self.ctl("stats")
                times = self.newest_times()
                missing = [k for k, v in times.items() if not v]
                future = [k for k, v in times.items() if v and v >= self.tick]
                ok_all = st.get("restored") == a.series and not missing and not future
                if not ok_all:
                    problems.append("restored %s of %d (%d without a state, %d newer than sent)" %
                                    (st.get("restored"), a.series, len(missing), len(future)))
                if not missing:
                    oldest = min(times.values())
                    last_ck, ck_dur = (watch[-1][2], watch[-1][3]) if watch else (0, 0)
                    # (a) the tick stepped when that checkpoint began is restored
                    seen = [tk for w, tk, _, _ in watch if w <= last_ck]
                    committed = max(seen) if seen else 0
                    # (b) the daemon's time spent past the restored tick
                    after = [w for w, tk, _, _ in watch if tk <= oldest]
                    lost = kill_at - (max(after) if after else kill_at)
                    bound = a.interval + ck_dur + a.slack
                    ok_bound = oldest >= committed and lost <= bound
                    worst = max(worst, lost)
                    if oldest < committed:
                        problems.append("restored tick %d is older than the committed %d" % (oldest, committed))
                    if lost > bound:
                        problems.append("lost %.2f s of the daemon's progress (bound %.2f s)" % (lost, bound))
            restored += ok_all
            in_bound += ok_bound
            print("round %3d: %s, lost %.2f s%s" % (rnd, "ok" if ok_store and ok_all and ok_bound else "FAIL",
                                                    lost, "" if not problems else ": " + "; ".join(problems)),
                  flush=True)
            if why:
                break
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        n = a.rounds
        print("torture: %d/%d restarts with an intact store, %d/%d with every series restored, %d/%d with at most "
              "one interval lost (worst %.2f s; interval %.2f s, %d series, %d samples/s)" %
              (intact, n, restored, n, in_bound, n, worst, a.interval, a.series, a.series * a.hz))
        good = intact == restored == in_bound == n
        if good:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("torture: kept %s for a look" % self.dir)
        return 0 if good else 1


def main():
    p = argparse.ArgumentParser(description="kill -9 rwkvcastd under load, ROUNDS times; print the tally")
    p.add_argument("--daemon", default=os.environ.get("RWKVCASTD") or os.path.join(ROOT, "build", "rwkvcastd"))
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--series", type=int, default=1000)
    p.add_argument("--hz", type=float, default=10.0, help="ticks per second (one sample per series each)")
    p.add_argument("--interval", type=float, default=1.0, help="checkpoint_interval, s")
    p.add_argument("--slack", type=float, default=0.5, help="s allowed beyond interval + checkpoint duration")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    a.daemon = os.path.abspath(a.daemon)  # it runs in the temp dir
    random.seed(a.seed)
    sys.exit(Torture(a).run())


if __name__ == "__main__":
    main()
