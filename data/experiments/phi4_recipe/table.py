#!/usr/bin/env python3
"""Tables of data/experiments/phi4_recipe/results.jsonl (Markdown on stdout).

1. Final points of every run: set, budget, recipe, steps, CPU and wall
   seconds, IMH acceptance, ESS, RKL estimate (= KL(q‖p) − log Z).
2. The curve of each run with budget ≥ --curve-min (intermediate points;
   under a decaying schedule they are mid-run, not the quality a run with
   that shorter budget would reach).
"""
import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHOR = {"e1": 0.51, "e2": 0.475, "e3": 0.431, "e4": 0.293, "e5": 0.264}
BEYOND = {"e1": 0.60, "e2": 0.55, "e3": 0.50, "e4": 0.40, "e5": 0.35}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(HERE, "results.jsonl"))
    ap.add_argument("--curve-min", type=float, default=600.0)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    final = [r for r in rows if r["final"]]
    final.sort(key=lambda r: (r["set"], r["budget_s"], -r["imh_acceptance"]))
    print("| set | budget (CPU s) | recipe | seed | steps | CPU s | wall s | threads | IMH acc. | anchor | ESS | RKL est. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in final:
        print(f"| {r['set']} | {r['budget_s']:.0f} | {r['recipe']} | {r['seed']} | {r['steps']} | {r['cpu_s']:.0f} | "
              f"{r['wall_s']:.0f} | {r['threads']} | {r['imh_acceptance']:.3f} | {ANCHOR.get(r['set'], float('nan'))} | "
              f"{r['ess']:.3f} | {r['rkl_estimate']:.2f} |")
    print()
    print("| set | recipe | seed | budget | step | CPU min | lattice | lr | IMH acc. | ESS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["set"], r["recipe"], r["seed"], r["budget_s"], r["steps"])):
        if r["budget_s"] >= a.curve_min:
            print(f"| {r['set']} | {r['recipe']} | {r['seed']} | {r['budget_s']:.0f} | {r['steps']} | {r['cpu_s'] / 60:.1f} | "
                  f"{r.get('lattice', '')} | {r['lr']:.1e} | {r['imh_acceptance']:.3f} | {r['ess']:.3f} |")


if __name__ == "__main__":
    main()
