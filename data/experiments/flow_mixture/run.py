"""Mixture of flows (issue 14): train (ff train) -> IMH 4 x 20000 (ff sample) -> ff analyze --json.
python3 run.py [--quick] > results.jsonl   (one JSON line per run; resumable: runs already in
results.jsonl are skipped when it is given with --skip results.jsonl)"""
import csv, json, math, os, subprocess, sys, time

FF = os.path.join(os.path.dirname(__file__), "../../../target/release/fieldflow")
TRUE_W = {"mog4": [0.1, 0.2, 0.3, 0.4], "mog8": [0.125] * 8, "two_modes": [2 / 3, 1 / 3]}


def entropy_1d(logp, lo, hi, n=200000):
    """-∫ p log p of a normalized 1-D density given by log p̃ (trapezoid on a fine grid)."""
    h = (hi - lo) / n
    xs = [lo + i * h for i in range(n + 1)]
    lp = [logp(x) for x in xs]
    m = max(lp)
    z = sum(math.exp(v - m) for v in lp) * h
    log_z = m + math.log(z)
    return -sum(math.exp(v - log_z) * (v - log_z) for v in lp) * h


GAUSS_H = 0.5 * (1 + math.log(2 * math.pi))


def entropy(kind, dim, sep=None):
    H = lambda w: -sum(x * math.log(x) for x in w)
    if kind == "mog4":
        return 1 + math.log(2 * math.pi * 0.5) + H(TRUE_W["mog4"])
    if kind == "mog8":
        return 1 + math.log(2 * math.pi * 0.7) + H(TRUE_W["mog8"])
    if kind == "double_well":  # u = -0.5 x1 - 6 x1^2 + x1^4 + x2^2/2
        return entropy_1d(lambda x: -(-0.5 * x - 6 * x * x + x ** 4), -4, 4) + GAUSS_H
    if kind == "separated_mixture":  # two equal unit Gaussians sep apart along the diagonal
        a = sep / 2
        lp = lambda x: math.log(0.5 * math.exp(-0.5 * (x - a) ** 2) + 0.5 * math.exp(-0.5 * (x + a) ** 2))
        return entropy_1d(lp, -a - 12, a + 12) + (dim - 1) * GAUSS_H
    return 0.5 * dim * (1 + math.log(2 * math.pi * 0.05)) + H(TRUE_W["two_modes"])


def config(kind, dim, k, seed, steps, loss, sep=None, locate=False):
    tgt = f'kind = "{kind}"' + (f"\ndim = {dim}" if dim else "") + (f"\nseparation = {sep}" if sep else "")
    if locate:  # no target sample: MALA walkers find the modes
        data = ""
        mix = f"mixture = {{ components = {k}, locate = {{ walkers = 256, sigma = 3.0, steps = 300 }} }}"
    else:
        data = "[data]\nexact = true\nn_train = 100\nn_heldout = 5000\n"
        mix = f"mixture = {{ components = {k} }}"
    return f"""seed = {seed}
checkpoint_every = 100000

[target]
{tgt}

{data}
[flow]
{mix}

[train]
loss = {{ preset = "{loss}" }}
batch_size = 256
steps = {steps}
lr = 2e-3
clip_grad_norm = 100.0
metrics_every = {steps}
eval_batch = 4096

[train.lr_schedule]
kind = "cosine"
total_steps = {steps}
min_lr = 1e-5
"""


def run(kind, dim, k, seed, steps=1000, loss="rkl", sep=None, locate=False):
    name = f"{kind}{dim or ''}{'_sep' + str(sep) if sep else ''}_k{k}_{loss}{'_locate' if locate else ''}_s{seed}"
    d = f"/tmp/flow_mixture/{name}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/c.toml", "w") as f:
        f.write(config(kind, dim, k, seed, steps, loss, sep, locate))
    t0 = time.time()
    tr = subprocess.run([FF, "train", "--config", f"{d}/c.toml", "--seed", str(seed), "--out", f"{d}/m.h5", "--force", "-q"],
                        capture_output=True, text=True)
    r = {"name": name, "kind": kind, "dim": dim, "sep": sep, "k": k, "locate": locate, "seed": seed, "steps": steps, "loss": loss,
         "train_seconds": round(time.time() - t0, 1)}
    if tr.returncode != 0:
        r["error"] = tr.stderr.strip()[-400:]
        return r
    with open(f"{d}/m.h5.metrics.csv") as f:
        last = {a: float(b) for a, b in list(csv.DictReader(f))[-1].items()}
    for key in ("ess", "acceptance", "nll"):
        r[key] = last.get(key)
    r["nll_minus_H"] = last["nll"] - entropy(kind, dim, sep) if last["nll"] == last["nll"] else None
    with open(f"{d}/m.h5.metrics.csv") as f:
        first = {a: float(b) for a, b in list(csv.DictReader(f))[0].items()}
    r["ess_step0"] = first.get("ess")
    t0 = time.time()
    sm = subprocess.run([FF, "sample", "--model", f"{d}/m.h5", "--method", "imh", "--n", "20000", "--chains", "4",
                         "--seed", str(seed), "--out", f"{d}/s.h5", "--force"], capture_output=True, text=True)
    r["sample_seconds"] = round(time.time() - t0, 1)
    if sm.returncode != 0:
        r["error"] = sm.stderr.strip()[-400:]
        return r
    for line in sm.stdout.splitlines():
        if line.startswith("acceptance"):
            r["imh_acc"] = float(line.split()[1])
    an = subprocess.run([FF, "analyze", f"{d}/s.h5", "--json"], capture_output=True, text=True)
    rows = json.loads(an.stdout)[0]["rows"]
    modes = {x["observable"]: x for x in rows if x["observable"].startswith("mode_")}
    tw = [modes[f"mode_{i}"]["exact"] for i in range(len(modes))]
    r["exact_w"] = tw
    r["imh_w"] = [modes[f"mode_{i}"]["value"] for i in range(len(tw))]
    r["imh_err"] = [modes[f"mode_{i}"]["error"] for i in range(len(tw))]
    r["imh_tv"] = 0.5 * sum(abs(a - b) for a, b in zip(r["imh_w"], tw))
    r["imh_maxdev_sigma"] = max(abs(a - b) / e if e > 0 else math.inf for a, b, e in zip(r["imh_w"], tw, r["imh_err"]))
    r["imh_maxdev"] = max(abs(a - b) for a, b in zip(r["imh_w"], tw))
    return r


if __name__ == "__main__":
    done = set()
    if "--skip" in sys.argv:
        with open(sys.argv[sys.argv.index("--skip") + 1]) as f:
            done = {json.loads(l)["name"] for l in f if l.strip()}
    grid = [("mog4", None, 4, None), ("mog8", None, 8, None)] + [("two_modes", d, 2, None) for d in (16, 32, 64, 128)]
    grid += [("double_well", None, 2, None), ("separated_mixture", 8, 2, 4.0), ("separated_mixture", 8, 2, 8.0)]
    seeds = (1,) if "--quick" in sys.argv else (1, 2, 3)
    locate = "--locate" in sys.argv  # no samples: the modes found by MALA walkers
    if locate:
        grid = [("mog4", None, 4, None), ("mog8", None, 8, None)] + [("two_modes", d, 2, None) for d in (16, 32, 64, 128)]
        grid += [("double_well", None, 2, None)]
    for kind, dim, k, sep in grid:
        for s in seeds:
            name = f"{kind}{dim or ''}{'_sep' + str(sep) if sep else ''}_k{k}_rkl{'_locate' if locate else ''}_s{s}"
            if name in done:
                continue
            print(json.dumps(run(kind, dim, k, s, sep=sep, locate=locate)), flush=True)
