#!/bin/sh
# demo.sh: `make demo`. Starts rwkvcastd on free loopback ports with its state
# in a temporary directory, feeds it `rwkvcast simulate` (synthetic sensors
# with injected anomalies, announced on stderr as "simulate: ... inject ...")
# and shows `rwkvcast tail` (forecasts, and alert events marked ">>>") for
# DEMO_SECONDS (default 30). Then, or on Ctrl-C, it stops every process it
# started and prints the daemon's stats. Works without a terminal too.
#
# Usage: BUILD=build DEMO_SECONDS=30 sh tools/demo.sh
# Also: DEMO_SENSORS (6), DEMO_SEED (the clock), DEMO_KINDS (anomaly kinds,
# default spike,shift,stuck,noise; dropout, the fifth, sends no samples, and
# rwkvcastd scores samples, so a run that drew only dropouts showed no alert
# at all). The sensors' season is
# 30 s, so the model meets a new part of it throughout the first 30 s and
# may warn before any injected anomaly: that is the scorer's honest surprise.
#
# SPDX-License-Identifier: MIT
set -u

BUILD=${BUILD:-build}
SECS=${DEMO_SECONDS:-30}
SENSORS=${DEMO_SENSORS:-6}
D="$BUILD/rwkvcastd"
C="$BUILD/rwkvcast"
for b in "$D" "$C"; do
    [ -x "$b" ] || { echo "demo: '$b' is missing; run 'make all' first." >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rwkvcast-demo.XXXXXX") || exit 1
dpid=""
tpid=""
spid=""

cleanup() {
    trap - EXIT INT TERM HUP
    for p in $spid $tpid; do kill "$p" 2>/dev/null; done
    if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then
        # SIGTERM lets the daemon write its final checkpoint; give it 10 s.
        kill -TERM "$dpid" 2>/dev/null
        i=0
        while kill -0 "$dpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$dpid" 2>/dev/null
    fi
    wait 2>/dev/null
    rm -rf "$tmp"
}
stats() {
    out=$("$C" ctl -e "$CTL" --timeout 2000 --json stats) || return
    printf '%s\n' "$out" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
c = s.get("checkpoint", {})
print(">>> rwkvcastd stats: %d samples in %d messages, %d dropped; %d series; "
      "%d forecasts published, %d alert events; %d checkpoints (last %d rows in %.3f s)"
      % (s["decoded"], s["received"], s["dropped_total"], s["series"], s["published"],
         s["alerts"], c.get("count", 0), c.get("last_rows", 0), c.get("last_duration", 0)))
' 2>/dev/null || printf '>>> rwkvcast ctl stats:\n%s\n' "$out"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, stopping"; [ -n "$dpid" ] && stats; cleanup; exit 130' INT TERM HUP

# Two free TCP ports on 127.0.0.1 (the kernel picks them; 7701/7702 may be taken).
ports=$(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' 2>/dev/null) || ports="7701 7702"
set -- $ports
IN="tcp://127.0.0.1:$1"
OUT="tcp://127.0.0.1:$2"
CTL="ipc://$tmp/control.sock"

model=""
[ -f model/default.rwkv ] && model="$(pwd)/model/default.rwkv"
cat > "$tmp/demo.yaml" <<EOF
# rwkvcastd configuration written by tools/demo.sh
log_level: notice
model: "$model"
state_db: $tmp/rwkvcast.db
checkpoint_interval: 10
stats_interval: 0
input:
  endpoints:
    - type: sub
      endpoint: $IN
      bind: true
output:
  endpoint: $OUT
  bind: true
control:
  endpoint: $CTL
anomaly:
  warmup: 40
EOF

echo ">>> rwkvcast demo: $SENSORS sensors at 10 Hz for $SECS s"
echo ">>> daemon: $D -c $tmp/demo.yaml (ingest $IN, output $OUT)"
# Its own session, so a Ctrl-C on the terminal reaches only this script,
# which then asks the daemon for its stats before stopping it.
setsid "$D" -c "$tmp/demo.yaml" 2> "$tmp/daemon.log" &
dpid=$!

# Ready when it answers ping (it binds its sockets before that).
i=0
until "$C" ctl -e "$CTL" --timeout 200 ping >/dev/null 2>&1; do
    i=$((i + 1))
    if ! kill -0 "$dpid" 2>/dev/null || [ $i -ge 50 ]; then
        echo "demo: rwkvcastd did not start; its log:" >&2
        cat "$tmp/daemon.log" >&2
        exit 1
    fi
    sleep 0.2
done
grep -E ' # ' "$tmp/daemon.log" | sed 's/^/>>> daemon warning: /'
echo ">>> forecasts: one line per sensor every 3 s; '>>>' lines are alert-level changes"
echo ">>> anomalies are injected from second $(( SECS / 3 > 10 ? 10 : SECS / 3 )) and announced as 'simulate: ... inject'"
echo

"$C" tail -e "$OUT" --throttle 3 --duration $((SECS + 2)) &
tpid=$!
# Anomalies start after a third of the run (at most 10 s): the daemon's scorer
# needs a warm-up before its scores mean anything.
warm=$((SECS / 3))
[ "$warm" -gt 10 ] && warm=10
"$C" simulate -e "$IN" -n "$SENSORS" --rate 10 --period 30 --warmup "$warm" \
    --anomaly-rate 0.04 --kinds "${DEMO_KINDS:-spike,shift,stuck,noise}" \
    --duration "$SECS" --seed "${DEMO_SEED:-$(date +%s)}" &
spid=$!
wait "$spid"
spid=""
sleep 1
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
tpid=""

echo
stats
echo ">>> done; stopping rwkvcastd"
cleanup
echo ">>> next: 'make test', or run it yourself: $D  and  $C --help"
