# test_mqtt.py: the MQTT connector end to end against Debian's mosquitto
# broker on 127.0.0.1 (a free port, its own config and persistence file in
# the test's temp dir), with mosquitto_pub / mosquitto_sub as the clients.
# Covers: every payload form (bare number, JSON, the wire msgpack), topic
# -> series mapping, the MQTT output (forecasts, retained levels), bad
# input of every kind, and a broker restart with QoS 1 that loses nothing
# the broker kept. Every wait is bounded in time.
#
# SPDX-License-Identifier: MIT
import json
import math
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

import msgpack
import pytest

from conftest import SLOW, free_port, pack

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PUB = shutil.which("mosquitto_pub")
SUB = shutil.which("mosquitto_sub")


def built_with_mqtt():
    from conftest import BINARY
    try:
        out = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=20).stdout
    except OSError:
        return False
    return "MQTT yes" in out


pytestmark = pytest.mark.skipif(not (os.path.exists(MOSQUITTO) and PUB and SUB and built_with_mqtt()),
                                reason="mosquitto and mosquitto-clients not installed, or rwkvcastd built "
                                       "without libmosquitto (make deps)")


class Broker:
    """One mosquitto process on a free loopback port, restartable on the same port and store."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "broker"
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = "mqtt://127.0.0.1:%d" % self.port
        self.conf = str(self.dir / "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\n" % self.port)
            f.write("allow_anonymous true\n")
            # Run as root, mosquitto would switch to its own user, which
            # cannot write the test's temp dir (log, persistence file).
            f.write("user %s\n" % pwd.getpwuid(os.getuid()).pw_name)
            f.write("persistence true\n")
            f.write("persistence_location %s/\n" % self.dir)
            f.write("max_queued_messages 100000\n")
            f.write("log_dest file %s/mosquitto.log\n" % self.dir)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            assert self.proc.poll() is None, "mosquitto exited: " + self.logtext()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not listen: " + self.logtext())

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None

    def logtext(self):
        try:
            with open(str(self.dir / "mosquitto.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def pub(self, topic, payload, qos=0, retain=False):
        """One message; payload bytes go through stdin (-s), so any byte is fine."""
        data = payload if isinstance(payload, bytes) else payload.encode()
        # -n: a zero-length message (mosquitto_pub -s refuses empty stdin).
        args = [PUB, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-q", str(qos), "-s" if data else "-n"]
        if retain:
            args.append("-r")
        subprocess.run(args, input=data, check=True, timeout=10 * SLOW)

    def pub_lines(self, topic, lines, qos=1):
        """One message per line (-l), in one connection."""
        args = [PUB, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-q", str(qos), "-l"]
        subprocess.run(args, input=("\n".join(lines) + "\n").encode(), check=True, timeout=60 * SLOW)

    def sub(self, topic, count, timeout=30):
        """A mosquitto_sub process printing 'topic payload' lines; read with .communicate()."""
        return subprocess.Popen([SUB, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-v",
                                 "-C", str(count), "-W", str(int(timeout * SLOW))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


def mqtt_daemon(daemon_factory, broker, topics=("sensors/#",), **mqtt):
    cfg = {"client_id": "rwkvcastd-test-%d" % os.getpid(), "strip_prefix": "sensors/", "separator": ".",
           "reconnect_min": 1, "reconnect_max": 2}
    cfg.update(mqtt)
    d = daemon_factory(mqtt=cfg)
    d.cfg["input"]["endpoints"].append({"type": "mqtt", "endpoint": broker.url, "topics": list(topics)})
    return d


def wait_connected(d, n=1):
    # Subscribed, not just connected: a message published before the broker
    # has the subscription is not for us.
    return d.wait_stats(lambda s: s["mqtt"]["subscribed"] >= n)


def test_payload_forms_topic_mapping_and_mqtt_output(daemon_factory, broker):
    broker.start()
    d = mqtt_daemon(daemon_factory, broker, output={"endpoint": broker.url, "prefix": "fc/"}).start()
    st = wait_connected(d)
    assert st["mqtt"]["inputs"] == 1
    d.wait_stats(lambda s: s["mqtt"]["output_connected"])
    out = broker.sub("fc/#", 6)
    time.sleep(0.3 * SLOW)  # mosquitto_sub subscribed
    t0 = int(time.time()) - 1000
    broker.pub("sensors/room/1", "21.5")                                    # bare number, receive time
    broker.pub("sensors/json", json.dumps({"v": 3.25, "t": t0, "unit": {"a": [1, 2]}}))
    broker.pub("sensors/json", json.dumps({"value": None, "time": t0 + 1}))  # missing
    broker.pub("sensors/ignored", pack({"s": "from-msgpack", "t": t0, "v": 7.0}))
    broker.pub("sensors/ignored", pack([{"s": "from-msgpack", "t": t0 + 1, "v": 8.0},
                                        {"s": "from-msgpack", "t": t0 + 2, "v": 9.0}]))
    st = d.wait_stats(lambda s: s["decoded"] >= 6)
    assert st["decoded"] == 6 and st["dropped_total"] == 0 and st["missing"] == 1
    ids = set(d.ctl("series")["series"])
    assert ids == {"room.1", "json", "from-msgpack"}
    g = d.ctl("get", s="json")
    assert g["ok"] and g["last_t"] == t0 + 1
    g = d.ctl("get", s="from-msgpack")
    assert g["last_t"] == t0 + 2
    # The MQTT output: JSON forecasts under the prefix, and the retained level
    # topics appear only on a level change (none here).
    o, _ = out.communicate(timeout=30 * SLOW)
    lines = o.decode().splitlines()
    assert len(lines) == 6, lines
    topics = sorted(l.split(" ", 1)[0] for l in lines)
    assert topics == ["fc/forecast/from-msgpack"] * 3 + ["fc/forecast/json"] * 2 + ["fc/forecast/room.1"]
    for l in lines:
        m = json.loads(l.split(" ", 1)[1])
        assert set(m) == {"s", "t", "v", "dt", "h", "yhat", "lo", "hi", "score", "level"}
        assert len(m["yhat"]) == len(m["h"]) == len(m["lo"]) == len(m["hi"])
    st = d.stats()
    assert st["mqtt"]["published"] == 6
    assert d.stop() == 0


def test_retained_level_and_msgpack_output(daemon_factory, broker):
    broker.start()
    d = mqtt_daemon(daemon_factory, broker, output={"endpoint": broker.url, "prefix": "x/", "format": "msgpack",
                                                   "qos": 1},
                    ).start()
    wait_connected(d)
    d.wait_stats(lambda s: s["mqtt"]["output_connected"])
    t0 = int(time.time()) - 5000
    lines = [json.dumps({"t": t0 + i, "v": 10.0 + (i % 3) * 0.1}) for i in range(120)]
    lines += [json.dumps({"t": t0 + 120 + i, "v": 1e6}) for i in range(5)]  # a jump far off the forecast
    broker.pub_lines("sensors/alarm", lines)
    st = d.wait_stats(lambda s: s["decoded"] >= 125)
    assert st["alerts"] >= 1, st
    # A client that connects afterwards still sees the series' current level:
    # it is retained (the alert may have cleared again by now).
    p = broker.sub("x/level/#", 1, timeout=10)
    o, _ = p.communicate(timeout=20 * SLOW)
    topic, level = o.decode().split()
    g = d.ctl("get", s="alarm")
    assert topic == "x/level/alarm" and level == str(g["level"]), (o, g)
    p = broker.sub("x/forecast/alarm", 1, timeout=10)
    time.sleep(0.3 * SLOW)  # mosquitto_sub subscribed
    broker.pub("sensors/alarm", json.dumps({"t": t0 + 200, "v": 10.0}))
    o, _ = p.communicate(timeout=20 * SLOW)
    # "topic payload\n"; the map ends in its level (0..2), never a newline byte.
    m = msgpack.unpackb(o.split(b" ", 1)[1][:-1], raw=False)
    assert m["s"] == "alarm" and m["t"] == t0 + 200
    assert d.stop() == 0


def test_bad_mqtt_input_is_counted_never_fatal(daemon_factory, broker):
    broker.start()
    d = mqtt_daemon(daemon_factory, broker, topics=("sensors/#", "other/#"))
    d.cfg["input"]["max_msg_size"] = 4096
    d.start()
    wait_connected(d)
    t0 = int(time.time()) - 1000
    broker.pub("sensors/good", json.dumps({"t": t0, "v": 1.0}))
    d.wait_stats(lambda s: s["decoded"] >= 1)
    bad = [
        ("payload", "sensors/good", b"abc"),
        ("payload", "sensors/good", b""),
        ("payload", "sensors/good", b"{"),
        ("payload", "sensors/good", b'{"v": 1,}'),
        ("payload", "sensors/good", b"1 2"),
        ("payload", "sensors/good", b"0x10"),
        ("payload", "sensors/good", b"[" * 3000),                     # deep nesting, not an object
        ("payload", "sensors/good", b'{"x": ' + b"[" * 1500 + b"]" * 1500 + b', "v": 1}'),
        ("payload", "sensors/good", b'{"v": 1} trailing'),
        ("payload", "sensors/good", b"\xff\xfe\x00garbage"),
        ("type", "sensors/good", b'{"v": "high"}'),
        ("type", "sensors/good", b'{"v": 1, "t": [1]}'),
        ("missing_key", "sensors/good", b"{}"),
        ("missing_key", "sensors/good", b'{"t": 1700000000}'),
        ("inf", "sensors/good", b"1e999"),
        ("inf", "sensors/good", b"-3.5e38"),
        ("inf", "sensors/good", b'{"v": 1e400}'),
        ("bad_id", "other/x", b"1.0"),                               # topic without strip_prefix
        ("bad_id", "sensors/" + "x" * 300, b"1.0"),                  # id longer than 255 bytes
        ("bad_id", "sensors/", b"1.0"),                              # empty id
        ("old_timestamp", "sensors/good", json.dumps({"t": t0, "v": 2.0}).encode()),   # duplicate
        ("old_timestamp", "sensors/good", json.dumps({"t": t0 - 5, "v": 2.0}).encode()),
        ("time_range", "sensors/good", json.dumps({"t": 1e15, "v": 2.0}).encode()),
        ("oversize", "sensors/good", b"1" * 10000),                  # above input.max_msg_size
        ("msgpack", "sensors/good", b"\x83\xa1s"),                   # truncated wire msgpack
    ]
    want = {}
    for reason, topic, payload in bad:
        broker.pub(topic, payload)
        want[reason] = want.get(reason, 0) + 1
    broker.pub("sensors/good", json.dumps({"t": t0 + 1, "v": 3.0}))
    st = d.wait_stats(lambda s: s["dropped_total"] >= len(bad) and s["decoded"] >= 2)
    for reason, n in want.items():
        assert st["dropped"][reason] == n, (reason, str(sorted(st["dropped"].items())))
    assert st["dropped_total"] == len(bad) and st["decoded"] == 2
    assert d.ctl("get", s="good")["last_t"] == t0 + 1
    assert "Dropped input" in d.logtext()
    assert d.stop() == 0


def test_broker_restart_qos1_loses_nothing_the_broker_kept(daemon_factory, broker):
    # The daemon starts first: it keeps retrying until the broker is up.
    d = mqtt_daemon(daemon_factory, broker, qos=1, clean_session=False).start()
    time.sleep(0.5)
    assert d.stats()["mqtt"]["connected"] == 0
    broker.start()
    wait_connected(d)
    t0 = int(time.time()) - 100000
    n_a, n_b, n_c = 200, 300, 100
    broker.pub_lines("sensors/plant/a", [json.dumps({"t": t0 + i, "v": float(i % 7)}) for i in range(n_a)])
    d.wait_stats(lambda s: s["decoded"] >= n_a)
    # The daemon goes away; its persistent session (subscription, QoS 1)
    # stays, so the broker queues the next batch for it, and keeps it over
    # its own restart (persistence).
    assert d.stop() == 0
    broker.pub_lines("sensors/plant/b", [json.dumps({"t": t0 + i, "v": float(i % 5)}) for i in range(n_b)])
    broker.stop()
    broker.start()
    d.start()
    st = d.wait_stats(lambda s: s["decoded"] >= n_b, timeout=60)
    assert d.ctl("get", s="plant.b")["last_t"] == t0 + n_b - 1
    # A broker restart under a running daemon: the loop does not wait for
    # the broker (the control socket answers while it is down), the
    # connection comes back with the backoff, and the session goes on.
    broker.stop()
    d.wait_stats(lambda s: s["mqtt"]["connected"] == 0, timeout=20)
    assert d.ctl("ping", timeout=2)["ok"]
    broker.start()
    wait_connected(d)
    broker.pub_lines("sensors/plant/c", [json.dumps({"t": t0 + i, "v": float(i % 3)}) for i in range(n_c)])
    st = d.wait_stats(lambda s: s["decoded"] >= n_b + n_c, timeout=60)
    # Every sample exactly once (the counters restarted with the daemon). A
    # message the broker delivers again after its restart (mosquitto may
    # resend what its store held) carries its t and is dropped as old.
    assert st["decoded"] == n_b + n_c, st
    assert st["dropped_total"] == st["dropped"]["old_timestamp"], st["dropped"]
    assert d.ctl("get", s="plant.c")["last_t"] == t0 + n_c - 1
    assert st["mqtt"]["disconnects"] >= 1 and st["mqtt"]["connects"] >= 2
    # Messages in flight when the broker goes down: the daemon is frozen, so
    # the broker has sent part of the next batch (unacknowledged) and queued
    # the rest when it stops; after its restart it sends them again.
    n_d = 300
    d.proc.send_signal(signal.SIGSTOP)
    try:
        broker.pub_lines("sensors/plant/d", [json.dumps({"t": t0 + i, "v": float(i % 4)}) for i in range(n_d)])
        broker.stop()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    broker.start()
    st = d.wait_stats(lambda s: s["decoded"] >= n_b + n_c + n_d, timeout=60)
    assert st["decoded"] == n_b + n_c + n_d, st
    assert st["dropped_total"] == st["dropped"]["old_timestamp"], st["dropped"]
    assert d.ctl("get", s="plant.d")["last_t"] == t0 + n_d - 1
    assert d.stop() == 0


def test_config_errors_name_the_key(tmp_path):
    from conftest import BINARY
    cases = [
        ("input:\n  endpoints:\n    - {type: mqtt, endpoint: 'tcp://127.0.0.1:1'}\n",
         "Invalid 'input.endpoints[0].endpoint' value (tcp://127.0.0.1:1): 'type: mqtt' needs"),
        ("input:\n  endpoints:\n    - {type: sub, endpoint: 'mqtt://h'}\n",
         "a broker URL needs 'type: mqtt'"),
        ("input:\n  endpoints:\n    - {type: mqtt, endpoint: 'mqtt://h', topics: ['a/#/b']}\n",
         "Invalid 'input.endpoints[0].topics' entry (a/#/b)"),
        ("mqtt:\n  qos: 3\n", "Invalid 'mqtt.qos' value (3)"),
        ("mqtt:\n  output: {prefix: 'a/+/'}\n", "Invalid 'mqtt.output.prefix' value (a/+/)"),
        ("mqtt:\n  tls_cert: /x.pem\n", "Invalid 'mqtt' settings: 'tls_cert' and 'tls_key' go together."),
        ("mqtt:\n  separator: '::'\n", "Invalid 'mqtt.separator' value (::)"),
    ]
    for i, (text, msg) in enumerate(cases):
        p = tmp_path / ("c%d.yaml" % i)
        p.write_text(text)
        r = subprocess.run([BINARY, "-c", str(p), "--check-config"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (text, r.stderr)
        assert str(p) + ":" in r.stderr and msg in r.stderr, (msg, r.stderr)


def test_alert_events_on_mqtt_explain_themselves(daemon_factory, broker):
    # An alert event on MQTT is the same event as on the PUB socket: the
    # forecast map plus kind, since, expected and its band; the silence alert
    # (raised by the daemon's timer, not by a sample) goes out too, and so
    # does its clearing, each with the retained level.
    broker.start()
    d = mqtt_daemon(daemon_factory, broker, output={"endpoint": broker.url, "prefix": "x/"})
    d.cfg["anomaly"] = {"warmup": 5, "silence": 5}
    d.start()
    wait_connected(d)
    d.wait_stats(lambda s: s["mqtt"]["output_connected"])
    alerts = broker.sub("x/alert/quiet", 2, timeout=30)
    time.sleep(0.3 * SLOW)  # mosquitto_sub subscribed
    period = 0.2
    t0 = time.time()
    for i in range(15):
        broker.pub("sensors/quiet", json.dumps({"t": t0 + period * i, "v": 10.0 + math.sin(i / 3.0)}))
        left = t0 + period * (i + 1) - time.time()
        if left > 0:
            time.sleep(left)
    last = t0 + period * 14
    # Silent now: the timer raises the event; then one sample clears it.
    d.wait_stats(lambda s: s["silence"]["raised"] >= 1, timeout=10)
    broker.pub("sensors/quiet", json.dumps({"t": time.time(), "v": 10.0}))
    o, _ = alerts.communicate(timeout=40 * SLOW)
    events = [json.loads(l.split(" ", 1)[1]) for l in o.decode().splitlines()]
    assert len(events) == 2, o
    raised, cleared = events
    keys = {"s", "t", "v", "dt", "h", "yhat", "lo", "hi", "score", "level",
            "kind", "since", "expected", "expected_lo", "expected_hi"}
    assert set(raised) == keys and set(cleared) == keys, events
    assert raised["kind"] == "silence" and raised["level"] == 2 and raised["v"] is None, raised
    assert abs(raised["since"] - last) < 1e-3, (raised["since"], last)
    assert raised["expected_lo"] <= raised["expected"] <= raised["expected_hi"], raised
    assert cleared["kind"] == "silence" and cleared["v"] == 10.0, cleared
    # The retained level is the last event's.
    p = broker.sub("x/level/quiet", 1, timeout=10)
    o, _ = p.communicate(timeout=20 * SLOW)
    assert o.decode().split() == ["x/level/quiet", str(cleared["level"])], o
    assert d.stop() == 0
