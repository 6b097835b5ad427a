"""Summarizes runs/*.json of run.sh into a Markdown table (stdout)."""
import glob
import json
import re

rows = {}
for f in sorted(glob.glob("runs/*.json")):
    b, seed = re.match(r"runs/b([0-9.]+)_seed(\d+)\.json", f).groups()
    rows.setdefault(float(b), []).append((int(seed), json.load(open(f))))

print("| b | exact log(w+/w-) | seed | estimate ± error | pull | Δ = log Z+ − log Z− | log t− | s |")
print("|---|---|---|---|---|---|---|---|")
for b in sorted(rows):
    for seed, r in sorted(rows[b]):
        lr, d, t = r["log_ratio"], r["delta"], r["log_t_minus"]
        pull = r["pull"]
        pull = "exact by symmetry" if b == 0 else f"{pull:+.2f}σ"
        print(
            f"| {b} | {r['exact_log_ratio']:.4f} | {seed} | {lr['value']:.4f} ± {lr['error']:.4f} | {pull} "
            f"| {d['value']:.4f} ± {d['error']:.4f} | {t['value']:.3f} ± {t['error']:.3f} | {r['seconds']:.0f} |"
        )
