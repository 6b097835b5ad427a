"""Markdown table of the L = 16, 32 runs (run.sh): steps, training time,
IMH acceptance, HMC's and IMH's estimates of ⟨|M|⟩, χ₂, ξ₂ with τ_int, the
deviation in σ and the cost per independent sample (training excluded).
Usage: python3 table.py"""
import csv, glob, json, os, re

here = os.path.dirname(os.path.abspath(__file__))
print("| L | λ | steps | train wall / CPU min | ESS (last record) | IMH acc. | observable | HMC (τ) | IMH (τ) | Δ/σ | s/indep. HMC | s/indep. IMH |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for cj in sorted(glob.glob(os.path.join(here, "runs", "L*_s*.compare.json")), key=lambda p: int(re.search(r"L(\d+)", p).group(1))):
    stem = cj[: -len(".compare.json")]
    L = re.search(r"L(\d+)", stem).group(1) + (" free field" if stem.endswith("_ff") else "")
    lam = re.search(r"lambda = ([0-9.]+)", open(stem + ".toml").read()).group(1)
    wall, user, sys_ = map(float, open(stem + ".time").read().split()[:3])
    last = list(csv.DictReader(open(stem + ".model.h5.metrics.csv")))[-1]
    acc = re.search(r"acceptance\s+([0-9.]+)", open(stem + ".sample.log").read()).group(1)
    rows = {r["observable"]: r for r in json.load(open(cj))}
    first = True
    for obs in ["abs_M", "chi2", "xi2", "U4", "mode_0"]:
        r = rows[obs]
        pm = lambda v: f"{v[0]:.4g} ± {v[1]:.2g} ({v[2]:.1f})"
        head = (f"| {L} | {lam} | {last['step']} | {wall / 60:.1f} / {(user + sys_) / 60:.1f} | {float(last['ess']):.3f} | {acc} "
                if first else "| | | | | | ")
        first = False
        print(f"{head}| {obs} | {pm(r['a'])} | {pm(r['b'])} | {r['deviation_sigma']:+.2f} | {r['cost'][0]:.2e} | {r['cost'][1]:.2e} |")
