"""Markdown table of the default-recipe runs (run.sh): per set and seed the
resolved steps, training wall / CPU time, the last training metrics, the IMH
acceptance and τ_int of |M| and χ₂ from `analyze`. Usage: python3 table.py"""
import csv, glob, json, os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
ANCHOR = {"e1": (0.51, 0.60), "e2": (0.475, 0.55), "e3": (0.431, 0.50), "e4": (0.293, 0.40), "e5": (0.264, 0.35)}
rows = []
for tfile in sorted(glob.glob(os.path.join(here, "runs", "*.time"))):
    stem = tfile[:-5]
    name = os.path.basename(stem)
    m = re.match(r"(e\d)_s(\d+)(_ff)?$", name)
    if not m or not os.path.exists(stem + ".sample.log"):
        continue
    s, seed = m.group(1), m.group(2) + (" free field" if m.group(3) else "")
    wall, user, sys_ = map(float, open(tfile).read().split()[:3])
    metrics = list(csv.DictReader(open(stem + ".model.h5.metrics.csv")))
    last = metrics[-1]
    acc = float(re.search(r"acceptance\s+([0-9.]+)", open(stem + ".sample.log").read()).group(1))
    tau = {}
    try:
        a = json.load(open(stem + ".analyze.json"))[0]
        tau = {r["observable"]: (r["tau_int"], r["tau_int_error"]) for r in a["rows"]}
    except (OSError, ValueError, IndexError):
        pass
    lo, hi = ANCHOR[s]
    fmt_tau = lambda k: "%.1f ± %.1f" % tau[k] if k in tau else "–"
    rows.append(
        f"| {s.upper()} | {seed} | {last['step']} | {wall / 60:.1f} / {(user + sys_) / 60:.1f} | "
        f"{float(last['ess']):.3f} | **{acc:.3f}** ({lo} {'✓' if acc >= lo else '✗'}; {hi} {'✓' if acc >= hi else '✗'}) | "
        f"{fmt_tau('abs_M')} | {fmt_tau('chi2')} | {last['total_rejections']} |"
    )
print("| set | seed | steps | train wall / CPU min | ESS (2048, last record) | IMH acceptance 4 × 25 000 (anchor; beyond) "
      "| τ_int \\|M\\| IMH | τ_int χ₂ IMH | rejected steps |")
print("|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
