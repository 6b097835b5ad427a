#!/usr/bin/env python3
"""Markdown tables of the flow-MCMC benchmark (results.jsonl from driver.py):
one row per (target, method), the seeds side by side.

Per seed: the weight of mode 0 (two modes: the heavy one, exact 2/3) with its
Γ-method error, its deviation in σ, and the TV distance of all weights to the
exact ones; then the mean τ_int of the mode-0 indicator, acceptance and wall
time over the seeds."""
import json
import os
import sys
from collections import defaultdict

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results.jsonl")
runs = defaultdict(list)
order = []
for line in open(path):
    r = json.loads(line)
    key = (r["target"], r["method"], r.get("init_sigma", 3.0), r.get("train_steps", 25), r.get("walkers", 256))
    if key not in runs:
        order.append(key)
    runs[key].append(r)

print("| target | sampler | σ_init, Adam steps/round, walkers | per seed: ŵ₀ ± σ (dev/σ; TV) | τ_int(mode) | acceptance | seconds |")
print("|---|---|---|---|---|---|---|")
for key in order:
    t, m, s, ts, nw = key
    cells = []
    taus, accs, secs = [], [], []
    for r in sorted(runs[key], key=lambda r: r["seed"]):
        w, e, x = r["weights"], r["errors"], r["exact"]
        tv = 0.5 * sum(abs(a - b) for a, b in zip(w, x))
        dev = (w[0] - x[0]) / e[0] if e[0] > 0 else float("inf")
        stuck = " ⚠stuck" if r.get("stuck_chains") else ""
        cells.append(f"{w[0]:.3f} ± {e[0]:.3f} ({dev:+.1f}; {tv:.3f}){stuck}")
        taus.append(r["tau_mode"][0])
        accs.append(r.get("acceptance", float("nan")))
        secs.append(r["seconds"])
    n = len(cells)
    print(f"| {t} | {m} | {s:g}, {ts}, {nw} | {' · '.join(cells)} | {sum(taus)/n:.1f} | {sum(accs)/n:.3f} | {sum(secs)/n:.1f} |")
