#!/usr/bin/python3
"""anomaly_oracle.py: how much recall of 4-SD anomalies any per-series threshold
could buy at a given false-alert rate, on bench/anomaly_real's real backgrounds.

For each live-metrics background (the series where false alerts are counted) and
each detector's score, it picks the clairvoyant threshold: the lowest one whose
rises on the *uninjected* copy's second half stay within BUDGET per day. It then
counts how many of the injected copy's 4-SD spikes, dips and level shifts rise
inside their window at that threshold. No detector can know these thresholds in
advance, so the recall it reports bounds what a score of that kind can reach at
that false-alert rate (rwkvcast's levels add hysteresis, so its own recall at its
default levels can differ a little either way).

Usage: ANR_DUMP=DIR build/bench/anomaly_real   (writes DIR/<k>.csv)
       /usr/bin/python3 bench/anomaly_oracle.py DIR [BUDGET_PER_DAY]
Needs numpy (Debian python3-numpy).
"""
import glob
import sys

import numpy as np

DETECTORS = {4: "rwkvcast score", 5: "rolling z-score", 6: "seasonal-naive z-score"}
KINDS = ("spike", "dip", "level shift")  # kinds 0..2 of anomaly_real.c


def load(d):
    out = {}
    for f in glob.glob(d + "/*.csv"):
        hdr = []
        with open(f) as fh:
            for line in fh:
                if not line.startswith("#"):
                    break
                hdr.append(line[2:].strip())
        name, half, inj, live, dt = hdr[0].split("|")
        wins = [tuple(float(x) for x in h.split()[1:]) for h in hdr[1:]]
        a = np.loadtxt(f, delimiter=",", comments="#")
        out[name] = dict(half=int(half), inj=int(inj), live=int(live), w=wins, a=a)
    return out


def rises(ok):
    return int(np.sum(ok[1:] & ~ok[:-1]))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    series = load(sys.argv[1])
    if not series:
        sys.exit("No dump files in %s: run ANR_DUMP=%s build/bench/anomaly_real first." % (sys.argv[1], sys.argv[1]))
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    clean = sorted(n for n, s in series.items() if not s["inj"] and s["live"])
    print("Clairvoyant per-series thresholds at %g false alerts per series per day, %d live-metrics series" % (budget, len(clean)))
    print()
    print("| score | 4-SD spike/dip/shift recall, tuning half | held-out half | both |")
    print("|---|---|---|---|")
    for col, label in DETECTORS.items():
        hit = {0: 0, 1: 0}
        tot = {0: 0, 1: 0}
        for n in clean:
            b, j = series[n], series[n + "+inj"]
            a = b["a"]
            h = len(a) // 2
            sc = np.where(a[h:, 3] > 0, a[h:, col], 0.0)
            days = (a[-1, 1] - a[h, 1]) / 86400.0
            thr = sc.max() + 1e-9
            for q in np.unique(np.quantile(sc, np.linspace(0.5, 1.0, 400))):
                if rises(sc >= q) <= budget * days:
                    thr = q
                    break
            ja = j["a"]
            jsc = np.where(ja[:, 3] > 0, ja[:, col], 0.0)
            for (s0, e0, _onset, kind, size) in j["w"]:
                if size != 4 or int(kind) >= len(KINDS):
                    continue
                s0, e0 = int(s0), int(e0)
                up = (jsc[s0:e0 + 1] >= thr) & (jsc[s0 - 1:e0] < thr)
                tot[b["half"]] += 1
                hit[b["half"]] += bool(np.any(up))
        print("| %s | %d/%d = %.2f | %d/%d = %.2f | %.2f |" % (
            label, hit[0], tot[0], hit[0] / max(tot[0], 1), hit[1], tot[1], hit[1] / max(tot[1], 1),
            (hit[0] + hit[1]) / max(tot[0] + tot[1], 1)))


if __name__ == "__main__":
    main()
