#!/usr/bin/python3
# bench_connectors.py: ingest throughput of rwkvcastd through each of its
# inputs in one run (bench/RESULTS.md "Inputs: ZeroMQ, MQTT, Kafka"):
# N one-sample messages for S series pushed by build/bench/connector_load as
# fast as the transport takes them, into a fresh daemon per input (default
# model, 1 engine thread): ZeroMQ PULL (msgpack), MQTT through a local
# mosquitto at QoS 0 and QoS 1 (JSON), Kafka through the librdkafka mock
# cluster of the e2e tests (JSON, key = series). The rate is N over the time
# from the first message sent to the last sample decoded (ctl stats polled
# every 20 ms), so it includes the broker; the ratio is against ZeroMQ.
#
#   /usr/bin/python3 bench/bench_connectors.py [--build build] [-n 200000] [-s 1000]
#
# SPDX-License-Identifier: MIT
import argparse
import json
import os
import pwd
import select
import shutil
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


def ctl(ep, cmd):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    try:
        s.send(msgpack.packb({"cmd": cmd}))
        if not s.poll(5000):
            raise TimeoutError(cmd)
        return msgpack.unpackb(s.recv(), raw=False)
    finally:
        s.close()


def run_one(args, name, extra_input, extra_cfg, load_args, ready):
    d = tempfile.mkdtemp(prefix="rk_conn_")
    ctl_ep = "ipc://%s/ctl.sock" % d
    pull = "ipc://%s/in.sock" % d
    cfg = {"state_db": d + "/state.db", "checkpoint_interval": 30, "stats_interval": 0,
           "input": {"endpoints": [{"type": "pull", "endpoint": pull, "bind": True}]},
           "output": {"endpoint": "ipc://%s/out.sock" % d}, "control": {"endpoint": ctl_ep},
           "series": {"max": max(10000, args.series)}, "http": {"listen": ""}}
    model = os.path.join(ROOT, "model", "default.rwkv")
    if os.path.exists(model):
        cfg["model"] = model
    if extra_input:
        cfg["input"]["endpoints"].append(extra_input)
    cfg.update(extra_cfg)
    with open(d + "/c.yaml", "w") as f:
        json.dump(cfg, f)
    log = open(d + "/daemon.log", "wb")
    p = subprocess.Popen([os.path.join(args.build, "rwkvcastd"), "-c", d + "/c.yaml"], stdout=log, stderr=log, cwd=d)
    try:
        deadline = time.time() + 60
        while True:
            assert p.poll() is None, open(d + "/daemon.log").read()
            try:
                st = ctl(ctl_ep, "stats")
                if ready(st):
                    break
            except (TimeoutError, zmq.ZMQError):
                pass
            assert time.time() < deadline, name + ": daemon not ready"
            time.sleep(0.05)
        t_start = time.time()
        load = subprocess.Popen([os.path.join(args.build, "bench", "connector_load"), "-n", str(args.n),
                                 "-s", str(args.series)] + (load_args(pull)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while True:
            st = ctl(ctl_ep, "stats")
            if st["decoded"] + st["dropped_total"] >= args.n:
                break
            assert time.time() < deadline, name + ": stuck at %d" % st["decoded"]
            time.sleep(0.02)
        t_end = time.time()
        out, err = load.communicate(timeout=120)
        sent = json.loads(out.decode().strip().splitlines()[-1])
        return {"input": name, "samples": st["decoded"], "dropped": st["dropped_total"],
                "seconds": round(t_end - t_start, 3), "per_s": round(st["decoded"] / (t_end - t_start)),
                "send_s": sent["send_s"]}
    finally:
        p.terminate()
        p.wait(timeout=60)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("-s", "--series", type=int, default=1000)
    args = ap.parse_args()
    results = []
    results.append(run_one(args, "zeromq PULL, msgpack", None, {}, lambda pull: ["--zmq", pull],
                           lambda st: True))

    bdir = tempfile.mkdtemp(prefix="rk_mosq_")
    port = free_port()
    with open(bdir + "/m.conf", "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
                "user %s\n" % (port, pwd.getpwuid(os.getuid()).pw_name))
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", bdir + "/m.conf"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        for q in (0, 1):
            results.append(run_one(
                args, "mqtt QoS %d, JSON, via mosquitto" % q,
                {"type": "mqtt", "endpoint": "mqtt://127.0.0.1:%d" % port, "topics": ["bench/#"]},
                {"mqtt": {"qos": q, "strip_prefix": "bench/", "client_id": "bench-%d" % q, "clean_session": True}},
                lambda pull, q=q: ["--mqtt", "127.0.0.1:%d" % port, "--qos", str(q)],
                lambda st: st["mqtt"]["subscribed"] >= 1))
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(bdir, ignore_errors=True)

    mock = os.path.join(args.build, "tests", "kafka_mock")
    if os.path.exists(mock):
        k = subprocess.Popen([mock, "metrics:4", "rwkvcast-changelog:4"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        r, _, _ = select.select([k.stdout], [], [], 20)
        boot = k.stdout.readline().decode().split()[1]
        try:
            results.append(run_one(
                args, "kafka (mock cluster), JSON",
                {"type": "kafka", "endpoint": "kafka://" + boot, "topics": ["metrics"]},
                {"kafka": {"group_id": "bench", "session_timeout": 6}},
                lambda pull: ["--kafka", boot, "--topic", "metrics"],
                lambda st: st["kafka"]["partitions"] == 4))
        finally:
            k.stdin.close()
            k.wait(timeout=30)
    base = results[0]["per_s"]
    for r in results:
        r["ratio"] = round(r["per_s"] / base, 3)
        print(json.dumps(r))
    print("%-36s %10s %8s %9s %7s" % ("input", "samples/s", "ratio", "seconds", "drops"), file=sys.stderr)
    for r in results:
        print("%-36s %10d %8.3f %9.2f %7d" % (r["input"], r["per_s"], r["ratio"], r["seconds"], r["dropped"]),
              file=sys.stderr)


if __name__ == "__main__":
    main()
