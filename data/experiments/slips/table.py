#!/usr/bin/env python3
"""Tables of the SLIPS benchmark (results.jsonl of driver.py), in Markdown:
the t0 scan per target, then the final runs per seed with the mean over
seeds.

Two modes: ŵ₀ ± binomial error, |ŵ₀ − ⅔| and its deviation in σ. MOG:
total variation and the largest deviation in σ. 1D φ⁴: log(w₊/w₋) with
the error √(1/n₊ + 1/n₋) from the counts, against the transfer-operator
value.
"""
import json
import math
import os
import sys
from statistics import NormalDist

HERE = os.path.dirname(os.path.abspath(__file__))


def describe(r):
    w, e, ex = r["weights"], r["binomial_errors"], r["exact"]
    if r["target"].startswith("phi4_1d"):
        if "log_ratio" in r:
            dev = (r["log_ratio"] - r["log_ratio_exact"]) / r["log_ratio_error"]
            return (f"log(w₊/w₋) = {r['log_ratio']:+.3f} ± {r['log_ratio_error']:.3f} "
                    f"(exact {r['log_ratio_exact']:+.3f}, {dev:+.1f}σ); counts {r['counts']}")
        return f"minority mode unseen: counts {r['counts']} (exact log ratio {r['log_ratio_exact']:+.3f})"
    if len(w) == 2:
        err = w[0] - ex[0]
        return f"ŵ₀ = {w[0]:.4f} ± {e[0]:.4f}, ŵ₀ − ⅔ = {err:+.4f} ({err / e[0]:+.1f}σ)"
    tv = 0.5 * sum(abs(a - b) for a, b in zip(w, ex))
    dev = max(abs(a - b) / s for a, b, s in zip(w, ex, e) if s > 0)
    return f"TV = {tv:.4f}, worst {dev:.1f}σ, ŵ = {[round(x, 3) for x in w]}"


def start_prediction(r):
    """Two modes: ŵ₀ if every particle ends in the mode nearest to its
    start y/α(t₀), y ~ N(0, σ²t₀ I) (README.md, "Where the weights are
    decided"): Φ(√d g(t₀)/(3σ)), g² = t₀/(1 − t₀) (geometric (1, 1))."""
    d = int(r["target"].split(":")[1])
    g = math.sqrt(r["t0"] / (1 - r["t0"]))
    return NormalDist().cdf(math.sqrt(d) * g / (3 * r["sigma"]))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results.jsonl")
    rs = [json.loads(line) for line in open(path)]
    targets = list(dict.fromkeys(r["target"] for r in rs))
    print("## t0 scan (seed 100)\n")
    print("| target | t0 | particles | result | s | evals/sample | MCMC acc |")
    print("|---|---|---|---|---|---|---|")
    for t in targets:
        for r in sorted((r for r in rs if r["target"] == t and r["phase"] == "scan"), key=lambda r: r["t0"]):
            print(f"| {t} | {r['t0']} | {r['particles']} | {describe(r)} | {r['wall_seconds']:.1f} | "
                  f"{r['evaluations_per_sample']:.0f} | {r['mcmc_acceptance']:.3f} |")
    start = [r for r in rs if r["phase"] == "start"]
    if start:
        print("\n## longer start (seed 100): initial Langevin steps instead of 10\n")
        print("| target | t0 | init Langevin | result | s | evals/sample |")
        print("|---|---|---|---|---|---|")
        for r in start:
            print(f"| {r['target']} | {r['t0']} | {r['init_langevin']} | {describe(r)} | "
                  f"{r['wall_seconds']:.1f} | {r['evaluations_per_sample']:.0f} |")
    print("\n## two modes: measured ŵ₀ against the start-only prediction Φ(√d g(t₀)/(3σ))\n")
    print("| target | phase | seed | t0 | steps | ŵ₀ | prediction | (ŵ₀ − pred)/σ |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rs:
        if r["target"].startswith("two_modes") and r["phase"] in ("scan", "fixed", "final", "paper"):
            p = start_prediction(r)
            print(f"| {r['target']} | {r['phase']} | {r['seed']} | {r['t0']} | {r['steps']} | "
                  f"{r['weights'][0]:.4f} ± {r['binomial_errors'][0]:.4f} | {p:.4f} | "
                  f"{(r['weights'][0] - p) / r['binomial_errors'][0]:+.1f} |")
    paper = [r for r in rs if r["phase"] == "paper"]
    if paper:
        print("\n## the paper code's MCMC step rule and Euler drift (phase paper)\n")
        print("| target | seed | t0 | steps | particles | result | s | evals/sample | MCMC acc |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in sorted(paper, key=lambda r: (r["target"], r["t0"], r["seed"])):
            print(f"| {r['target']} | {r['seed']} | {r['t0']} | {r['steps']} | {r['particles']} | {describe(r)} | "
                  f"{r['wall_seconds']:.1f} | {r['evaluations_per_sample']:.0f} | {r['mcmc_acceptance']:.3f} |")
    print("\n## final runs (fresh seeds, t0 chosen by the scan)\n")
    print("| target | seed | t0 | particles | result | s | evals/sample |")
    print("|---|---|---|---|---|---|---|")
    for t in targets:
        fin = [r for r in rs if r["target"] == t and r["phase"] == "final"]
        fixed = [r for r in rs if r["target"] == t and r["phase"] == "fixed"]
        for r in fin:
            print(f"| {t} | {r['seed']} | {r['t0']} | {r['particles']} | {describe(r)} | "
                  f"{r['wall_seconds']:.1f} | {r['evaluations_per_sample']:.0f} |")
        if len(fin) > 1 and len(fin[0]["weights"]) == 2 and not t.startswith("phi4_1d"):
            errs = [abs(r["weights"][0] - r["exact"][0]) for r in fin]
            m = sum(errs) / len(errs)
            se = math.sqrt(sum((x - m) ** 2 for x in errs) / (len(errs) - 1) / len(errs))
            print(f"| {t} | mean | | | mean abs(ŵ₀ − ⅔) = {m:.4f} ± {se:.4f}, worst {max(errs):.4f} | | |")
        for r in fixed:
            print(f"| {t} (t0 fixed) | {r['seed']} | {r['t0']} | {r['particles']} | {describe(r)} | "
                  f"{r['wall_seconds']:.1f} | {r['evaluations_per_sample']:.0f} |")
    weighted = [r for r in rs if r["phase"] == "weights"]
    if weighted:
        print("\n## two modes with other weights (phase weights; t0 tuned for ⅔)\n")
        print("| d | target w₀ | t0 | seed | particles | ŵ₀ | ŵ₀ − w₀ | start prediction | (ŵ₀ − pred)/σ |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in sorted(weighted, key=lambda r: (int(r["target"].split(":")[1]), r["exact"][0], r["seed"])):
            w, e, ex = r["weights"][0], r["binomial_errors"][0], r["exact"][0]
            pred = start_prediction(r)
            print(f"| {r['target'].split(':')[1]} | {ex:.4f} | {r['t0']} | {r['seed']} | {r['particles']} | "
                  f"{w:.4f} ± {e:.4f} | {w - ex:+.4f} ({(w - ex) / e:+.1f}σ) | {pred:.4f} | {(w - pred) / e:+.1f} |")


if __name__ == "__main__":
    main()
