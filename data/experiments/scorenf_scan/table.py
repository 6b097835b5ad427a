#!/usr/bin/env python3
"""Results tables from results.jsonl (the scan directory): one row per run, and one row
per configuration aggregated over seeds. Usage: python3 table.py [TAG...] [--runs]"""
import json, math, os, sys
from collections import defaultdict

RES = os.path.join(os.environ.get("FIELDFLOW_SCAN_DIR", os.path.dirname(os.path.abspath(__file__))), "results.jsonl")


def cfg_key(p):
    L = p["loss"]
    s = f"fkl {L['w_fkl']:g} rkl {L['w_rkl']:g} sm {L['w_sm']:g}" + (f" ({L['sm_on']})" if L.get("sm_on") else "")
    if p.get("flow"):
        f = p["flow"]
        bits = []
        if "coupling" in f:
            sp = f["coupling"]["spline"]
            bits.append(f"spline K{sp['bins']} B{sp['tail_bound']:g}")
        for k in ("n_layers", "conditioner", "base_sigma"):
            if k in f:
                bits.append(f"{k}={f[k]['hidden'] if k == 'conditioner' else f[k]}")
        s += " | " + ",".join(bits)
    if p.get("anneal"):
        s += f" | anneal β0={p['anneal']['beta0']:g}/{p['anneal']['steps']}"
    for k in ("steps", "lr", "batch_size"):
        if k in p:
            s += f" | {k}={p[k]}"
    return s


def fmt_w(ws, errs=None):
    if errs is None:
        return " ".join(f"{w:.3f}" for w in ws)
    return " ".join(f"{w:.3f}±{e:.3f}" for w, e in zip(ws, errs))


def main():
    args = sys.argv[1:]
    runs = "--runs" in args
    tags = [a for a in args if not a.startswith("--")]
    rs = [json.loads(l) for l in open(RES)]
    if tags:
        rs = [r for r in rs if r["tag"] in tags]
    by_target = defaultdict(list)
    for r in rs:
        p = r["point"]
        by_target[p["kind"] + (f" d={p['dim']}" if p.get("dim") else "")].append(r)
    for tgt, rr in by_target.items():
        print(f"\n### {tgt}\n")
        if runs:
            print("| config | seed | flow weights | IMH weights ± err | IMH TV | max dev/σ | collapsed (flow/IMH) | ESS | IMH acc | NLL − H | train s |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for r in rr:
                if "error" in r:
                    print(f"| {cfg_key(r['point'])} | {r['point']['seed']} | error: {r['error'][:80]} |")
                    continue
                print(f"| {cfg_key(r['point'])} | {r['point']['seed']} | {fmt_w(r['flow_w'])} | {fmt_w(r['imh_w'], r['imh_err'])} "
                      f"| {r['imh_tv']:.3f} | {r['imh_maxdev_sigma']:.1f} | {int(r['n_collapsed'])}/{r['imh_collapsed']} | {r['ess']:.3f} "
                      f"| {r.get('imh_acc', float('nan')):.3f} | {r['nll_minus_H']:.3g} | {r['train_seconds']:.0f} |")
        g = defaultdict(list)
        for r in rr:
            if "error" not in r:
                g[cfg_key(r["point"])].append(r)
        print("\nAggregated over seeds (worst = max over seeds; ESS min over seeds; NLL−H median):\n")
        print("| config | seeds | worst IMH TV | worst max|ŵ−w| | worst dev/σ | runs with IMH-collapsed mode | runs with flow-collapsed mode | min ESS | mean ESS | median NLL − H | max NLL − H | mean train s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        rows = []
        for k, v in g.items():
            nll = sorted(x["nll_minus_H"] for x in v)
            rows.append((max(x["imh_tv"] for x in v), k, v, nll))
        for tv, k, v, nll in sorted(rows, key=lambda t: t[0]):
            print(f"| {k} | {','.join(str(x['point']['seed']) for x in v)} | {tv:.3f} | {max(x['imh_maxdev'] for x in v):.3f} "
                  f"| {max(x['imh_maxdev_sigma'] for x in v):.1f} | {sum(1 for x in v if x['imh_collapsed'])} "
                  f"| {sum(1 for x in v if x['n_collapsed'])} | {min(x['ess'] for x in v):.3f} | {sum(x['ess'] for x in v)/len(v):.3f} "
                  f"| {nll[len(nll)//2]:.3g} | {nll[-1]:.3g} | {sum(x['train_seconds'] for x in v)/len(v):.0f} |")


if __name__ == "__main__":
    main()
