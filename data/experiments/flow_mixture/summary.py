"""Per-target summary rows (3 seeds) of run.py's JSON lines, as in docs/RESULTS.md."""
import json, sys
from collections import OrderedDict

rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
g = OrderedDict()
for r in rows:
    t = r["kind"] + (f" d = {r['dim']}" if r["dim"] else "") + (f", s = {r['sep']:g}" if r.get("sep") else "")
    g.setdefault(t, []).append(r)
for t, rs in g.items():
    e0 = "–".join(sorted({f"{r['ess_step0']:.2f}" for r in rs}, key=float)[::max(1, len(rs) - 1)])
    ess = ", ".join(f"{r['ess']:.4f}" for r in rs)
    acc = f"{min(r['imh_acc'] for r in rs):.3f}–{max(r['imh_acc'] for r in rs):.3f}"
    nll = ", ".join("–" if r.get("nll_minus_H") is None else f"{r['nll_minus_H']:+.3f}" for r in rs)
    dev = ", ".join(f"{r['imh_maxdev_sigma']:.1f}σ / {r['imh_tv']:.4f}" for r in rs)
    err = f"{min(min(r['imh_err']) for r in rs):.4f}–{max(max(r['imh_err']) for r in rs):.4f}"
    sec = f"{min(r['train_seconds'] for r in rs):.0f}–{max(r['train_seconds'] for r in rs):.0f}"
    print(f"| {t} | {rs[0]['k']} | {e0} → {ess} | {acc} | {nll} | {dev} | {err} | {sec} |")
