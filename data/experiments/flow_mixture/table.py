"""Summary table of run.py's JSON lines: python3 table.py results_gauss.jsonl results_more.jsonl"""
import json, sys

rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
print("| target | seed | ESS step 0 → trained | IMH acc. | NLL − H | IMH weights (± error) | exact | worst dev/σ | TV | train s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if "error" in r:
        print(f"| {r['name']} | {r['seed']} | error: {r['error'][:80]} |")
        continue
    t = r["kind"] + (f" d={r['dim']}" if r["dim"] else "") + (f" s={r['sep']}" if r.get("sep") else "") + \
        (" (no samples: walkers)" if r.get("locate") else "")
    w = ", ".join(f"{a:.4f}±{e:.4f}" for a, e in zip(r["imh_w"], r["imh_err"])) if len(r["imh_w"]) <= 4 else \
        f"{min(r['imh_w']):.4f} … {max(r['imh_w']):.4f} (±{max(r['imh_err']):.4f})"
    ex = r.get("exact_w")
    ex = ", ".join(f"{x:.4f}" for x in ex) if ex and len(ex) <= 4 else ("0.125 × 8" if ex else "")
    nll = "–" if r.get("nll_minus_H") is None else "%+.3f" % r["nll_minus_H"]
    e0 = r.get("ess_step0")
    e0 = f"{e0:.3f} → " if e0 is not None else ""
    print(f"| {t} | {r['seed']} | {e0}{r['ess']:.4f} | {r['imh_acc']:.3f} | {nll} | {w} | {ex} | "
          f"{r['imh_maxdev_sigma']:.2f} | {r['imh_tv']:.4f} | {r['train_seconds']} |")
