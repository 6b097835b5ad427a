"""What a target written in Python costs against the same target built in
(docs/THEORY.md "Targets from Python"): per batch call, per training step
and per IMH proposal. Medians of 5 repetitions, wall clock.

    python examples/python/target_cost.py
"""

import time

import numpy as np

import fieldflow as ff

MU, VAR = np.array([1.0, -2.0]), np.array([4.0, 0.25])


def gaussian(x):
    d = x - MU
    return -0.5 * np.sum(d * d / VAR, axis=1), -d / VAR


def phi4_numpy(m2, lam, shape):
    """log p̃ = −S of lattice φ⁴ and its score, in numpy (README's action)."""

    def f(x):
        phi = x.reshape((len(x),) + shape)
        s = (m2 * phi**2 + lam * phi**4).reshape(len(x), -1).sum(axis=1)
        g = 2 * m2 * phi + 4 * lam * phi**3
        for mu in range(1, phi.ndim):
            fwd, bwd = np.roll(phi, -1, axis=mu), np.roll(phi, 1, axis=mu)
            s += ((fwd - phi) ** 2).reshape(len(x), -1).sum(axis=1)
            g += 2 * (2 * phi - fwd - bwd)
        return -s, -g.reshape(len(x), -1)

    return f


def median_time(fn, reps=5):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def compare(name, builtin, python, config, batch, steps, n_imh):
    x = np.random.default_rng(0).normal(size=(batch, builtin.dim))
    call_b = median_time(lambda: builtin.log_prob_and_score(x), 50)
    call_p = median_time(lambda: python.log_prob_and_score(x), 50)
    cfg = {k: v for k, v in config.items() if k not in ("phi4", "target")}
    mp = ff.train(cfg, target=python, progress=False)
    # The same architecture for both (a Python target's default: MLP couplings).
    config = {**config, "flow": mp.config["flow"]}
    mb = ff.train(config, progress=False)
    tr_b = median_time(lambda: ff.train(config, progress=False)) / steps
    tr_p = median_time(lambda: ff.train(cfg, target=python, progress=False)) / steps
    tr_p32 = median_time(lambda: ff.train(cfg, target=python, progress=False, chunk_rows=32)) / steps
    imh_b = median_time(lambda: ff.imh(mb, n_imh, chains=4)) / (4 * n_imh)
    imh_p = median_time(lambda: ff.imh(mp, n_imh, chains=4)) / (4 * n_imh)
    print(f"{name}: batch {batch}")
    print(f"  log p̃ + score of one batch   built-in {call_b * 1e6:9.1f} µs   Python {call_p * 1e6:9.1f} µs")
    print(f"  RKL training step            built-in {tr_b * 1e6:9.1f} µs   Python {tr_p * 1e6:9.1f} µs"
          f"   (chunk_rows = 32: {tr_p32 * 1e6:9.1f} µs)")
    print(f"  IMH proposal (batch 256)     built-in {imh_b * 1e6:9.2f} µs   Python {imh_p * 1e6:9.2f} µs")


def main():
    train = {"loss": {"preset": "rkl"}, "batch_size": 128, "steps": 200, "lr": 3e-3}
    compare("Gaussian d = 2",
            ff.Target({"target": {"kind": "gaussian", "mean": list(MU), "cov": list(VAR)}}),
            ff.Target.from_function(gaussian, 2),
            {"seed": 1, "target": {"kind": "gaussian", "mean": list(MU), "cov": list(VAR)}, "train": train},
            128, 200, 20000)
    lat = {"lattice": [8, 8], "m2": -4.0, "lambda": 8.0}
    train = {"loss": {"preset": "rkl"}, "batch_size": 64, "steps": 50, "lr": 1e-3}
    compare("phi4 8x8 (d = 64)",
            ff.Target({"phi4": lat}),
            ff.Target.from_function(phi4_numpy(-4.0, 8.0, (8, 8)), 64),
            {"seed": 1, "phi4": lat, "train": train},
            64, 50, 5000)


if __name__ == "__main__":
    main()
