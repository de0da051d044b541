# conftest.py: fixtures that run the real rwkvcastd binary (build/rwkvcastd,
# or $RWKVCASTD) in a temp dir with a temp config, real sockets (ipc:// in the
# temp dir and tcp://127.0.0.1 on free ports) and a real SQLite file.
# Every wait is bounded in time.
#
# SPDX-License-Identifier: MIT
import json
import math
import os
import signal
import socket
import subprocess
import time

import msgpack
import pytest
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.abspath(os.environ.get("RWKVCASTD") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "rwkvcastd"))
SANITIZED = bool(os.environ.get("RWKVCAST_SANITIZED"))
# Timeouts stretch under ASan/UBSan, which is several times slower.
SLOW = 4.0 if SANITIZED else 1.0


_ports_given = set()


def free_port():
    """A port free now and not handed out before in this process: a port is
    only bound when its daemon starts, so two calls could return the same
    one (seen: a daemon's SUB and HTTP ports collided, it exited 1)."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no fresh free port")


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


class Daemon:
    """One rwkvcastd process with its own dir, config, sockets and store."""

    def __init__(self, tmp_path, name="d", **overrides):
        self.dir = tmp_path / name
        self.dir.mkdir(exist_ok=True)
        self.db = str(self.dir / "state.db")
        self.pull = "ipc://%s/in.sock" % self.dir
        self.sub = "tcp://127.0.0.1:%d" % free_port()
        self.out = "tcp://127.0.0.1:%d" % free_port()
        self.ctl_ep = "ipc://%s/ctl.sock" % self.dir
        self.http = None  # set by write_config: "http://127.0.0.1:PORT" or None when off
        self.cfg = {
            "log_level": "notice",
            "state_db": self.db,
            "checkpoint_interval": 30,
            "stats_interval": 0,
            "input": {
                "endpoints": [
                    {"type": "pull", "endpoint": self.pull, "bind": True},
                    {"type": "sub", "endpoint": self.sub, "bind": True, "topics": []},
                ],
                "max_msg_size": 1048576,
            },
            "output": {"endpoint": self.out, "bind": True},
            "control": {"endpoint": self.ctl_ep},
            "series": {"max": 1000, "policy": "refuse"},
            # The default 127.0.0.1:7703 would collide between daemons.
            "http": {"listen": "127.0.0.1:%d" % free_port()},
        }
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(self.cfg.get(k), dict):
                self.cfg[k].update(v)
            else:
                self.cfg[k] = v
        self.cfg_path = str(self.dir / "rwkvcast.yaml")
        self.proc = None
        self.log = None
        self.zctx = zmq.Context.instance()
        self._push = None

    # -- process --
    def write_config(self):
        listen = self.cfg.get("http", {}).get("listen", "")
        self.http = "http://%s" % listen if listen else None
        # JSON is valid YAML, and keeps this file free of a YAML dependency.
        with open(self.cfg_path, "w") as f:
            json.dump(self.cfg, f, indent=2)

    def start(self, env=None, timeout=15):
        self.write_config()
        self.log = open(str(self.dir / "daemon.log"), "ab")
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.pop("WATCHDOG_USEC", None)
        e.update(env or {})
        self.proc = subprocess.Popen([BINARY, "-c", self.cfg_path], stdout=self.log, stderr=self.log,
                                     cwd=str(self.dir), env=e)
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("rwkvcastd exited with %s:\n%s" % (self.proc.returncode, self.logtext()))
            try:
                if self.ctl("ping", timeout=0.5).get("ok"):
                    return self
            except TimeoutError:
                pass
        raise AssertionError("rwkvcastd did not answer ping:\n" + self.logtext())

    def logtext(self):
        try:
            with open(str(self.dir / "daemon.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.close_push()
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("rwkvcastd did not stop in time:\n" + self.logtext())
        self.proc = None
        self.log.close()
        return rc

    def kill9(self):
        self.close_push()
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None
        self.log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- control --
    def ctl(self, cmd, timeout=5.0, **kw):
        s = self.zctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.ctl_ep)
        try:
            req = dict(kw)
            req["cmd"] = cmd
            s.send(pack(req))
            if not s.poll(int(timeout * 1000 * SLOW)):
                raise TimeoutError(cmd)
            return msgpack.unpackb(s.recv(), raw=False)
        finally:
            s.close()

    def stats(self):
        r = self.ctl("stats")
        assert r["ok"], r
        return r

    def wait_stats(self, pred, timeout=20):
        deadline = time.time() + timeout * SLOW
        st = self.stats()
        while not pred(st):
            if time.time() > deadline:
                raise AssertionError("stats condition not met: %r\n%s" % (st, self.logtext()))
            time.sleep(0.05)
            st = self.stats()
        return st

    # -- data --
    def push_socket(self):
        if self._push is None:
            self._push = self.zctx.socket(zmq.PUSH)
            self._push.setsockopt(zmq.LINGER, 2000)
            self._push.setsockopt(zmq.SNDHWM, 0)
            self._push.connect(self.pull)
        return self._push

    def close_push(self):
        if self._push is not None:
            self._push.close()
            self._push = None

    def send(self, payload, topic=None):
        """Sends one message on the PULL endpoint; payload is an object or raw bytes."""
        data = payload if isinstance(payload, (bytes, bytearray)) else pack(payload)
        s = self.push_socket()
        if topic is None:
            s.send(data)
        else:
            s.send_multipart([topic, data])

    def subscriber(self, prefix=b""):
        return Subscriber(self, prefix)


class Subscriber:
    """A SUB socket on the daemon's output; sync() beats the slow-joiner race."""

    def __init__(self, daemon, prefix=b""):
        self.d = daemon
        self.s = daemon.zctx.socket(zmq.SUB)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.setsockopt(zmq.RCVHWM, 0)
        self.s.setsockopt(zmq.SUBSCRIBE, prefix)
        if prefix:
            self.s.setsockopt(zmq.SUBSCRIBE, b"f.__sync")
        self.s.connect(daemon.out)
        self.n_sync = 0

    def sync(self, timeout=10):
        """Sends samples of a probe series until its forecast arrives."""
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            self.n_sync += 1
            # Wall-clock times keep the probe's timestamps increasing across restarts.
            self.d.send({"s": "__sync", "t": time.time(), "v": 0.0})
            if self.s.poll(100):
                while self.s.poll(200):
                    topic, _ = self.s.recv_multipart()
                return
        raise AssertionError("no output from the daemon:\n" + self.d.logtext())

    def collect(self, want, timeout=30, skip_sync=True):
        """Receives (topic, message) pairs until want() of the list is true."""
        got = []
        deadline = time.time() + timeout * SLOW
        while not want(got):
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("timed out with %d messages:\n%s" % (len(got), self.d.logtext()))
            if not self.s.poll(int(min(left, 0.5) * 1000)):
                continue
            topic, data = self.s.recv_multipart()
            if skip_sync and topic.endswith(b"__sync"):
                continue
            got.append((topic.decode(), msgpack.unpackb(data, raw=False)))
        return got

    def close(self):
        self.s.close()


@pytest.fixture
def daemon_factory(tmp_path):
    made = []

    def make(name="d", **overrides):
        d = Daemon(tmp_path, name, **overrides)
        made.append(d)
        return d

    yield make
    for d in made:
        if d.alive():
            d.proc.kill()
            d.proc.wait()
        d.close_push()


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory().start()


def check_forecast(m, H=None):
    for k in ("s", "t", "v", "dt", "h", "yhat", "lo", "hi", "score", "level"):
        assert k in m, (k, m)
    n = len(m["h"])
    if H is not None:
        assert n == H
    assert n >= 1 and m["h"] == list(range(1, n + 1))
    assert len(m["yhat"]) == len(m["lo"]) == len(m["hi"]) == n
    for lo, y, hi in zip(m["lo"], m["yhat"], m["hi"]):
        assert math.isfinite(lo) and math.isfinite(y) and math.isfinite(hi)
        assert lo <= y <= hi, (lo, y, hi)
    assert 0.0 <= m["score"] <= 1.0
    assert m["level"] in (0, 1, 2)
