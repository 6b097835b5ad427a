#!/usr/bin/env python3
"""Issue 14 scan driver: train (ff train) -> IMH (ff sample) -> ff analyze --json.

Every run is named by a config string; results are appended to
ROOT/results.jsonl (one JSON object per run) and cached: a run whose
result already exists is not repeated. Usage:

    python3 driver.py STAGE [--jobs 2]

STAGE selects a list of points defined in `stages()` below. `table.py`
(or `python3 driver.py table`) prints the results tables.
"""
import csv, json, math, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor

# Where runs go (override with FIELDFLOW_SCAN_DIR) and the CLI binary
# (override with FIELDFLOW_BIN; default: this checkout's release build).
ROOT = os.environ.get("FIELDFLOW_SCAN_DIR", "target/scorenf_scan")
FF = os.environ.get("FIELDFLOW_BIN", "target/release/fieldflow")
RES = f"{ROOT}/results.jsonl"

TRUE_W = {
    "mog4": [0.1, 0.2, 0.3, 0.4],
    "mog8": [0.125] * 8,
    "two_modes": [2 / 3, 1 / 3],
}


def entropy(kind, dim):
    """Differential entropy of the target (modes well separated: the sum of
    the component entropies and the mixing entropy)."""
    H = lambda w: -sum(x * math.log(x) for x in w)
    if kind == "mog4":
        return 1 + math.log(2 * math.pi * 0.5) + H(TRUE_W["mog4"])
    if kind == "mog8":
        return 1 + math.log(2 * math.pi * 0.7) + H(TRUE_W["mog8"])
    if kind == "two_modes":
        return 0.5 * dim * (1 + math.log(2 * math.pi * 0.05)) + H(TRUE_W["two_modes"])
    raise ValueError(kind)


def toml_val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_val(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_val(x) for x in v) + "]"
    return repr(v)


def config_text(p):
    """The TOML config of point p (a dict, see `point`)."""
    kind, dim = p["kind"], p.get("dim")
    steps = p.get("steps", 2000)
    lines = [f"seed = {p['seed']}", "checkpoint_every = 1000000", "", "[target]", f'kind = "{kind}"']
    if dim is not None:
        lines.append(f"dim = {dim}")
    lines += ["", "[data]", "exact = true", f"n_train = {p.get('n_train', 100)}", "n_heldout = 5000", ""]
    if p.get("flow"):
        lines.append("[flow]")
        for k, v in p["flow"].items():
            lines.append(f"{k} = {toml_val(v)}")
        lines.append("")
    lines += [
        "[train]",
        f"loss = {toml_val(p['loss'])}",
        f"batch_size = {p.get('batch_size', 256)}",
        f"steps = {steps}",
        f"lr = {p.get('lr', 2e-3)}",
        "clip_grad_norm = 100.0",
        f"metrics_every = {steps}",
        "eval_batch = 4096",
        "",
        "[train.lr_schedule]",
        'kind = "cosine"',
        f"total_steps = {steps}",
        "min_lr = 1e-5",
    ]
    if p.get("anneal"):
        lines += ["", "[train.annealing]"] + [f"{k} = {toml_val(v)}" for k, v in p["anneal"].items()]
    if p.get("fkl_decay"):
        lines += ["", "[train.fkl_decay]"] + [f"{k} = {toml_val(v)}" for k, v in p["fkl_decay"].items()]
    return "\n".join(lines) + "\n"


def name_of(p):
    parts = [p["kind"] + (f"{p['dim']}" if p.get("dim") else "")]
    parts.append("L" + "_".join(f"{k}{v}" for k, v in p["loss"].items()))
    if p.get("flow"):
        parts.append("F" + json.dumps(p["flow"], sort_keys=True).translate(str.maketrans("", "", ' "{}[]:,=')))
    if p.get("anneal"):
        parts.append("A" + "_".join(str(v) for v in p["anneal"].values()))
    if p.get("fkl_decay"):
        parts.append("D" + "_".join(str(v) for v in p["fkl_decay"].values()))
    for k in ("steps", "lr", "batch_size", "n_train"):
        if k in p:
            parts.append(f"{k}{p[k]}")
    parts.append(f"s{p['seed']}")
    return "-".join(parts).replace("/", "_")


def done():
    out = {}
    if os.path.exists(RES):
        for line in open(RES):
            r = json.loads(line)
            out[r["name"]] = r
    return out


def run(p, tag):
    name = name_of(p)
    d = f"{ROOT}/runs/{name}"
    os.makedirs(d, exist_ok=True)
    cfg = f"{d}/config.toml"
    open(cfg, "w").write(config_text(p))
    t0 = time.time()
    tr = subprocess.run([FF, "train", "--config", cfg, "--seed", str(p["seed"]), "--out", f"{d}/m.h5", "--force", "-q"],
                        capture_output=True, text=True)
    t_train = time.time() - t0
    r = {"name": name, "tag": tag, "point": p, "train_seconds": round(t_train, 1)}
    if tr.returncode != 0:
        r["error"] = tr.stderr.strip()[-400:]
        return r
    with open(f"{d}/m.h5.metrics.csv") as f:
        rows = list(csv.DictReader(f))
    last = {k: float(v) for k, v in rows[-1].items()}
    k = len(TRUE_W[p["kind"]])
    r["flow_w"] = [last[f"mode_weight_{i}"] for i in range(k)]
    for key in ("ess", "acceptance", "nll", "rkl_estimate", "n_collapsed", "tv_distance", "fkl", "rkl", "sm"):
        r[key] = last.get(key)
    r["nll_minus_H"] = last["nll"] - entropy(p["kind"], p.get("dim"))
    sm = subprocess.run([FF, "sample", "--model", f"{d}/m.h5", "--method", "imh", "--n", "20000", "--chains", "4",
                         "--seed", str(p["seed"]), "--out", f"{d}/s.h5", "--force"], capture_output=True, text=True)
    if sm.returncode != 0:
        r["error"] = sm.stderr.strip()[-400:]
        return r
    for line in sm.stdout.splitlines():
        if line.startswith("acceptance"):
            r["imh_acc"] = float(line.split()[1])
    an = subprocess.run([FF, "analyze", f"{d}/s.h5", "--json"], capture_output=True, text=True)
    rows = json.loads(an.stdout)[0]["rows"]
    modes = {x["observable"]: x for x in rows if x["observable"].startswith("mode_")}
    tw = TRUE_W[p["kind"]]
    r["imh_w"] = [modes[f"mode_{i}"]["value"] for i in range(k)]
    r["imh_err"] = [modes[f"mode_{i}"]["error"] for i in range(k)]
    r["imh_tau"] = [modes[f"mode_{i}"]["tau_int"] for i in range(k)]
    r["imh_tv"] = 0.5 * sum(abs(a - b) for a, b in zip(r["imh_w"], tw))
    r["imh_collapsed"] = sum(1 for a, b in zip(r["imh_w"], tw) if a < 0.5 * b)
    # deviation in sigma; a zero error (a mode never visited / never left) counts as infinite
    r["imh_maxdev_sigma"] = max(abs(a - b) / e if e > 0 else math.inf
                                for a, b, e in zip(r["imh_w"], tw, r["imh_err"]))
    r["imh_maxdev"] = max(abs(a - b) for a, b in zip(r["imh_w"], tw))
    return r


def lossd(w_fkl, w_rkl, w_sm, sm_on="data"):
    d = {"w_fkl": w_fkl, "w_rkl": w_rkl, "w_sm": w_sm}
    if w_sm > 0:
        d["sm_on"] = sm_on
    return d


SPLINE = {"coupling": {"spline": {"bins": 8, "tail_bound": 6.0}}}


def stages():
    S = {}
    pts = []
    # Stage 1: MOG-4 weight scan, 2 seeds
    grid = [(0, 1, 1, "data"), (0, 0, 1, "data"), (0, 1, 10, "data"), (0, 0.1, 1, "flow"), (1, 0, 0, "data")]
    for w_rkl in (0, 0.1, 1):
        for w_sm in (0.1, 1, 10):
            for on in ("data", "flow"):
                grid.append((1, w_rkl, w_sm, on))
    grid += [(1, 0.1, 0, "data"), (1, 1, 0, "data")]
    for g in grid:
        for s in (1, 2):
            pts.append({"kind": "mog4", "loss": lossd(*g), "seed": s})
    S["mog4_scan"] = pts
    # Stage 2: MOG-4 refinement, 3 seeds: small SM(flow) weights, spline, annealing
    pts = []
    ANN = {"kind": "geometric", "beta0": 0.1, "steps": 1000}
    for s in (1, 2, 3):
        for g in [(1, 0, 0.1, "flow"), (1, 0.1, 0.1, "flow"), (1, 1, 0.1, "flow"),
                  (1, 0, 0.03, "flow"), (1, 0, 0.3, "flow")]:
            pts.append({"kind": "mog4", "loss": lossd(*g), "seed": s})
        for g in [(1, 0, 0.1, "flow"), (1, 0.1, 0.1, "flow")]:
            pts.append({"kind": "mog4", "loss": lossd(*g), "flow": SPLINE, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(0, 1, 1, "data"), "anneal": ANN, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0.1, "flow"), "anneal": ANN, "seed": s})
    S["mog4_refine"] = pts
    # Stage 3: two modes in d = 16 (weights 2/3, 1/3)
    pts = []
    for s in (1, 2, 3):
        for g, ann in [((0, 1, 1, "data"), None), ((1, 0, 0, "data"), None), ((1, 0, 0.1, "flow"), None),
                       ((1, 0.1, 0.1, "flow"), ANN), ((1, 0, 1, "data"), None), ((1, 0.1, 10, "data"), None),
                       ((0, 1, 1, "data"), ANN)]:
            p = {"kind": "two_modes", "dim": 16, "loss": lossd(*g), "seed": s}
            if ann:
                p["anneal"] = ann
            pts.append(p)
    S["two16"] = pts
    # Stage 4: MOG-4, variants of the annealed FKL + SM(flow) recipe
    pts = []
    ANN01 = {"kind": "geometric", "beta0": 0.01, "steps": 1000}
    for s in (1, 2, 3):
        pts.append({"kind": "mog4", "loss": lossd(1, 0, 0.1, "flow"), "anneal": ANN, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0.3, "flow"), "anneal": ANN, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 1, 0.1, "flow"), "anneal": ANN, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0.1, "flow"), "anneal": ANN, "flow": SPLINE, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0.1, "flow"), "anneal": ANN01, "seed": s})
    S["mog4_ann"] = pts
    # Stage 5: MOG-8 (modes on the circle of radius 10)
    pts = []
    for s in (1, 2, 3):
        for g, ann in [((0, 1, 1, "data"), None), ((1, 0, 0, "data"), None), ((1, 0.1, 0.1, "flow"), ANN),
                       ((1, 0, 1, "data"), None), ((1, 0, 0.1, "flow"), ANN)]:
            p = {"kind": "mog8", "loss": lossd(*g), "seed": s}
            if ann:
                p["anneal"] = ann
            pts.append(p)
    S["mog8"] = pts
    # Stage 6: two modes, d = 32 and 64
    pts = []
    for d in (32, 64):
        for s in (1, 2, 3):
            for g, ann in [((1, 0.1, 0.1, "flow"), ANN), ((1, 0, 1, "data"), None), ((0, 1, 1, "data"), None)]:
                p = {"kind": "two_modes", "dim": d, "loss": lossd(*g), "seed": s}
                if ann:
                    p["anneal"] = ann
                pts.append(p)
    S["two_hi"] = pts
    # Stage 7: ablations of the annealed recipe (which ingredient matters)
    pts = []
    for s in (1, 2, 3):
        for kind, dim in (("mog4", None), ("two_modes", 16)):
            for g, ann in [((1, 0.1, 0, "data"), ANN), ((1, 0.1, 0.1, "data"), ANN)]:
                p = {"kind": kind, "loss": lossd(*g), "anneal": ann, "seed": s}
                if dim:
                    p["dim"] = dim
                pts.append(p)
        pts.append({"kind": "two_modes", "dim": 16, "loss": lossd(1, 0, 0.1, "flow"), "anneal": ANN, "seed": s})
        pts.append({"kind": "two_modes", "dim": 16, "loss": lossd(1, 0.1, 0.1, "flow"), "seed": s})
    S["ablate"] = pts
    # Stage 8: spline couplings without SM(flow), to isolate the spline + SM(flow) failure
    pts = []
    SPL10 = {"coupling": {"spline": {"bins": 8, "tail_bound": 10.0}}}
    for s in (1, 2):
        pts.append({"kind": "mog4", "loss": lossd(1, 0, 0), "flow": SPLINE, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 0, 1, "data"), "flow": SPLINE, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0), "anneal": ANN, "flow": SPLINE, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0.1, "flow"), "anneal": ANN, "flow": SPL10, "seed": s})
    S["spline"] = pts
    # Stage 9: the recipe on more seeds, and with a longer budget
    pts = []
    ANN4 = {"kind": "geometric", "beta0": 0.1, "steps": 2000}
    for s in (4, 5, 6):
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0.1, "flow"), "anneal": ANN, "seed": s})
        pts.append({"kind": "mog4", "loss": lossd(1, 1, 0.1, "flow"), "anneal": ANN, "seed": s})
    for s in (1, 2, 3):
        pts.append({"kind": "mog4", "loss": lossd(1, 0.1, 0.1, "flow"), "anneal": ANN4, "steps": 4000, "seed": s})
    S["mog4_more"] = pts
    # Stage 10: two modes in d = 32, 64 with the SM(flow) weight scaled by 16/d
    pts = []
    for d, w in ((32, 0.05), (64, 0.025)):
        for s in (1, 2, 3):
            pts.append({"kind": "two_modes", "dim": d, "loss": lossd(1, 0.1, w, "flow"), "anneal": ANN, "seed": s})
    S["two_hi2"] = pts
    # Stage 11: MOG-8 with a longer budget and with w_rkl = 1
    pts = []
    for s in (1, 2, 3):
        pts.append({"kind": "mog8", "loss": lossd(1, 0.1, 0.1, "flow"), "anneal": ANN4, "steps": 4000, "seed": s})
        pts.append({"kind": "mog8", "loss": lossd(1, 1, 0.1, "flow"), "anneal": ANN, "seed": s})
    S["mog8_more"] = pts
    # Stage 12: two modes in d = 32, 64 without RKL (no RKL was best in d = 16)
    pts = []
    for d, seeds in ((32, (1, 2, 3)), (64, (1, 2))):
        for s in seeds:
            pts.append({"kind": "two_modes", "dim": d, "loss": lossd(1, 0, 0.1, "flow"), "anneal": ANN, "seed": s})
    S["two_hi3"] = pts
    # Stage 13: the w_rkl = 1 variant (best on MOG-8) on two modes d = 16
    pts = [{"kind": "two_modes", "dim": 16, "loss": lossd(1, 1, 0.1, "flow"), "anneal": ANN, "seed": s} for s in (1, 2, 3)]
    S["two16_rkl1"] = pts
    # Stage 14: w_rkl = 0.3, between the MOG-8 (1) and two-modes (<= 0.1) optima
    pts = []
    for s in (1, 2, 3):
        pts.append({"kind": "mog8", "loss": lossd(1, 0.3, 0.1, "flow"), "anneal": ANN, "seed": s})
        pts.append({"kind": "two_modes", "dim": 16, "loss": lossd(1, 0.3, 0.1, "flow"), "anneal": ANN, "seed": s})
    S["rkl03"] = pts
    return S


def main():
    args = sys.argv[1:]
    stage = args[0]
    jobs = int(args[args.index("--jobs") + 1]) if "--jobs" in args else 2
    pts = stages()[stage]
    have = done()
    todo = [p for p in pts if name_of(p) not in have]
    print(f"{stage}: {len(pts)} points, {len(todo)} to run", flush=True)
    t0 = time.time()
    with ThreadPoolExecutor(jobs) as ex:
        for r in ex.map(lambda p: run(p, stage), todo):
            with open(RES, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"[{time.time()-t0:6.0f}s] {r['name']}: " + (r.get("error") or
                  f"flow_w={[round(x,3) for x in r['flow_w']]} imh_w={[round(x,3) for x in r['imh_w']]} "
                  f"tv={r['imh_tv']:.3f} ess={r['ess']:.3f} dNLL={r['nll_minus_H']:.2f} t={r['train_seconds']}"),
                  flush=True)


def main_with(stages_fn):
    """`main` over the stages of another driver (`STAGE [--jobs N]`, one job by default)."""
    global stages
    args = sys.argv[1:]
    jobs = int(args[args.index("--jobs") + 1]) if "--jobs" in args else 1
    stages = stages_fn
    sys.argv = [sys.argv[0], args[0], "--jobs", str(jobs)]
    main()


if __name__ == "__main__":
    main()
