# test_curve.py: CURVE + ZAP on the daemon's TCP endpoints (issue 22 item
# 7, docs/PROTOCOL.md §6): `rwkvcast keygen`, the config keys and their
# errors, and a real daemon whose ingest, output and control endpoints take
# only the keys on their allow-lists: an allowed client gets through with
# send, tail and ctl; a client with another key, or none, gets nothing
# through, and the refusals are counted.
#
# SPDX-License-Identifier: MIT
import json
import socket
import urllib.request
import os
import stat
import subprocess
import time

import pytest
import zmq

from conftest import BINARY, SLOW, Daemon, free_port, pack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("RWKVCAST") or os.path.abspath(os.path.join(ROOT, os.environ.get("BUILD", "build"), "rwkvcast"))

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")


def keygen(d, name):
    p = subprocess.run([CLI, "keygen", str(d / name)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_keygen_writes_a_private_pair_and_never_overwrites(tmp_path):
    old = os.umask(0)  # the modes must not depend on the umask
    try:
        pub = keygen(tmp_path, "a")
    finally:
        os.umask(old)
    assert len(pub) == 40
    key, pubf = tmp_path / "a.key", tmp_path / "a.pub"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pubf).st_mode) == 0o644
    lines = [l for l in key.read_text().splitlines() if l and not l.startswith("#")]
    assert len(lines) == 2 and lines[1] == pub
    assert zmq.curve_public(lines[0].encode()).decode() == pub
    assert [l for l in pubf.read_text().splitlines() if not l.startswith("#")] == [pub]
    before = key.read_bytes()
    p = subprocess.run([CLI, "keygen", str(tmp_path / "a")], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "exists; keygen never overwrites" in p.stderr, p.stderr
    assert key.read_bytes() == before
    # Only the .pub exists: still nothing is written.
    (tmp_path / "b.pub").write_text("x\n")
    p = subprocess.run([CLI, "keygen", str(tmp_path / "b")], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and not (tmp_path / "b.key").exists()
    for args, code, text in [([], 2, "Usage: rwkvcast keygen NAME"), (["a", "b"], 2, "Unexpected argument"),
                             (["--bogus"], 2, "--bogus"), ([""], 1, "Invalid key name"),
                             ([str(tmp_path / "no" / "dir" / "k")], 1, "Cannot create")]:
        p = subprocess.run([CLI, "keygen"] + args, capture_output=True, text=True, timeout=20)
        assert p.returncode == code and text in p.stderr, (args, p.returncode, p.stderr)
    p = subprocess.run([CLI, "keygen", "--help"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and "NAME.key" in p.stdout


def check_config(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    p = subprocess.run([BINARY, "-c", str(cfg), "--check-config"], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr, str(cfg)


def test_curve_config_errors(tmp_path):
    keygen(tmp_path, "srv")
    keygen(tmp_path, "cli")
    srv, allow = tmp_path / "srv.key", tmp_path / "cli.pub"
    ok = "curve:\n  server_key: %s\ncontrol:\n  endpoint: tcp://127.0.0.1:9\n  curve_allow: %s\n" % (srv, allow)
    rc, err, _ = check_config(tmp_path, ok)
    assert rc == 0, err
    # A tcp:// control endpoint without CURVE serves forget and reload to anyone.
    rc, err, cfg = check_config(tmp_path, "control:\n  endpoint: tcp://0.0.0.0:7703\n")
    assert rc == 2 and err.startswith("%s:2:3: Invalid 'control.endpoint' value (tcp://0.0.0.0:7703): a tcp:// "
                                      "control endpoint needs 'control.curve_allow'" % cfg), err
    # So does an abstract ipc://@ socket: no file, no mode, anyone local.
    rc, err, cfg = check_config(tmp_path, "control:\n  endpoint: ipc://@rwkvcast-ctl\n")
    assert rc == 2 and err.startswith("%s:2:3: Invalid 'control.endpoint' value (ipc://@rwkvcast-ctl): an abstract "
                                      "ipc://@ socket has no file mode" % cfg), err
    rc, err, _ = check_config(tmp_path, "curve:\n  server_key: %s\ncontrol:\n  endpoint: ipc://@rwkvcast-ctl\n"
                                        "  curve_allow: %s\n" % (srv, allow))
    assert rc == 0, err
    # ipc:// stays allowed without CURVE.
    assert check_config(tmp_path, "control:\n  endpoint: ipc://%s/c.sock\n" % tmp_path)[0] == 0
    # An allow-list needs the daemon's own key.
    rc, err, cfg = check_config(tmp_path, "output:\n  curve_allow: %s\n" % allow)
    assert rc == 2 and err.startswith("%s:2:16: A 'curve_allow' list needs the daemon's own key" % cfg), err
    bad = tmp_path / "bad"
    cases = [
        ("", "No key in the allow-list"),
        ("# only a comment\n\n", "No key in the allow-list"),
        ("short\n", "bad:1: Not a Z85 key (short)"),
        ("x" * 39 + "\n", "Not a Z85 key"),
        ("~" * 40 + "\n", "Not a Z85 key"),  # '~' is not in the Z85 alphabet
        ("y" * 5000 + "\n", "Line too long"),
        (allow.read_text() + "garbage line\n", "bad:3: Not a Z85 key"),
        ("\x00" * 40 + "\n", "Not a Z85 key"),
    ]
    for text, want in cases:
        bad.write_text(text)
        rc, err, cfg = check_config(tmp_path, "curve:\n  server_key: %s\noutput:\n  curve_allow: %s\n" % (srv, bad))
        assert rc == 2 and "Invalid 'output.curve_allow' value: " in err and want in err, (text[:50], err)
    # Duplicated keys are fine (kept once); a missing file is an error.
    bad.write_text(allow.read_text() * 3)
    assert check_config(tmp_path, "curve:\n  server_key: %s\noutput:\n  curve_allow: %s\n" % (srv, bad))[0] == 0
    rc, err, _ = check_config(tmp_path, "curve:\n  server_key: %s\noutput:\n  curve_allow: %s/none\n" % (srv, tmp_path))
    assert rc == 2 and "Cannot open: No such file or directory" in err, err
    # A list others may write lets anyone in who writes their key there.
    for mode in (0o666, 0o646, 0o664):
        os.chmod(bad, mode)
        rc, err, cfg = check_config(tmp_path, "curve:\n  server_key: %s\noutput:\n  curve_allow: %s\n" % (srv, bad))
        assert rc == 2 and err.startswith("%s:4:16: Invalid 'output.curve_allow' value: " % cfg), err
        assert "writable by others (mode %03o); chmod go-w it" % mode in err, err
    os.chmod(bad, 0o644)
    assert check_config(tmp_path, "curve:\n  server_key: %s\noutput:\n  curve_allow: %s\n" % (srv, bad))[0] == 0
    # The server key: private, well-formed, matching its public line.
    os.chmod(srv, 0o644)
    rc, err, _ = check_config(tmp_path, ok)
    assert rc == 2 and "readable by others (mode 644); chmod 600 it" in err, err
    os.chmod(srv, 0o600)
    lines = srv.read_text().splitlines()
    other = (tmp_path / "cli.key").read_text().splitlines()
    srv.write_text("\n".join([lines[0], lines[1], other[2]]) + "\n")
    rc, err, _ = check_config(tmp_path, ok)
    assert rc == 2 and "does not belong to the secret key" in err, err
    srv.write_text("")
    rc, err, _ = check_config(tmp_path, ok)
    assert rc == 2 and "No key in the file" in err, err
    # "" is the default: no CURVE.
    assert check_config(tmp_path, "curve:\n  server_key: ''\noutput:\n  curve_allow: ''\n")[0] == 0
    rc, err, _ = check_config(tmp_path, "curve:\n  bogus: 1\n")
    assert rc == 2 and "Unknown key 'curve.bogus'" in err, err


class Client:
    """A ZeroMQ client socket with CURVE keys (or none)."""

    def __init__(self, kind, endpoint, server_pub=None, key=None):
        self.ctx = zmq.Context()
        self.s = self.ctx.socket(kind)
        self.s.setsockopt(zmq.LINGER, 0)
        if key:
            pub, sec = key
            self.s.curve_serverkey = server_pub.encode()
            self.s.curve_publickey = pub.encode()
            self.s.curve_secretkey = sec.encode()
        if kind == zmq.SUB:
            self.s.setsockopt(zmq.SUBSCRIBE, b"")
        self.s.connect(endpoint)

    def close(self):
        self.s.close()
        self.ctx.term()


def pair(d, name):
    pub = keygen(d, name)
    sec = [l for l in (d / (name + ".key")).read_text().splitlines() if l and not l.startswith("#")][0]
    return pub, sec


def curve_daemon(tmp_path):
    """A daemon whose ingest (PULL), output (PUB) and control endpoints are
    CURVE on 127.0.0.1, allowing the key "good" only; running and answering
    `ctl ping` with that key. Returns (daemon, keys dir, server public key,
    good pair, evil pair, (ing, out, ctl), the CLI's key options)."""
    k = tmp_path / "keys"
    k.mkdir()
    srv_pub = keygen(k, "server")
    good, evil = pair(k, "good"), pair(k, "evil")
    (k / "allow").write_text("# who may talk to us\n%s\n" % good[0])
    d = Daemon(tmp_path)
    ing, out, ctl = ("tcp://127.0.0.1:%d" % free_port() for _ in range(3))
    d.cfg["curve"] = {"server_key": str(k / "server.key")}
    d.cfg["input"]["endpoints"] = [{"type": "pull", "endpoint": ing, "bind": True, "curve_allow": str(k / "allow")}]
    d.cfg["output"] = {"endpoint": out, "bind": True, "curve_allow": str(k / "allow")}
    d.cfg["control"] = {"endpoint": ctl, "curve_allow": str(k / "allow")}
    d.ctl_ep = ctl
    d.write_config()
    # Start it; Daemon.start pings without keys, which CURVE refuses: wait on the log.
    d.log = open(str(d.dir / "daemon.log"), "ab")
    d.proc = subprocess.Popen([BINARY, "-c", d.cfg_path], stdout=d.log, stderr=d.log, cwd=str(d.dir))
    keys = ["--curve-key", str(k / "good.key"), "--curve-server-key", str(k / "server.pub")]
    deadline = time.time() + 20 * SLOW
    while time.time() < deadline:
        p = subprocess.run([CLI, "ctl", "-e", ctl, "-t", "500"] + keys + ["ping"], capture_output=True, text=True)
        if p.returncode == 0:
            break
        assert d.proc.poll() is None, d.logtext()
    assert p.returncode == 0, p.stderr + d.logtext()
    return d, k, srv_pub, good, evil, (ing, out, ctl), keys


def test_only_allowed_keys_get_through(tmp_path):
    d, k, srv_pub, good, evil, (ing, out, ctl), keys = curve_daemon(tmp_path)
    bad, subs_bad, reqs_bad, sub_good = [], [], [], None
    try:
        # Clients without an allowed key: a wrong key and no key at all.
        bad = [Client(zmq.PUSH, ing, srv_pub, evil), Client(zmq.PUSH, ing)]
        subs_bad = [Client(zmq.SUB, out, srv_pub, evil), Client(zmq.SUB, out)]
        reqs_bad = [Client(zmq.REQ, ctl, srv_pub, evil), Client(zmq.REQ, ctl)]
        sub_good = Client(zmq.SUB, out, srv_pub, good)
        time.sleep(0.5 * SLOW)
        for c in bad:
            for i in range(5):
                try:
                    c.s.send(pack({"s": "intruder", "t": 1700000000 + i, "v": 1.0}), zmq.NOBLOCK)
                except zmq.Again:
                    pass  # no peer would take it: nothing gets through either way
        for c in reqs_bad:
            try:
                c.s.send(pack({"cmd": "forget", "s": "good-series"}), zmq.NOBLOCK)
            except zmq.Again:
                pass  # REQ has no peer to queue for: the handshake never completed
        # The allowed client, through the CLI.
        csv = tmp_path / "good-series.csv"
        csv.write_text("timestamp,value\n" + "".join("%d,%d\n" % (1700000000 + 60 * i, i % 5) for i in range(20)))
        p = subprocess.run([CLI, "send", "--pull", "-e", ing, "-q"] + keys + [str(csv)], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        got = []
        deadline = time.time() + 20 * SLOW
        while time.time() < deadline and len(got) < 20:
            if sub_good.s.poll(200):
                got.append(sub_good.s.recv_multipart())
        assert len(got) == 20, len(got)
        assert all(m[0] == b"f.good-series" for m in got)
        # `tail` with the allowed key sees the next forecast too.
        tail = subprocess.Popen([CLI, "tail", "-e", out, "-n", "1", "-d", "20"] + keys, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(1.0 * SLOW)
        p = subprocess.run([CLI, "send", "--pull", "-e", ing, "-q", "-s", "good-series"] + keys + ["-"],
                           input="1700009999,3\n", capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        tout, terr = tail.communicate(timeout=30 * SLOW)
        assert tail.returncode == 0 and "good-series" in tout, (tout, terr)
        # Nothing of the others got through.
        for c in subs_bad:
            assert not c.s.poll(200), "a subscriber without an allowed key got a forecast"
        for c in reqs_bad:
            assert not c.s.poll(200), "a control client without an allowed key got a reply"
        p = subprocess.run([CLI, "ctl", "-j", "-e", ctl] + keys + ["stats"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        st = json.loads(p.stdout)
        assert st["series"] == 1 and st["decoded"] == 21, st
        cv = st["curve"]
        assert cv["enabled"] is True
        assert cv["rejected_input"][0] >= 1 and cv["rejected_output"] >= 1 and cv["rejected_control"] >= 1, cv
        assert cv["rejected"] >= 3, cv
        for c in bad + subs_bad + reqs_bad + [sub_good]:
            c.close()
        bad, subs_bad, reqs_bad, sub_good = [], [], [], None
        # The CLI's own key errors.
        p = subprocess.run([CLI, "ctl", "-e", ctl, "--curve-key", str(k / "good.key"), "ping"], capture_output=True,
                           text=True, timeout=20)
        assert p.returncode != 0 and "CURVE needs both" in p.stderr, p.stderr
        p = subprocess.run([CLI, "ctl", "-e", ctl, "--curve-key", str(k / "good.pub"), "--curve-server-key",
                            str(k / "server.pub"), "ping"], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and "readable by others" in p.stderr, p.stderr
        p = subprocess.run([CLI, "ctl", "-e", ctl, "--curve-key", str(k / "good.key"), "--curve-server-key",
                            str(k / "nothing.pub"), "ping"], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and "Cannot open" in p.stderr, p.stderr
    finally:
        # Open sockets would hang their context's term at garbage collection.
        for c in bad + subs_bad + reqs_bad + ([sub_good] if sub_good else []):
            c.close()
        d.proc.terminate()
        d.proc.wait(timeout=30)
        d.log.close()
    log = (d.dir / "daemon.log").read_text()
    assert "Refused" in log and "(CURVE)" in log, log


def curve_stats(ctl, keys):
    p = subprocess.run([CLI, "ctl", "-j", "-e", ctl] + keys + ["stats"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def garbage(endpoint, data, wait=True):
    """Raw bytes to a ZeroMQ TCP port, then close (at once, or when the
    daemon has closed): a scanner, a browser, a client gone half-way."""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        if not wait:
            return
        # Bounded: the daemon closes at once; a timeout ends it otherwise.
        try:
            while s.recv(4096):
                pass
        except (socket.timeout, ConnectionResetError):
            pass


def test_every_refused_client_is_counted(tmp_path):
    """Issue 22: a client without an allowed key is refused and counted on
    each CURVE endpoint, whether it speaks CURVE with a key not on the list
    (ZAP says no), speaks no CURVE at all, has the wrong server key, or is
    not ZeroMQ; each shows under its own reason in `ctl stats` and /metrics,
    nothing of theirs gets through, and the allowed client still works."""
    d, k, srv_pub, good, evil, eps, keys = curve_daemon(tmp_path)
    ing, out, ctl = eps
    wrong_srv = evil[0]  # a valid key, but not the daemon's
    clients = []
    try:
        def counts(st, kind):
            [e] = [e for e in st["curve"]["endpoints"] if e["socket"] == kind]
            return e

        st = curve_stats(ctl, keys)
        assert [e["socket"] for e in st["curve"]["endpoints"]] == ["input", "output", "control"], st["curve"]
        assert [e["endpoint"] for e in st["curve"]["endpoints"]] == [ing, out, ctl]
        decoded = st["decoded"]
        # Each attack and the reasons it may be counted under: a client
        # without CURVE sees the daemon's greeting and may hang up before the
        # daemon has read its own ("no_detail" then, not "mechanism").
        attacks = [(("auth",), lambda kind, ep: Client(kind, ep, srv_pub, evil)),
                   (("mechanism", "no_detail"), lambda kind, ep: Client(kind, ep)),
                   (("cryptographic",), lambda kind, ep: Client(kind, ep, wrong_srv, good)),
                   (("closed",), lambda kind, ep: garbage(ep, b"GET /metrics HTTP/1.0\r\n\r\n")),
                   (("closed",), lambda kind, ep: garbage(ep, bytes(range(256)) * 64)),
                   # A ZMTP 2.0 greeting: libzmq refuses 1.0 and 2.0 peers when ZAP is on.
                   (("closed",), lambda kind, ep: garbage(ep, b"\xff" + b"\x00" * 8 + b"\x7f\x01\x08")),
                   # Half a greeting, then hang up: the handshake fails half-way.
                   (("no_detail",), lambda kind, ep: garbage(ep, b"\xff" + b"\x00" * 8 + b"\x7f\x03", wait=False))]
        for kind, sock, ep in [("input", zmq.PUSH, ing), ("output", zmq.SUB, out), ("control", zmq.REQ, ctl)]:
            for reasons, attack in attacks:
                before = counts(curve_stats(ctl, keys), kind)
                c = attack(sock, ep)
                if c is not None:
                    clients.append(c)
                if c is not None and sock == zmq.PUSH:
                    for i in range(5):
                        try:
                            c.s.send(pack({"s": "intruder", "t": 1700000000 + i, "v": 1.0}), zmq.NOBLOCK)
                        except zmq.Again:
                            pass  # no peer takes it: nothing gets through either way
                if c is not None and sock == zmq.REQ:
                    try:
                        c.s.send(pack({"cmd": "forget", "s": "good-series"}), zmq.NOBLOCK)
                    except zmq.Again:
                        pass
                deadline = time.time() + 20 * SLOW
                while time.time() < deadline:
                    now = counts(curve_stats(ctl, keys), kind)
                    if any(now["reasons"][r] > before["reasons"][r] for r in reasons):
                        break
                    time.sleep(0.05)
                assert any(now["reasons"][r] > before["reasons"][r] for r in reasons), (kind, reasons, before, now)
                assert now["rejected"] > before["rejected"], (kind, reasons, before, now)
                # None of them passed (on control, our own `ctl stats` calls do).
                assert kind == "control" or now["accepted"] == before["accepted"], (kind, reasons, before, now)
                if c is not None:
                    if sock != zmq.PUSH:
                        assert not c.s.poll(100), (kind, reasons, "a client without an allowed key got a message")
                    clients.remove(c)
                    c.close()
                if reasons == ("closed",):
                    # One connection, one count, once it has closed.
                    assert now["reasons"]["closed"] == before["reasons"]["closed"] + 1, (kind, before, now)
        # The allowed client still works, and none of the intruders' samples arrived.
        sub_good = Client(zmq.SUB, out, srv_pub, good)
        time.sleep(0.5 * SLOW)
        csv = tmp_path / "good-series.csv"
        csv.write_text("timestamp,value\n" + "".join("%d,%d\n" % (1700000000 + 60 * i, i % 5) for i in range(10)))
        p = subprocess.run([CLI, "send", "--pull", "-e", ing, "-q"] + keys + [str(csv)], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        got = []
        deadline = time.time() + 20 * SLOW
        while time.time() < deadline and len(got) < 10:
            if sub_good.s.poll(200):
                got.append(sub_good.s.recv_multipart())
        sub_good.close()
        assert len(got) == 10 and all(m[0] == b"f.good-series" for m in got), got[:2]
        st = curve_stats(ctl, keys)
        assert st["decoded"] == decoded + 10 and st["series"] == 1, st
        cv = st["curve"]
        assert cv["rejected"] == sum(cv["reasons"].values()) + cv["rejected_unknown"], cv
        assert cv["rejected_input"] == [counts(st, "input")["rejected"]], cv
        assert cv["rejected_output"] == counts(st, "output")["rejected"], cv
        assert cv["rejected_control"] == counts(st, "control")["rejected"], cv
        # The same counts on /metrics, one series per endpoint and reason.
        with urllib.request.urlopen(d.http + "/metrics", timeout=10) as r:
            text = r.read().decode()
        for kind, ep in [("input", ing), ("output", out), ("control", ctl)]:
            for reason in ("mechanism", "cryptographic", "protocol", "auth", "no_detail", "closed"):
                line = 'rwkvcast_curve_rejected_total{socket="%s",endpoint="%s",reason="%s"} ' % (kind, ep, reason)
                assert line in text, (line, text[-3000:])
                n = int(text.split(line, 1)[1].split("\n", 1)[0])
                assert n >= 1 or reason in ("protocol", "mechanism"), (line, n)
            assert 'rwkvcast_curve_accepted_total{socket="%s",endpoint="%s"} ' % (kind, ep) in text
        assert "# TYPE rwkvcast_curve_rejected_total counter" in text
    finally:
        # Open sockets would hang their context's term at garbage collection.
        for c in clients:
            c.close()
        d.proc.terminate()
        d.proc.wait(timeout=30)
        d.log.close()
    log = (d.dir / "daemon.log").read_text()
    assert "wrong server key" in log and "closed before a handshake" in log, log


def test_refusals_counted_when_the_daemon_connects(tmp_path):
    """The daemon is the CURVE server on an input it connects from too: a
    producer that binds without CURVE gets nothing in, the refusals show on
    that input, and once the producer is fixed the daemon dials it again
    (libzmq 4.3 gives up on a peer after a protocol error in the handshake;
    the daemon redials a second later) and its samples arrive."""
    k = tmp_path / "keys"
    k.mkdir()
    srv_pub = keygen(k, "server")
    good = pair(k, "good")
    (k / "allow").write_text(good[0] + "\n")
    port = free_port()
    ep = "tcp://127.0.0.1:%d" % port
    ctl = "ipc://%s/ctl.sock" % tmp_path
    d = Daemon(tmp_path)
    d.cfg["curve"] = {"server_key": str(k / "server.key")}
    d.cfg["input"]["endpoints"] = [{"type": "pull", "endpoint": ep, "bind": False, "curve_allow": str(k / "allow")}]
    d.cfg["control"] = {"endpoint": ctl}
    d.ctl_ep = ctl
    d.write_config()
    producers = []
    d.log = open(str(d.dir / "daemon.log"), "ab")
    d.proc = subprocess.Popen([BINARY, "-c", d.cfg_path], stdout=d.log, stderr=d.log, cwd=str(d.dir))
    try:
        # A plain producer bound where the daemon connects: the daemon
        # retries it (every 100 ms by default) and refuses it each time.
        ctx = zmq.Context()
        plain = ctx.socket(zmq.PUSH)
        plain.setsockopt(zmq.LINGER, 0)
        plain.bind(ep)
        producers.append((ctx, plain))
        for i in range(3):
            try:
                plain.send(pack({"s": "plain", "t": 1700000000 + i, "v": 1.0}), zmq.NOBLOCK)
            except zmq.Again:
                pass  # no peer ever completes the handshake
        deadline = time.time() + 20 * SLOW
        st = None
        while time.time() < deadline:
            p = subprocess.run([CLI, "ctl", "-j", "-e", ctl, "-t", "500", "stats"], capture_output=True, text=True,
                               timeout=20)
            if p.returncode == 0:
                st = json.loads(p.stdout)
                if st["curve"]["rejected_input"][0] >= 2:  # refused, dialled again, refused
                    break
            assert d.proc.poll() is None, d.logtext()
            time.sleep(0.05)
        assert st and st["curve"]["rejected_input"][0] >= 2, st
        [e] = st["curve"]["endpoints"]
        assert e["socket"] == "input" and e["endpoint"] == ep and e["accepted"] == 0, e
        assert e["reasons"]["mechanism"] + e["reasons"]["no_detail"] == e["rejected"], e
        assert st["decoded"] == 0 and st["series"] == 0, st
        # The producer, fixed: it binds again with CURVE and the daemon's key.
        plain.close()
        good_p = ctx.socket(zmq.PUSH)
        good_p.setsockopt(zmq.LINGER, 0)
        good_p.curve_serverkey = srv_pub.encode()
        good_p.curve_publickey = good[0].encode()
        good_p.curve_secretkey = good[1].encode()
        producers[0] = (ctx, good_p)
        deadline = time.time() + 10 * SLOW
        while True:  # the closed socket lets go of the port asynchronously
            try:
                good_p.bind(ep)
                break
            except zmq.ZMQError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        sent, deadline = 0, time.time() + 20 * SLOW
        while time.time() < deadline:
            while sent < 3:
                try:
                    good_p.send(pack({"s": "fixed", "t": 1700000000 + sent, "v": 1.0}), zmq.NOBLOCK)
                    sent += 1
                except zmq.Again:
                    break  # the daemon has not dialled in yet
            p = subprocess.run([CLI, "ctl", "-j", "-e", ctl, "-t", "500", "stats"], capture_output=True, text=True,
                               timeout=20)
            st = json.loads(p.stdout)
            if st["decoded"] == 3:
                break
            time.sleep(0.1)
        assert st["decoded"] == 3 and st["series"] == 1, st
        assert st["curve"]["endpoints"][0]["accepted"] >= 1, st["curve"]
    finally:
        for ctx, s in producers:
            s.close()
            ctx.term()
        d.proc.terminate()
        d.proc.wait(timeout=30)
        d.log.close()
