"""Flow-MCMC from Python: the command line's methods with local moves.

    python examples/python/flow_mcmc.py [--dim 16] [--rounds 30] [--out DIR]

Two separated Gaussian modes (weights 2/3 and 1/3) in d dimensions:
adaptive flow-MCMC starts from a practically untrained flow, learns the
modes from global–local walkers, and then every method samples with the
adapted flow (imh, global-local with MALA and with HMC + i-SIR, neutra,
hybrid). Prints the weight of mode 0 with its Γ-method error against the
exact 2/3, the global and local acceptance and the time; the adapted model is saved to DIR
(default results/python-flow-mcmc/), where `fieldflow sample --model` can
use it as well.
"""

import argparse
import time
from pathlib import Path

import numpy as np

import fieldflow as ff


def weight(target, x):
    """Fraction of the samples in mode 0, with its Γ-method error (chains as replica)."""
    chains, n = x.shape[:2]
    return ff.analyze((target.modes(x.reshape(chains * n, -1)) == 0).reshape(chains, n).astype(float))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--n", type=int, default=2000, help="steps per chain of every production run")
    ap.add_argument("--out", default="results/python-flow-mcmc")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    section = {"kind": "two_modes", "dim": a.dim}
    target = ff.Target({"target": section})
    exact = target.mode_weights[0]
    # One RKL step at a negligible rate: a flow that knows nothing of the modes.
    init = ff.train({"seed": 1, "target": section,
                     "train": {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 1, "lr": 1e-12}},
                    progress=False)

    print(f"two modes in d = {a.dim}: exact weight of mode 0 = {exact:.4f}")
    print(f"  {'method':<30}{'weight ± error':>18}{'dev/σ':>8}{'acceptance':>12}{'local acc':>11}{'seconds':>9}")

    def show(label, run, seconds):
        w = weight(target, run["x"])
        local = np.nanmean(run["local_acceptance"]) if "local_acceptance" in run else float("nan")
        print(f"  {label:<30}{w['value']:>9.4f} ± {w['error']:<6.4f}{(w['value'] - exact) / w['error']:>+8.2f}"
              f"{run['acceptance']:>12.3f}{local:>11.3f}{seconds:>9.1f}")

    t0 = time.time()
    adapted, run = ff.adaptive(init, a.n, chains=4, sampler={"rounds": a.rounds})
    show(f"adaptive ({a.rounds} rounds)", run, time.time() - t0)
    adapted.save(out / "adapted.h5", force=True)

    runs = [
        ("imh", lambda: ff.imh(adapted, a.n, chains=4)),
        ("global-local (MALA)", lambda: ff.global_local(adapted, a.n, chains=4)),
        ("global-local (HMC, i-SIR 4)", lambda: ff.global_local(
            adapted, a.n, chains=4, sampler={"local": "hmc", "global": "isir", "proposals": 4})),
        ("neutra", lambda: ff.neutra(adapted, a.n, chains=4)),
        # hybrid keeps its random walk's width (0.5) unless given a warm-up;
        # in d = 16 that width is never accepted, so the run is plain IMH.
        ("hybrid", lambda: ff.hybrid(adapted, a.n, chains=4)),
        ("hybrid (warm-up 200)", lambda: ff.hybrid(adapted, a.n, chains=4, sampler={"warmup": 200})),
    ]
    for label, call in runs:
        t0 = time.time()
        r = call()
        show(label, r, time.time() - t0)
    print(f"adapted model: {out / 'adapted.h5'}")


if __name__ == "__main__":
    main()
