#!/usr/bin/env python3
"""Flow-MCMC benchmark (issue 15): adaptive flow-MCMC from walkers spread by a
broad Gaussian, then every sampler with the adapted flow, on targets with
exact mode weights.

Usage (from the repository root, after `cargo build --release`):
    python3 data/experiments/flowmcmc/driver.py [--seeds 1 2 3] [--only two_modes:16 mog4 ...]
        [--rounds 40] [--init-sigma 3.0] [--out data/experiments/flowmcmc/results.jsonl]

Per (target, seed):
  1. a practically untrained starting flow (`fieldflow train`, one RKL step at
     lr 1e-12: the flow never sees a target sample);
  2. `fieldflow sample --method adaptive` (walkers from N(0, init_sigma² I),
     MALA warm-up, `rounds` rounds of 10 global-local steps + `--train-steps` FKL Adam
     steps, then global-local production with the frozen flow, 4 chains × 4000);
  3. with the adapted model: imh, isir (K = 8) and neutra (MALA), 4 × 4000 each.
Every run is analysed with `fieldflow analyze --json`; one JSON line per run
is appended to the output (resumable: runs already in the file are skipped).
Wall times are for the whole command (adaptive: adaptation + production).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FF = os.path.join(ROOT, "target", "release", "fieldflow")

TARGETS = {
    "two_modes:8": 'kind = "two_modes"\ndim = 8',
    "two_modes:16": 'kind = "two_modes"\ndim = 16',
    "two_modes:32": 'kind = "two_modes"\ndim = 32',
    "two_modes:64": 'kind = "two_modes"\ndim = 64',
    "two_modes:128": 'kind = "two_modes"\ndim = 128',
    "mog4": 'kind = "mog4"',
    "mog8": 'kind = "mog8"',
}


def run(args):
    t0 = time.time()
    p = subprocess.run([FF] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{args}: {p.stderr.strip()}")
    return time.time() - t0, p.stdout


def analyze(path):
    _, out = run(["analyze", path, "--json"])
    rows = json.loads(out)[0]["rows"]
    modes = [r for r in rows if r["observable"].startswith("mode_")]
    return {
        "weights": [r["value"] for r in modes],
        "errors": [r["error"] for r in modes],
        "exact": [r["exact"] for r in modes],
        "tau_mode": [r["tau_int"] for r in modes],
    }




def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--only", nargs="+", default=list(TARGETS))
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--init-sigma", type=float, default=3.0)
    ap.add_argument("--train-steps", type=int, default=10, help="Adam steps per round (the CLI default)")
    ap.add_argument("--walkers", type=int, default=None, help="default: the CLI's (256, or 8·d above d = 32)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.jsonl"))
    a = ap.parse_args()
    done = set()
    if os.path.exists(a.out):
        for line in open(a.out):
            r = json.loads(line)
            done.add((r["target"], r["seed"], r["method"], r.get("init_sigma", 3.0), r.get("train_steps", 25),
                      r.get("walkers", 256)))
    walkers = a.walkers or "auto"
    work = tempfile.mkdtemp(prefix="ff_flowmcmc_")
    for tname in a.only:
        for seed in a.seeds:
            tag = f"{tname.replace(':', '')}_s{seed}_sig{a.init_sigma:g}_ts{a.train_steps}_w{walkers}"
            init = os.path.join(work, f"{tag}_init.h5")
            cfg = os.path.join(work, f"{tag}.toml")
            with open(cfg, "w") as f:
                f.write(f"seed = {seed}\n[target]\n{TARGETS[tname]}\n[train]\nloss = {{ preset = \"rkl\" }}\n"
                        "batch_size = 64\nsteps = 1\nlr = 1e-12\n")
            sampler_cfg = os.path.join(work, f"{tag}_sampler.toml")
            with open(sampler_cfg, "w") as f:
                f.write(f"[sampler]\ninit_sigma = {a.init_sigma}\ntrain_steps = {a.train_steps}\n")
                if a.walkers:
                    f.write(f"walkers = {a.walkers}\n")
            adapted = os.path.join(work, f"{tag}_adapted.h5")
            methods = [
                ("adaptive", init, ["--rounds", str(a.rounds), "--config", sampler_cfg, "--adapted-model", adapted]),
                ("imh", adapted, []),
                ("isir", adapted, ["--proposals", "8"]),
                ("neutra", adapted, []),
            ]
            if all((tname, seed, m, a.init_sigma, a.train_steps, walkers) in done for m, _, _ in methods):
                continue
            run(["train", "--config", cfg, "--out", init, "-q", "--force"])
            for method, model, extra in methods:
                out = os.path.join(work, f"{tag}_{method}.h5")
                secs, stdout = run(["sample", "--model", model, "--method", method, "--n", "4000", "--chains", "4",
                                    "--seed", str(seed), "--out", out, "--force"] + extra)
                rec = {"target": tname, "seed": seed, "method": method, "init_sigma": a.init_sigma,
                       "train_steps": a.train_steps, "walkers": walkers,
                       "rounds": a.rounds if method == "adaptive" else None, "seconds": round(secs, 2)}
                rec.update(analyze(out))
                rec["stuck_chains"] = len(json.loads(run(["analyze", out, "--json"])[1])[0]["warnings"])
                for line in stdout.splitlines():
                    parts = line.split()
                    if parts and parts[0] in ("acceptance", "moved", "local"):
                        rec["acceptance"] = float(parts[-3])
                with open(a.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                w, e, x = rec["weights"], rec["errors"], rec["exact"]
                tv = 0.5 * sum(abs(u - v) for u, v in zip(w, x))
                print(f"{tname:14} s{seed} {method:9} {secs:6.1f}s  w0 {w[0]:.3f}±{e[0]:.3f} (exact {x[0]:.3f}) "
                      f"TV {tv:.3f} tau {rec['tau_mode'][0]:.1f} acc {rec.get('acceptance', float('nan')):.3f}",
                      flush=True)


if __name__ == "__main__":
    sys.exit(main())
