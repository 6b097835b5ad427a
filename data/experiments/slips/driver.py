#!/usr/bin/env python3
"""SLIPS benchmark (issue 18): `fieldflow sample --method slips` on targets
with exact mode weights (two modes in d = 8…64, MOG-4, MOG-8, the 1D φ⁴
chain with tilt b), no model and no target samples.

Usage (from the repository root, after `cargo build --release`):
    nice -n 5 python3 data/experiments/slips/driver.py --phase scan  [--only two_modes:16 ...]
    nice -n 5 python3 data/experiments/slips/driver.py --phase final [--seeds 1 2 3]
    python3 data/experiments/slips/table.py

Phase `scan` (seed 100): every target over the paper's grid of start times
t0 for the geometric (1, 1) schedule (arXiv 2402.10758, its benchmark
settings: two modes and MOG {0.03, 0.05, 0.1, 0.15, 0.25}, φ⁴ {0.3, 0.35,
0.4, 0.45}; extended by 0.35 for d = 8, by 0.4, 0.55, 0.7 for MOG, where the
best value lay at the grid's end, and by 0.05, 0.15 for φ⁴ at b = 0.025); the paper chose t0 per target by grid
search in the same way.
Phase `final` (fresh seeds): for every target the t0 of the scan with the
smallest weight error (φ⁴: chosen on b = 0.025, since at b = 0 every t0
gives ½ by symmetry, and used for every b), more particles. Phase `start` (seed 100, scan size):
the given t0 values with `--init-langevin` initial Langevin steps instead of
the paper's 10 (does a longer start remove the bias at large t0?). Phase
`fixed` (fresh seeds, final size): the given t0 values, e.g. the rule
t0 = 3.2/(d + 3.2) for two modes (README.md). Phase `weights` (fresh
seeds, final size; `--only two_modes:D ...`): the two-modes target with
mode-0 weights `--w0` instead of ⅔ (a `mixture` target, same means and
widths) at the t0 the scan chose for ⅔ — whether SLIPS's weights follow
the target at all.

Fixed settings (the paper's except the number of time steps, 256 instead of
1024, to fit the CPU budget): geometric (1, 1), t_end with log-SNR 5 (φ⁴
5.7), 32 MALA steps × 4 chains per time step, half discarded, acceptance
0.75, 10 initial Langevin steps; σ² = R²/d + τ² with the paper's R and τ.
One JSON line per run in results.jsonl (resumable: runs already there are
skipped): mode weights with binomial errors (particles are independent),
wall time, target evaluations per sample.
"""
import argparse
import json
import math
import os
import re
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FF = os.environ.get("FIELDFLOW_BIN", os.path.join(ROOT, "target", "release", "fieldflow"))
HERE = os.path.dirname(os.path.abspath(__file__))

TWO_MODES_SIGMA = math.sqrt(16.0 / 9.0 + 0.05)  # R = (4/3)√d, τ² = 0.05
# name: (target section, sigma, t_end, scan grid of t0)
TARGETS = {}
for d in [8, 16, 32, 64]:
    TARGETS[f"two_modes:{d}"] = (f'kind = "two_modes"\ndim = {d}', TWO_MODES_SIGMA, 1 - 6.62e-3,
                                 [0.03, 0.05, 0.1, 0.15, 0.25] + ([0.35] if d == 8 else []))
# MOG: the paper's grid, extended to larger t0 (its modes are far apart
# against σ: README.md, "start time").
MOG_GRID = [0.03, 0.05, 0.1, 0.15, 0.25, 0.4, 0.55, 0.7]
TARGETS["mog4"] = ('kind = "mog4"', math.sqrt(32 / 2 + 0.5), 1 - 6.62e-3, MOG_GRID)
TARGETS["mog8"] = ('kind = "mog8"', math.sqrt(100 / 2 + 0.7), 1 - 6.62e-3, MOG_GRID)
PHI4_SIGMA = math.sqrt(4.5 ** 2 / 100 + 0.2 ** 2)
for b, grid in [(0.0, [0.3, 0.35, 0.4, 0.45]), (0.025, [0.05, 0.15, 0.3, 0.35, 0.4, 0.45])]:
    TARGETS[f"phi4_1d:{b}"] = (f'kind = "phi4_1d"\nb = {b}', PHI4_SIGMA, 1 - 3.32e-3, grid)

STEPS, MCMC_STEPS, MCMC_CHAINS = 256, 32, 4


def two_modes_weighted(d, w0):
    """Phase `weights`: the two-modes target with mode 0 (at −⅔𝟙, the one
    nearer to the start's centre) of weight w0 instead of ⅔, as a general
    `mixture` (same means, widths and σ); registered as
    `two_modes@w0=W:d`."""
    name = f"two_modes@w0={w0:.4g}:{d}"
    row = lambda v: "[" + ", ".join([repr(v)] * d) + "]"
    section = (f'kind = "mixture"\nmeans = [{row(-2.0 / 3.0)}, {row(4.0 / 3.0)}]\n'
               f'covs = [0.05, 0.05]\nweights = [{w0!r}, {1.0 - w0!r}]')
    TARGETS[name] = (section, TWO_MODES_SIGMA, 1 - 6.62e-3, [])
    return name


def particles(name, phase):
    if name.startswith("phi4_1d"):
        return 2048 if phase == "scan" else 4096
    return 1024 if phase == "scan" else 2048


def run(args):
    t = time.time()
    p = subprocess.run([FF] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{args}: {p.stderr.strip()}")
    return time.time() - t, p.stdout


# Phase `paper`: the paper's code's MCMC and integrator (README.md,
# "Our SLIPS against the paper's code"): one step per chain from 1e-5,
# ×/÷ 1.01 after every update, plain Euler drift; `steps` as given.
PAPER_EXTRA = 'step_adaptation = "per_chain"\nmcmc_step = 1e-5\nintegrator = "euler"\n'


def one(name, seed, t0, n, phase, init=10, steps=STEPS, extra=""):
    section, sigma, t_end, _ = TARGETS[name]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "run.toml")
        with open(cfg, "w") as f:
            f.write(f"[target]\n{section}\n\n[sampler]\nparticles = {n}\nblock = {n}\nsteps = {steps}\n"
                    f"mcmc_steps = {MCMC_STEPS}\nmcmc_chains = {MCMC_CHAINS}\nsigma = {sigma}\n"
                    f"t0 = {t0}\nt_end = {t_end}\ninit_langevin = {init}\n{extra}")
        out = os.path.join(tmp, "s.h5")
        wall, stdout = run(["sample", "--method", "slips", "--config", cfg, "--out", out, "--seed", str(seed)])
        evals = float(re.search(r"target evaluations per sample (\S+)", stdout).group(1))
        acc = float(re.search(r"MCMC acceptance\s+(\S+)", stdout).group(1))
        _, js = run(["analyze", out, "--json"])
    rows = json.loads(js)[0]["rows"]
    modes = [r for r in rows if r["observable"].startswith("mode_")]
    w = [r["value"] for r in modes]
    counts = [round(x * n) for x in w]
    rec = {
        "target": name, "seed": seed, "phase": phase, "t0": t0, "particles": n, "steps": steps,
        "extra": extra,
        "mcmc_steps": MCMC_STEPS, "mcmc_chains": MCMC_CHAINS, "sigma": sigma, "t_end": t_end,
        "init_langevin": init,
        "weights": w, "binomial_errors": [math.sqrt(x * (1 - x) / n) for x in w],
        "exact": [r["exact"] for r in modes], "counts": counts,
        "wall_seconds": wall, "evaluations_per_sample": evals, "mcmc_acceptance": acc,
    }
    if name.startswith("phi4_1d"):
        ex = rec["exact"]
        rec["log_ratio_exact"] = math.log(ex[1] / ex[0])
        if min(counts) > 0:
            rec["log_ratio"] = math.log(counts[1] / counts[0])
            rec["log_ratio_error"] = math.sqrt(1 / counts[0] + 1 / counts[1])
    return rec


def load(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path)]


def score(r):
    """Weight error of a run (φ⁴: |log ratio error|, ∞ without both modes)."""
    if r["target"].startswith("phi4_1d"):
        return abs(r["log_ratio"] - r["log_ratio_exact"]) if "log_ratio" in r else math.inf
    if len(r["weights"]) == 2:
        return abs(r["weights"][0] - r["exact"][0])
    return 0.5 * sum(abs(a - b) for a, b in zip(r["weights"], r["exact"]))  # total variation


def chosen_t0(results, name):
    # b = 0 is symmetric (every t0 gives ½ by symmetry): the tilted chain chooses.
    key = "phi4_1d:0.025" if name.startswith("phi4_1d") else name
    scan = [r for r in results if r["phase"] == "scan" and r["target"] == key]
    if not scan:
        raise SystemExit(f"{name}: run --phase scan for {key} first")
    return min(scan, key=score)["t0"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", choices=["scan", "final", "start", "fixed", "paper", "weights"], required=True)
    ap.add_argument("--steps", type=int, default=STEPS, help="phase paper: time steps")
    ap.add_argument("--particles", type=int, default=0, help="phase paper: particles (0: final size)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--only", nargs="+", default=list(TARGETS))
    ap.add_argument("--out", default=os.path.join(HERE, "results.jsonl"))
    ap.add_argument("--t0", type=float, nargs="+", default=[0.15, 0.25], help="phases start, fixed: start times")
    ap.add_argument("--init-langevin", type=int, default=100, help="phase start: initial Langevin steps")
    ap.add_argument("--w0", type=float, nargs="+", default=[1 / 3, 0.5, 0.9],
                    help="phase weights: weights of mode 0 (the target's is 2/3)")
    a = ap.parse_args()
    results = load(a.out)
    done = {(r["target"], r["seed"], r["phase"], r["t0"], r["steps"]) for r in results}
    plan = []
    for name in a.only:
        if a.phase == "scan":
            plan += [(name, 100, t0) for t0 in TARGETS[name][3]]
        elif a.phase == "start":
            plan += [(name, 100, t0) for t0 in a.t0]
        elif a.phase == "weights":
            # The two-modes target with other weights at the t0 the scan
            # picked for the true ⅔: does SLIPS's answer follow the target?
            d = int(name.split(":")[1])
            t0 = chosen_t0(results, name)
            plan += [(two_modes_weighted(d, w0), s, t0) for w0 in a.w0 for s in a.seeds]
        elif a.phase in ("fixed", "paper"):
            plan += [(name, s, t0) for t0 in a.t0 for s in a.seeds]
        else:
            plan += [(name, s, chosen_t0(results, name)) for s in a.seeds]
    for name, seed, t0 in plan:
        steps = a.steps if a.phase == "paper" else STEPS
        if (name, seed, a.phase, t0, steps) in done:
            continue
        init = a.init_langevin if a.phase == "start" else 10
        size = "scan" if a.phase in ("scan", "start") else "final"
        n = a.particles if a.phase == "paper" and a.particles > 0 else particles(name, size)
        extra = PAPER_EXTRA if a.phase == "paper" else ""
        rec = one(name, seed, t0, n, a.phase, init, steps, extra)
        with open(a.out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"{name:14s} seed {seed:3d} t0 {t0:5.3f}: w {[round(x, 4) for x in rec['weights']]} "
              f"(exact {[round(x, 4) for x in rec['exact']]}) {rec['wall_seconds']:.1f} s, "
              f"{rec['evaluations_per_sample']:.0f} evals/sample", flush=True)


if __name__ == "__main__":
    main()
