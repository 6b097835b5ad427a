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

print()
print("Pooled over seeds (all replicas of all seeds as one set; error = s/√R):")
print()
print("| b | exact | pooled estimate ± error | pull | replicas | seed-to-seed s.d. of the estimate | mean replica error per seed |")
print("|---|---|---|---|---|---|---|")
for b in sorted(rows):
    reps = [v for _, r in rows[b] for v in r["log_ratio"]["replicas"]]
    n = len(reps)
    m = sum(reps) / n
    sd = (sum((v - m) ** 2 for v in reps) / (n - 1)) ** 0.5
    err = sd / n ** 0.5
    exact = rows[b][0][1]["exact_log_ratio"]
    ests = [r["log_ratio"]["value"] for _, r in rows[b]]
    em = sum(ests) / len(ests)
    seed_sd = (sum((e - em) ** 2 for e in ests) / max(len(ests) - 1, 1)) ** 0.5
    mean_err = sum(r["log_ratio"]["error"] for _, r in rows[b]) / len(rows[b])
    pull = "exact by symmetry" if err == 0 or b == 0 else f"{(m - exact) / err:+.2f}σ"
    print(f"| {b} | {exact:.4f} | {m:.4f} ± {err:.4f} | {pull} | {n} | {seed_sd:.4f} | {mean_err:.4f} |")
