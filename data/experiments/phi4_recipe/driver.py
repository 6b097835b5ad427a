#!/usr/bin/env python3
"""φ⁴ training recipes under a wall-time budget (issue 16, "quality per CPU-minute").

Each run is `crates/losses/examples/phi4_recipe.rs` (RKL training of a
checkerboard coupling flow on a set of /work/shared/REFERENCE.md §2.5, timed
planning of the step count, IMH acceptance and ESS of fresh flow samples);
its JSON lines (intermediate points and the final one) are appended to the
results file with the recipe's flags. Resumable: a (set, recipe, seed,
budget) whose final line is already in the file is skipped.

Usage (repository root, after
`cargo build --release -p fieldflow-losses --example phi4_recipe`):
    RAYON_NUM_THREADS=1 python3 data/experiments/phi4_recipe/driver.py \
        --sets e5 e3 --recipes tutorial cos2e-3 ... --budget 150 [--seeds 1] [--evals 4]
    python3 data/experiments/phi4_recipe/driver.py --list
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXE = os.path.join(ROOT, "target", "release", "examples", "phi4_recipe")
OUT = os.path.join(os.path.dirname(__file__), "results.jsonl")

# Recipe name -> flags of the example. "tutorial" is the baseline of issue 16
# (tutorial architecture, plain RKL, batch 64, Adam lr 1e-3 constant).
RECIPES = {
    "tutorial": "--batch 64 --lr 1e-3 --sched const",
    "cos1e-3": "--batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    # Warm-up, then constant (a cosine from η₀ to η₀).
    "w2e-3": "--batch 64 --lr 2e-3 --sched warmcos --warmup 100 --min-lr 2e-3",
    "w4e-3": "--batch 64 --lr 4e-3 --sched warmcos --warmup 100 --min-lr 4e-3",
    "w8e-3": "--batch 64 --lr 8e-3 --sched warmcos --warmup 200 --min-lr 8e-3",
    "w1e-3": "--batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-3",
    # Warm-up, stable, decay: the last 20 % of the steps decay to 1e-5.
    "wsd1e-3": "--batch 64 --lr 1e-3 --sched wsd --warmup 100 --decay-frac 0.2 --min-lr 1e-5",
    "wsd2e-3": "--batch 64 --lr 2e-3 --sched wsd --warmup 100 --decay-frac 0.2 --min-lr 1e-5",
    "curr_w1e-3": "--lattice {half},{L} --fracs 1,2 --batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-3",
    "curr_wsd1e-3": "--lattice {half},{L} --fracs 1,2 --batch 64 --lr 1e-3 --sched wsd --warmup 100 --decay-frac 0.2 "
                    "--min-lr 1e-5",
    "wsd4e-3": "--batch 64 --lr 4e-3 --sched wsd --warmup 100 --decay-frac 0.2 --min-lr 1e-5",
    "curr_wsd4e-3": "--lattice {half},{L} --fracs 1,2 --batch 64 --lr 4e-3 --sched wsd --warmup 100 --decay-frac 0.2 "
                    "--min-lr 1e-5",
    # Three lattice stages (6, 10, then L; sets with L >= 12), the last half of
    # the budget on L with the decay spread over the whole last stage.
    "curr3_wsdS4e-3": "--lattice 6,10,{L} --fracs 1,1,2 --batch 64 --lr 4e-3 --sched wsd --warmup 100 "
                      "--decay-frac stage --min-lr 1e-5",
    "curr_wsdS4e-3": "--lattice {half},{L} --fracs 1,2 --batch 64 --lr 4e-3 --sched wsd --warmup 100 "
                     "--decay-frac stage --min-lr 1e-5",
    "cos2e-3": "--batch 64 --lr 2e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    "b32_cos1e-3": "--batch 32 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    "grow_cos1e-3": "--batch 64,128,256 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    "z2_cos1e-3": "--z2 --batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    "wide16_cos1e-3": "--hidden 16,16 --batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    "l8_cos1e-3": "--layers 8 --batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    "k5_cos1e-3": "--kernel 5 --batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    # Lattice curriculum: a third of the budget on a lattice of about half the
    # extent ({half}: the even size nearest L/2 from above), then the set's L.
    "curr_cos1e-3": "--lattice {half},{L} --fracs 1,2 --batch 64 --lr 1e-3 --sched warmcos --warmup 100 --min-lr 1e-5",
    "curr_grow_cos1e-3": "--lattice {half},{L},{L} --batch 64,64,128 --fracs 1,1,1 --lr 1e-3 --sched warmcos "
                         "--warmup 100 --min-lr 1e-5",
}
SET_L = {"tutorial": 8, "e1": 6, "e2": 8, "e3": 10, "e4": 12, "e5": 14}


def flags(recipe, s):
    L = SET_L[s]
    half = max(4, 2 * ((L // 2 + 1) // 2))
    return RECIPES[recipe].format(L=L, half=half)


def done_keys(path):
    keys = set()
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line:
                r = json.loads(line)
                if r.get("final"):
                    keys.add((r["set"], r["recipe"], r["seed"], float(r["budget_s"])))
    return keys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=["e5", "e3"])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--budget", type=float, default=150.0, help="training CPU seconds per run (= wall at 1 thread, quiet machine)")
    ap.add_argument("--evals", type=int, default=4, help="evaluation points per run (the last is final)")
    ap.add_argument("--eval-n", type=int, default=8192, help="flow samples per evaluation")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for k, v in RECIPES.items():
            print(f"{k:20s} {v}")
        return
    for r in a.recipes:
        if r not in RECIPES:
            sys.exit(f"driver: unknown recipe {r!r} (see --list)")
    threads = os.environ.get("RAYON_NUM_THREADS")
    if threads is None:
        sys.exit("driver: set RAYON_NUM_THREADS (the runs are timed; 1 on the shared machine)")
    done = done_keys(a.out)
    for s in a.sets:
        for r in a.recipes:
            for seed in a.seeds:
                if (s, r, seed, float(a.budget)) in done:
                    print(f"skip {s} {r} seed {seed} budget {a.budget}", flush=True)
                    continue
                cmd = [EXE, "--set", s, "--recipe", r, "--seed", str(seed), "--budget", str(a.budget),
                       "--evals", str(a.evals), "--eval-n", str(a.eval_n)] + flags(r, s).split()
                print("run", " ".join(cmd[1:]), flush=True)
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"FAILED {s} {r} seed {seed}: {p.stderr.strip()}", flush=True)
                    continue
                with open(a.out, "a") as f:
                    for line in p.stdout.splitlines():
                        rec = json.loads(line)
                        rec["flags"] = flags(r, s)
                        f.write(json.dumps(rec) + "\n")
                        if rec["final"]:
                            print(f"  {s} {r}: steps {rec['steps']} wall {rec['wall_s']} s "
                                  f"cpu {rec['cpu_s']} s acc {rec['imh_acceptance']:.3f} ess {rec['ess']:.3f} rkl {rec['rkl_estimate']:.2f}", flush=True)


if __name__ == "__main__":
    main()
