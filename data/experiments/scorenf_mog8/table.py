#!/usr/bin/env python3
"""Tables of the runs in results.jsonl (FIELDFLOW_SCAN_DIR, default
target/scorenf_mog8): per run IMH TV and worst deviation, ESS, held-out
NLL − H, and NLL − H split into the part the flow's own mode weights w_k
explain, KL(π‖w) = Σ π_k ln(π_k / w_k) (a flow with the right shapes and
weights w has NLL − H = KL(π‖w) exactly when the modes do not overlap), and
the rest (shapes, overfitting)."""
import json, math, os, sys

root = os.environ.get("FIELDFLOW_SCAN_DIR", "target/scorenf_mog8")
TRUE = {"mog4": [0.1, 0.2, 0.3, 0.4], "mog8": [0.125] * 8, "two_modes": [2 / 3, 1 / 3]}


def label(p):
    l = p["loss"]
    f = p.get("flow") or {}
    parts = [p["kind"] + (str(p["dim"]) if p.get("dim") else ""), f"w_rkl={l['w_rkl']}", f"w_sm={l['w_sm']}"]
    if l.get("w_fkl_is"):
        parts.append(f"w_fkl_is={l['w_fkl_is']}")
    if "sm_cauchy_scale" in l:
        parts.append(f"c0={l['sm_cauchy_scale']}")
    if "coupling" in f:
        parts.append(f"spline{f['coupling']['spline']['bins']}")
    else:
        parts.append("affine")
    if "conditioner" in f:
        parts.append("h" + "x".join(map(str, f["conditioner"]["hidden"])))
    parts.append(f"{p.get('steps', 2000)} steps")
    if p.get("fkl_decay"):
        d = p["fkl_decay"]
        parts.append(f"FKL ×{d['factor']} from {d['start']} over {d['steps']}")
    return " ".join(parts)


rows = [json.loads(l) for l in open(f"{root}/results.jsonl")]
print("| config | seed | IMH TV | worst dev/σ | ESS | NLL − H | KL(π‖w_flow) | rest | collapsed |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    p = r["point"]
    if "error" in r:
        print(f"| {label(p)} | {p['seed']} | error: {r['error'][:60]} |")
        continue
    pi = TRUE[p["kind"]]
    kl = sum(a * math.log(a / max(w, 1e-12)) for a, w in zip(pi, r["flow_w"]))
    d = r["nll_minus_H"]
    print(f"| {label(p)} | {p['seed']} | {r['imh_tv']:.3f} | {r['imh_maxdev_sigma']:.1f} | {r['ess']:.3f} | "
          f"{d:.2f} | {kl:.2f} | {d - kl:.2f} | {r['imh_collapsed']} |")
