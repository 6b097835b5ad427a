#!/usr/bin/env python3
"""The LRDS table from results.jsonl: per target and seed, the untrained
reference (h = 0: IS from the EM mixture) and the trained sampler: weight
of mode 0 by IS (± delta-method error, deviation in σ) and by IMH (±
Γ-method error), ESS, log Ẑ, wall times, target evaluations per sample."""
import json
import pathlib
import sys

path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent / "results.jsonl")
rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def w(r, key, k=0):
    x = r[key][k]
    if x.get("w") is None:
        return "–"
    dev = "–" if x.get("sigmas") is None else f"{x['sigmas']:+.1f}σ"
    return f"{x['w']:.3f}±{x['err']:.3f} ({dev})"


def worst(r, key):
    """Largest |ŵ − exact|/σ over the modes (∞ where σ = 0 but ŵ ≠ exact)."""
    s = [float("inf") if x.get("sigmas") is None else abs(x["sigmas"]) for x in r[key] if x.get("w") is not None]
    return max(s) if s else float("nan")


print("| target | seed | EM w₀ | model | IS w₀ | max IS dev | IMH w₀ | max IMH dev | IMH acc | ESS | log Ẑ | train s | evals/sample |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    n = r["settings"]["n"]
    for m in ["untrained", "trained"]:
        x = r[m]
        evals = (r["walker_evals"] + (r["train_evals"] if m == "trained" else 0) + n) / n
        ts = r["train_seconds"] if m == "trained" else 0.0
        print(
            f"| {r['target']} | {r['seed']} | {r['em_weights'][0]:.3f} | {m} | {w(x, 'is_weights')} | "
            f"{worst(x, 'is_weights'):.1f}σ | {w(x, 'imh_weights')} | {worst(x, 'imh_weights'):.1f}σ | "
            f"{x['imh_acceptance']:.3f} | {x['ess']:.3f} | {x['log_z']:+.3f}±{x['log_z_err']:.3f} | {ts:.0f} | {evals:.0f} |"
        )
