"""Tables of data/experiments/diffusion/trained_generation (run.sh): per
dimension, L and architecture, the generated χ₂ and G(L/4) errors and the
KL per site at 256 Heun steps (mean ± standard error over seeds), the
ensemble's own χ₂ error, and the Heun steps the exact score needs for
χ₂ within 1 %. Usage: python3 summarize.py > tables.md"""
import json
import math
from collections import defaultdict

ARCHS = ["exact", "one_layer", "two_layer_xi", "local_r1", "local_r2", "gaussian_r1"]


def mean_se(xs):
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    v = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(v / n)


for dim in (2, 1):
    rows = [json.loads(l) for l in open(f"d{dim}.jsonl")]
    sizes = sorted({r["L"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    print(f"\n### d = {dim} ({len(seeds)} seeds; 256 Heun steps; cells: χ₂ error / G(L/4) error, %, mean ± s.e.)\n")
    print("| architecture | " + " | ".join(f"L = {l}" for l in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    data = defaultdict(list)
    for r in rows:
        if r["arch"] == "exact" and r["integrator"] == "heun_ode" and r["reverse_steps"] == 256:
            data[r["L"]].append(100 * r["data_chi2_rel_err"])
    print("| (the ensemble's own χ₂) | " + " | ".join("{:+.1f} ± {:.1f}".format(*mean_se(data[l])) for l in sizes) + " |")
    for arch in ARCHS:
        cells = []
        for l in sizes:
            sel = [r for r in rows if r["arch"] == arch and r["L"] == l and r["integrator"] == "heun_ode" and r["reverse_steps"] == 256]
            if not sel:
                cells.append("–")
                continue
            c = mean_se([100 * r["chi2_rel_err"] for r in sel])
            g = mean_se([100 * r["g_rel_err"] for r in sel])
            k = mean_se([r["kl_per_site"] for r in sel])
            cells.append(f"{c[0]:+.1f} ± {c[1]:.1f} / {g[0]:+.1f} ± {g[1]:.1f} (KL {k[0]:.1e})")
        print(f"| {arch} | " + " | ".join(cells) + " |")
    print("\nHeun steps for χ₂ within 1 % of its 256-step value (the discretization converged; first of 8 … 256), seed 1:\n")
    print("| architecture | " + " | ".join(f"L = {l}" for l in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for arch in ARCHS:
        cells = []
        for l in sizes:
            sel = sorted(
                (r for r in rows if r["arch"] == arch and r["L"] == l and r["integrator"] == "heun_ode" and r["seed"] == seeds[0]),
                key=lambda r: r["reverse_steps"],
            )
            last = 1 + sel[-1]["chi2_rel_err"]
            ok = [r["reverse_steps"] for r in sel if abs((1 + r["chi2_rel_err"]) / last - 1) <= 0.01]
            cells.append(str(ok[0]) if ok else "> 256")
        print(f"| {arch} | " + " | ".join(cells) + " |")
