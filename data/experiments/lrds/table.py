#!/usr/bin/env python3
"""The LRDS table from results.jsonl: per target and seed, the untrained
reference (h = 0: IS from the EM mixture) and the trained sampler: weight
of mode 0 by IS (± delta-method error, deviation in σ) and by IMH (±
Γ-method error), the worst deviation over all modes, ESS, log Ẑ, wall
times (reference fit + training + IS draws, 2 threads on a shared machine)
and target evaluations per sample ((walker updates + training paths + N)/N).
`--summary`: the means over seeds per target."""
import json
import pathlib
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
path = pathlib.Path(args[0] if args else pathlib.Path(__file__).parent / "results.jsonl")
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


print("| target | seed | reference w₀ | model | IS ŵ₀ ± σ (dev) | worst IS dev | IMH ŵ₀ ± σ (dev) | worst IMH dev | IMH acc | ESS | log Ẑ | train s | wall s | evals/sample |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    n = r["settings"]["n"]
    for m in ["untrained", "trained"]:
        x = r[m]
        evals = (r["walker_evals"] + (r["train_evals"] if m == "trained" else 0) + n) / n
        ts = r["train_seconds"] if m == "trained" else 0.0
        wall = r["reference_seconds"] + ts + x["is_seconds"]
        print(
            f"| {r['target']} | {r['seed']} | {r.get('em_mode_weights', r.get('walker_fractions'))[0]:.3f} | {m} | {w(x, 'is_weights')} | "
            f"{worst(x, 'is_weights'):.1f}σ | {w(x, 'imh_weights')} | {worst(x, 'imh_weights'):.1f}σ | "
            f"{x['imh_acceptance']:.3f} | {x['ess']:.3f} | {x['log_z']:+.3f}±{x['log_z_err']:.3f} | {ts:.0f} | {wall:.0f} | {evals:.0f} |"
        )


if "--summary" in sys.argv:
    print()
    print("| target | model | seeds | ESS (per seed) | IS max abs(ŵ − w) (per seed) | worst IS dev | IMH max abs(ŵ − w) (per seed) | worst IMH dev | IMH acc. | wall s | evals/sample |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    targets = list(dict.fromkeys(r["target"] for r in rows))
    for t in targets:
        rs = [r for r in rows if r["target"] == t]
        n = rs[0]["settings"]["n"]
        for m in ["untrained", "trained"]:
            def err(r, key):
                return max(abs(x["w"] - e) for x, e in zip(r[m][key], r["exact"]) if x.get("w") is not None)
            ess = ", ".join(f"{r[m]['ess']:.2f}" for r in rs)
            ise = ", ".join(f"{err(r, 'is_weights'):.3f}" for r in rs)
            ime = ", ".join(f"{err(r, 'imh_weights'):.3f}" for r in rs)
            wi = max(worst(r[m], "is_weights") for r in rs)
            wm = max(worst(r[m], "imh_weights") for r in rs)
            acc = [r[m]["imh_acceptance"] for r in rs]
            walls = [r["reference_seconds"] + (r["train_seconds"] if m == "trained" else 0) + r[m]["is_seconds"] for r in rs]
            ev = (rs[0]["walker_evals"] + (rs[0]["train_evals"] if m == "trained" else 0) + n) / n
            print(
                f"| {t} | {m} | {len(rs)} | {ess} | {ise} | {wi:.1f}σ | {ime} | {wm:.1f}σ | "
                f"{min(acc):.2f}–{max(acc):.2f} | {min(walls):.0f}–{max(walls):.0f} | {ev:.0f} |"
            )
