"""flowMC 0.6.4 on fieldflow's multimodal targets (the peer of `cargo xtask reproduce modes --peers`).

    python xtask/peers/flowmc_modes.py --target mog4|mog8|two_modes|separated|phi4_1d
        [--dim D] [--separation S] [--tilt B --exact W0,W1] [--seed S] [--n-chains 40] [--json OUT.json]

The targets are fieldflow's presets (crates/targets/src/presets.rs, docs/THEORY.md §3.3), written here
as JAX log densities; flowMC is never told where the modes are:

  mog4       2-D, means (-4,-4), (4,-4), (-4,4), (4,4), weights .1 .2 .3 .4, covariance 0.5 I
  mog8       2-D, 8 equal modes at 10 (cos 2πk/8, sin 2πk/8), covariance 0.7 I
  two_modes  (2/3) N(-(2/3)1, 0.05 I) + (1/3) N((4/3)1, 0.05 I) in --dim dimensions
  separated  ½ N(-(s/2) e, I) + ½ N((s/2) e, I), e = 1/√d, in --dim dimensions, s = --separation
  phi4_1d    the 1D φ⁴ / Allen–Cahn chain of crates/targets/src/phi4_1d.rs: N = --dim sites (100),
             a = 0.1, β = 20, Dirichlet ends, tilt b = --tilt; modes by the sign of the middle site
             (index ⌊(N − 1)/2⌋: mode 0 if negative); its exact weights (the transfer operator's, which
             only fieldflow computes) are passed with --exact; walkers start from N(0, ¼ I), the
             field's own scale (from N(0, 4 I) the gradient term alone is ~10³ per site, and the
             score ~10³, against MALA's initial step 0.1)

The sampler is flowMC's standard bundle (MALA local steps, a masked-coupling rational-quadratic spline
flow trained on the chains, independence-MH global steps) with the settings of flowMC's multimodal
"dual moon" tutorial; walkers start from N(0, 4 I) (the chain: N(0, ¼ I)). Every production sample (all
chains, local and global steps) of a mixture is assigned to its nearest mean; the exact weights are those of nearest-mean regions
(for the separated mixture the same integral as fieldflow's `Modes::true_weights`, here by erf).
The errors of the pooled fractions treat the chains as independent replicates (the production flow
is frozen). Prints one line and writes the JSON read by xtask/src/reproduce/modes.rs (`peer_values`).
CPU only; flowMC's checkpoints are off; nothing is written but the optional --json file and flowMC's
empty output folder under /tmp.
"""

import argparse
import json
import math
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.special import logsumexp  # noqa: E402
from flowMC.resource_strategy_bundle.RQSpline_MALA import RQSpline_MALA_Bundle  # noqa: E402
from flowMC.Sampler import Sampler  # noqa: E402
from importlib.metadata import version  # noqa: E402


def normal_cdf(t):
    return 0.5 * math.erfc(-t / math.sqrt(2.0))


def chain_log_density(n, b, a=0.1, beta=20.0):
    """log p̃ of the 1D φ⁴ chain (fieldflow's `phi4_1d`, up to its normalization)."""
    an = a * n

    def log_density(x, _data):
        padded = jnp.concatenate([jnp.zeros(1), x, jnp.zeros(1)])
        grad_term = 0.5 * an * jnp.sum((padded[1:] - padded[:-1]) ** 2)
        local = jnp.sum((1.0 - x**2) ** 2 / 4.0 + b * x) / an
        return -beta * (grad_term + local)

    return log_density


def target(name, dim, separation):
    """(dim, means [K, dim], weights [K], exact nearest-mean weights [K], isotropic variance)."""
    if name == "mog4":
        means = np.array([[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]])
        w = np.array([0.1, 0.2, 0.3, 0.4])
        return 2, means, w, w, 0.5
    if name == "mog8":
        ang = 2.0 * np.pi * np.arange(8) / 8.0
        means = 10.0 * np.stack([np.cos(ang), np.sin(ang)], 1)
        w = np.full(8, 0.125)
        return 2, means, w, w, 0.7
    if name == "two_modes":
        means = np.stack([np.full(dim, -2.0 / 3.0), np.full(dim, 4.0 / 3.0)])
        w = np.array([2.0 / 3.0, 1.0 / 3.0])
        return dim, means, w, w, 0.05
    if name == "separated":
        e = np.full(dim, 1.0 / math.sqrt(dim))
        means = np.stack([-0.5 * separation * e, 0.5 * separation * e])
        w = np.array([0.5, 0.5])
        # Region k = {∓ x·e > 0}; under component j, x·e ~ N(μ_j·e, 1).
        r0 = w[0] * normal_cdf(0.5 * separation) + w[1] * normal_cdf(-0.5 * separation)
        return dim, means, w, np.array([r0, 1.0 - r0]), 1.0
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=["mog4", "mog8", "two_modes", "separated", "phi4_1d"], required=True)
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--separation", type=float, default=4.0)
    ap.add_argument("--tilt", type=float, default=0.0)
    ap.add_argument("--exact", default="", help="phi4_1d: the exact mode weights w0,w1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-chains", type=int, default=40)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.dim < 1 or a.n_chains < 2 or not a.separation > 0:
        ap.error("--dim >= 1, --n-chains >= 2 and --separation > 0 are required")

    if a.target == "phi4_1d":
        try:
            exact = np.array([float(w) for w in a.exact.split(",")])
        except ValueError:
            ap.error("--exact: expected two numbers w0,w1")
        if exact.size != 2:
            ap.error("--exact: expected two numbers w0,w1")
        dim, init_std, middle = a.dim, 0.5, (a.dim - 1) // 2
        log_density = chain_log_density(a.dim, a.tilt)

        def labels(pos):
            return (pos[..., middle] >= 0.0).astype(int)

    else:
        dim, means, weights, exact, var = target(a.target, a.dim, a.separation)
        init_std = 2.0
        mu, logw = jnp.asarray(means), jnp.log(jnp.asarray(weights))
        log_norm = -0.5 * dim * math.log(2.0 * math.pi * var)

        def log_density(x, _data):
            return logsumexp(logw + log_norm - 0.5 * jnp.sum((x[None, :] - mu) ** 2, -1) / var)

        def labels(pos):
            return ((pos[..., None, :] - means) ** 2).sum(-1).argmin(-1)

    # flowMC's dual-moon tutorial settings.
    cfg = dict(
        n_chains=a.n_chains,
        n_local_steps=100,
        n_global_steps=10,
        n_training_loops=20,
        n_production_loops=20,
        n_epochs=5,
        rq_spline_hidden_units=[32, 32],
        rq_spline_n_bins=8,
        rq_spline_n_layers=4,
        learning_rate=5e-3,
        batch_size=5000,
        n_max_examples=5000,
        mala_step_size=0.1,
    )
    key = jax.random.PRNGKey(a.seed)
    key, k_bundle, k_init, k_sampler = jax.random.split(key, 4)
    bundle = RQSpline_MALA_Bundle(rng_key=k_bundle, n_dims=dim, logpdf=log_density, verbose=False, **cfg)
    start = init_std * jax.random.normal(k_init, shape=(a.n_chains, dim))
    sampler = Sampler(
        n_dim=dim,
        n_chains=a.n_chains,
        rng_key=k_sampler,
        resource_strategy_bundles=bundle,
        outdir=f"/tmp/flowmc_modes_{a.target}_{dim}_{a.seed}/",
        checkpoint_interval=0,
    )
    t0 = time.perf_counter()
    sampler.sample(start, {})
    jax.block_until_ready(sampler.resources["positions_production"].data)
    wall = time.perf_counter() - t0

    res = sampler.resources
    pos = np.asarray(res["positions_production"].data)  # [chains, steps, dim]
    if not np.all(np.isfinite(pos)):
        raise SystemExit("flowmc_modes: non-finite production samples")
    k = len(exact)
    label = labels(pos)  # [chains, steps]
    per_chain = np.stack([(label == j).mean(1) for j in range(k)], 1)
    frac = per_chain.mean(0)
    frac_se = per_chain.std(0, ddof=1) / math.sqrt(a.n_chains)
    gacc = np.asarray(res["global_accs_production"].data)
    lacc = np.asarray(res["local_accs_production"].data)
    out = dict(
        target=a.target,
        d=dim,
        separation=a.separation if a.target == "separated" else None,
        tilt=a.tilt if a.target == "phi4_1d" else None,
        seed=a.seed,
        flowmc_version=version("flowMC"),
        jax_version=jax.__version__,
        n_prod_samples=int(label.size),
        mode_frac=[round(float(x), 4) for x in frac],
        mode_frac_se=[round(float(x), 4) for x in frac_se],
        true_w=[float(x) for x in exact],
        modes_found=int((frac > 0).sum()),
        chains_visiting_gt1_mode_prod=int(sum(len(np.unique(r)) > 1 for r in label)),
        global_acc_prod=float(gacc[np.isfinite(gacc)].mean()),
        local_acc_prod=float(lacc[np.isfinite(lacc)].mean()),
        wall_s=round(wall, 2),
        cfg=dict(cfg, init=f"N(0, {init_std**2:g} I)"),
    )
    print(
        f"[{a.target} d={dim} seed={a.seed}] {wall:.1f} s | weights {out['mode_frac']} ± {out['mode_frac_se']} "
        f"(exact {out['true_w']}) | global acc {out['global_acc_prod']:.4f} | local acc {out['local_acc_prod']:.4f}"
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
