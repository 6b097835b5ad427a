#!/usr/bin/env python3
"""SLIPS against adaptive flow-MCMC per CPU-second (issue 18's comparison
table), both measured in one session on this machine.

Usage (from the repository root, after `cargo build --release`):
    nice -n 10 python3 data/experiments/slips/compare.py [--only two_modes:8 mog4 ...] [--seeds 1]
    python3 data/experiments/slips/compare.py --table

Per (target, seed), one after the other:
  * SLIPS (`fieldflow sample --method slips`) with the settings of driver.py
    (256 time steps, 32 MALA steps × 4 chains, σ² = R²/d + τ²) at the start
    time t0 its scan chose for that target (two modes: the best of the
    scan, i.e. tuned per dimension; MOG-4: 0.1, the middle of the paper's
    grid, every t0 giving the same ≈ ¼ per mode; φ⁴: 0.4), 1024 particles
    (φ⁴: 2048);
  * adaptive flow-MCMC exactly as data/experiments/flowmcmc/driver.py runs
    it (untrained 8-coupling affine flow, `fieldflow sample --method
    adaptive`, 40 rounds, then global-local production 4 chains × 4000).
Recorded: the weights with their errors (SLIPS: binomial; flow-MCMC: the
Γ-method error of `analyze`), wall and CPU seconds of the whole command
(CPU = user + system of the child), target evaluations per sample (SLIPS:
its own count; flow-MCMC: the CLI's count over the whole run, adaptation
included, per production sample). One JSON line per run in compare.jsonl
(resumable).

Figure of merit: the weight error err (two modes: |ŵ₀ − ⅔|; MOG-4: the
largest |ŵₖ − wₖ|; φ⁴: |log(w₊/w₋) − exact|) with its error s, and the
cost-normalized statistical error s·√(CPU s) (the error one CPU-second
would buy if the error fell like 1/√time). A method whose err is more than
3 s is biased: more CPU does not reduce its error, so the unbiased method
wins that row; if both are biased, neither wins; otherwise the smaller
s·√CPU wins.
"""
import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import driver  # noqa: E402  (the SLIPS targets and settings)

ROOT = driver.ROOT
FF = driver.FF
OUT = os.path.join(HERE, "compare.jsonl")

# SLIPS start time per target (module docs).
SLIPS_T0 = {"two_modes:8": 0.286, "two_modes:16": 0.15, "two_modes:32": 0.1, "two_modes:64": 0.05,
            "mog4": 0.1, "phi4_1d:0.0": 0.4, "phi4_1d:0.025": 0.4}
FLOW_TARGETS = {
    "two_modes:8": 'kind = "two_modes"\ndim = 8',
    "two_modes:16": 'kind = "two_modes"\ndim = 16',
    "two_modes:32": 'kind = "two_modes"\ndim = 32',
    "two_modes:64": 'kind = "two_modes"\ndim = 64',
    "mog4": 'kind = "mog4"',
    "phi4_1d:0.0": 'kind = "phi4_1d"\nb = 0.0',
    "phi4_1d:0.025": 'kind = "phi4_1d"\nb = 0.025',
}


def timed(args):
    """Runs the CLI; returns (wall s, CPU s of the child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.time()
    p = subprocess.run([FF] + args, capture_output=True, text=True)
    wall = time.time() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{args}: {p.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


def modes(path):
    _, _, out = timed(["analyze", path, "--json"])
    rows = json.loads(out)[0]["rows"]
    ms = [r for r in rows if r["observable"].startswith("mode_")]
    return [r["value"] for r in ms], [r["error"] for r in ms], [r["exact"] for r in ms]


def evaluations(stdout, samples=None):
    """SLIPS: its count per sample. Flow-MCMC: production target
    evaluations (log p̃ and log p̃ + ∇) per sample, from the CLI's
    per-proposal counts (the adaptation is not counted by the CLI)."""
    m = re.search(r"target evaluations per sample (\S+)", stdout)
    if m:
        return float(m.group(1))
    n = re.search(r"proposals\s+(\d+)", stdout)
    a = re.search(r"log p̃ ([0-9.]+), log p̃ \+ ∇ ([0-9.]+)", stdout)
    if n and a and samples:
        return int(n.group(1)) * (float(a.group(1)) + float(a.group(2))) / samples
    return None


def adaptation_evaluations(name, samples, rounds=40, warmup=200, steps_per_round=10):
    """Target evaluations of the adaptation per production sample, computed
    from the CLI's defaults (not counted by the CLI): walkers × (MALA
    warm-up + rounds × steps × 2, one flow proposal and one MALA update per
    global-local step); walkers 256, or 8·d above d = 32."""
    d = int(name.split(":")[1]) if name.startswith("two_modes") else (100 if name.startswith("phi4") else 2)
    walkers = 256 if d <= 32 else 8 * d
    return walkers * (warmup + rounds * steps_per_round * 2) / samples


def slips(name, seed, work):
    section, sigma, t_end, _ = driver.TARGETS[name]
    n = 2048 if name.startswith("phi4") else 1024
    cfg = os.path.join(work, "slips.toml")
    with open(cfg, "w") as f:
        f.write(f"[target]\n{section}\n\n[sampler]\nparticles = {n}\nblock = {n}\nsteps = {driver.STEPS}\n"
                f"mcmc_steps = {driver.MCMC_STEPS}\nmcmc_chains = {driver.MCMC_CHAINS}\nsigma = {sigma}\n"
                f"t0 = {SLIPS_T0[name]}\nt_end = {t_end}\ninit_langevin = 10\n")
    out = os.path.join(work, "slips.h5")
    wall, cpu, stdout = timed(["sample", "--method", "slips", "--config", cfg, "--out", out,
                               "--seed", str(seed), "--force"])
    w, _, ex = modes(out)
    e = [math.sqrt(max(x * (1 - x), 1e-300) / n) for x in w]
    return {"samples": n, "wall": wall, "cpu": cpu, "evals_per_sample": evaluations(stdout),
            "weights": w, "errors": e, "exact": ex, "t0": SLIPS_T0[name]}


def flow(name, seed, work):
    init = os.path.join(work, "init.h5")
    cfg = os.path.join(work, "init.toml")
    with open(cfg, "w") as f:
        f.write(f"seed = {seed}\n[target]\n{FLOW_TARGETS[name]}\n[train]\nloss = {{ preset = \"rkl\" }}\n"
                "batch_size = 64\nsteps = 1\nlr = 1e-12\n")
    w0, c0, _ = timed(["train", "--config", cfg, "--out", init, "-q", "--force"])
    scfg = os.path.join(work, "sampler.toml")
    with open(scfg, "w") as f:
        f.write("[sampler]\ninit_sigma = 3.0\ntrain_steps = 10\n")
    out = os.path.join(work, "adaptive.h5")
    wall, cpu, stdout = timed(["sample", "--model", init, "--method", "adaptive", "--n", "4000", "--chains", "4",
                               "--seed", str(seed), "--out", out, "--force", "--rounds", "40",
                               "--config", scfg, "--adapted-model", os.path.join(work, "adapted.h5")])
    w, e, ex = modes(out)
    return {"samples": 16000, "wall": wall + w0, "cpu": cpu + c0, "evals_per_sample": evaluations(stdout, 16000),
            "adaptation_evals_per_sample": adaptation_evaluations(name, 16000),
            "weights": w, "errors": e, "exact": ex, "stdout_tail": stdout.strip().splitlines()[-12:]}


def error(name, r):
    """(err, s) of the figure of merit (module docs)."""
    w, e, ex = r["weights"], r["errors"], r["exact"]
    if name.startswith("phi4"):
        n = r["samples"]
        if min(w) * n < 0.5:
            return math.inf, math.inf
        lr = math.log(w[1] / w[0])
        s = e[1] * (1 / w[0] + 1 / w[1])  # w₀ = 1 − w₁: the two errors are one
        return abs(lr - math.log(ex[1] / ex[0])), s
    k = max(range(len(w)), key=lambda i: abs(w[i] - ex[i]))
    return abs(w[k] - ex[k]), e[k]


def table():
    rs = [json.loads(line) for line in open(OUT)]
    print("| target | method | seed | weight error ± s | wall s | CPU s | evals/sample | s·√CPU | wins |")
    print("|---|---|---|---|---|---|---|---|---|")
    keys = list(dict.fromkeys((r["target"], r["seed"]) for r in rs))
    for t, seed in keys:
        pair = {r["method"]: r for r in rs if (r["target"], r["seed"]) == (t, seed)}
        merit = {}
        for m, r in pair.items():
            err, s = error(t, r)
            biased = not (err <= 3 * s)
            merit[m] = (biased, s * math.sqrt(r["cpu"]))
        winner = min(merit, key=lambda m: (merit[m][0], merit[m][1])) if len(merit) == 2 else ""
        if len(merit) == 2 and all(b for b, _ in merit.values()):
            winner = ""  # both biased: neither wins
        for m, r in pair.items():
            err, s = error(t, r)
            ev = f"{r['evals_per_sample']:.1f}" if r.get("evals_per_sample") else "–"
            if r.get("adaptation_evals_per_sample"):
                ev += f" + {r['adaptation_evals_per_sample']:.0f} (adaptation)"
            flag = " (biased)" if merit[m][0] else ""
            win = "**yes**" if m == winner else ("neither (both biased)" if not winner else "")
            print(f"| {t} | {m} | {seed} | {err:.4f} ± {s:.4f}{flag} | {r['wall']:.1f} | {r['cpu']:.1f} | {ev} | "
                  f"{merit[m][1]:.4f} | {win} |")


def summary():
    """Per target and method: mean over seeds of err, s, CPU s; rows won."""
    rs = [json.loads(line) for line in open(OUT)]
    print("\n| target | method | seeds | mean weight error (per seed) | mean s | mean CPU s | s·√CPU | rows won |")
    print("|---|---|---|---|---|---|---|---|")
    for t in dict.fromkeys(r["target"] for r in rs):
        wins = {}
        for seed in dict.fromkeys(r["seed"] for r in rs if r["target"] == t):
            pair = {r["method"]: r for r in rs if (r["target"], r["seed"]) == (t, seed)}
            if len(pair) != 2:
                continue
            merit = {m: (not (error(t, r)[0] <= 3 * error(t, r)[1]), error(t, r)[1] * math.sqrt(r["cpu"]))
                     for m, r in pair.items()}
            if not all(b for b, _ in merit.values()):
                w = min(merit, key=lambda m: merit[m])
                wins[w] = wins.get(w, 0) + 1
        for m in dict.fromkeys(r["method"] for r in rs if r["target"] == t):
            sub = [r for r in rs if r["target"] == t and r["method"] == m]
            errs = [error(t, r) for r in sub]
            cpu = sum(r["cpu"] for r in sub) / len(sub)
            me = sum(e for e, _ in errs) / len(errs)
            ms = sum(x for _, x in errs) / len(errs)
            per = ", ".join(f"{e:.4f}" for e, _ in errs)
            print(f"| {t} | {m} | {len(sub)} | {me:.4f} ({per}) | {ms:.4f} | {cpu:.1f} | {ms * math.sqrt(cpu):.4f} | "
                  f"{wins.get(m, 0)} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="+", default=list(SLIPS_T0))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--methods", nargs="+", default=["slips", "adaptive"])
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if a.table:
        table()
        return summary()
    done = set()
    if os.path.exists(OUT):
        done = {(r["target"], r["seed"], r["method"]) for r in map(json.loads, open(OUT))}
    for name in a.only:
        for seed in a.seeds:
            for method in a.methods:
                if (name, seed, method) in done:
                    continue
                with tempfile.TemporaryDirectory() as work:
                    rec = (slips if method == "slips" else flow)(name, seed, work)
                rec.update({"target": name, "seed": seed, "method": method,
                            "load": os.getloadavg()[0]})
                with open(OUT, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                err, s = error(name, rec)
                print(f"{name:14} s{seed} {method:8} err {err:.4f} ± {s:.4f}  wall {rec['wall']:.1f} s  "
                      f"CPU {rec['cpu']:.1f} s  evals/sample {rec['evals_per_sample']}", flush=True)


if __name__ == "__main__":
    main()
