"""Summary of run.sh: per tilt and seed, the mixture's log(w+/w-) (the training
summary's log(pi2/pi1), oriented by IMH's majority mode), against the transfer
operator, and IMH's mode weight, tau_int and acceptance. python3 table.py"""
import glob, json, math, os, re

EXACT = {"0": 0.0, "0.025": -7.7917, "0.05": -15.5665, "0.075": -22.0269, "0.1": -23.4009}
here = os.path.dirname(os.path.abspath(__file__))
print("| b | exact log(w+/w-) | seed | mixture IS estimate | pull | IMH w+ (exact) | τ_int(mode) | IMH acc. | train s |")
print("|---|---|---|---|---|---|---|---|---|")
for b in EXACT:
    for log in sorted(glob.glob(f"{here}/runs/b{b}_s*.train.log")):
        seed = re.search(r"_s(\d+)\.train", log).group(1)
        text = open(log).read()
        m = re.search(r"log\(π₂/π₁\) = (\S+) ± (\S+);", text)
        if not m:
            err = re.search(r"error: (.*)", text)
            print(f"| {b} | {EXACT[b]:.4f} | {seed} | failed: {err.group(1)[:90] if err else '?'} | | | | | |")
            continue
        r, e = float(m.group(1)), float(m.group(2))
        secs = re.search(r"time\s+(\S+) s", text).group(1)
        rows = {x["observable"]: x for x in json.load(open(log.replace(".train.log", ".imh.json")))[0]["rows"]}
        w1, w0 = rows["mode_1"], rows["mode_0"]
        if float(b) > 0:  # orient: the component of larger weight is IMH's majority mode
            r = abs(r) * (1 if w1["value"] > w0["value"] else -1)
        pull = (r - EXACT[b]) / e
        acc = re.search(r"acceptance\s+(\S+)", open(log.replace(".train.log", ".imh.log")).read()).group(1)
        wx = 1 / (1 + math.exp(-EXACT[b]))
        print(f"| {b} | {EXACT[b]:.4f} | {seed} | {r:.4f} ± {e:.4f} | {pull:+.1f}σ | "
              f"{w1['value']:.5f} ± {w1['error']:.5f} ({wx:.5f}) | {w1['tau_int']:.2f} | {acc} | {secs} |")
