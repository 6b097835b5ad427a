"""Per-seed summary of `reproduce modes --peers` (runs_modes.csv): for each
target and method, the IMH weight error per seed (TV, and for two modes
|ŵ0 − w0|), its worst deviation in σ, the Γ error of one weight, and the
wall time (training + IMH; flowMC: its whole run). Usage:
python3 compact.py runs_modes.csv"""
import csv, sys
from collections import defaultdict

rows = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1])):
    target, method = r["variant"].split("/", 1)
    rows[(target, method)].append(r)

def f(r, k):
    try:
        return float(r.get(k, "") or "nan")
    except ValueError:
        return float("nan")

print("| target | method | seeds | IMH weight error per seed | worst dev/σ | σ of ŵ₀ | wall s (train + IMH) per seed |")
print("|---|---|---|---|---|---|---|")
for (target, method), rs in rows.items():
    two = "two_modes" in target
    errs = [f(r, "imh_w0_abs_err") if two else f(r, "imh_tv") for r in rs]
    dev = max(f(r, "imh_max_dev_sigma") for r in rs)
    sig = [f(r, "imh_mode_0_err") for r in rs]
    wall = [f(r, "train_seconds") + f(r, "imh_seconds") if method != "flowMC" else f(r, "imh_seconds") for r in rs]
    wall = [w if w == w else f(r, "imh_seconds") for w, r in zip(wall, rs)]
    kind = "|ŵ₀ − ⅔|" if two else "TV"
    print(f"| {target} | {method} | {len(rs)} | {kind} {', '.join(f'{e:.4f}' for e in errs)} | {dev:.1f} | "
          f"{min(sig):.4f}–{max(sig):.4f} | {', '.join(f'{w:.0f}' for w in wall)} |")
