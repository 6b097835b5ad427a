"""Per-run table of the LRDS chain runs (README.md): reads the `analyze
--json` outputs kept in raw/ (default/: the xtask logs; manual/: run.sh
manual) and prints ŵ₊, ln(ŵ₊/ŵ₋) ± σ (σ = σ(ŵ₋)/(ŵ₋ŵ₊), the delta method),
the exact value from the transfer operator, the deviation in σ, and
log Ẑ − log Z (IS)."""
import glob, json, math, os, re

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    t = open(path).read()
    t = t[t.index("["): t.rindex("]") + 1]
    a = json.loads(t)[0]
    return {r["observable"]: r for r in a["rows"]}, a


def row(path):
    rows, a = load(path)
    w0, w1 = rows["mode_0"], rows["mode_1"]
    e0, e1 = w0["exact"], w1["exact"]
    exact = math.log(e1 / e0)
    if w1["value"] > 0 and w0["value"] > 0:
        lr = math.log(w1["value"] / w0["value"])
        s = w0["error"] / (w0["value"] * w1["value"])
        dev = (lr - exact) / s if s > 0 else float("inf")
        est = f"{lr:.3f} ± {s:.3f}"
        dev = f"{dev:+.2f}"
    else:
        est, dev = "ŵ₊ = 0 ± 0 (mode + never drawn)", "—"
    lz = rows.get("log_Z")
    dz = f"{lz['value'] - lz['exact']:+.3f} ± {lz['error']:.3f}" if lz else "—"
    return f"{w1['value']:.4g} ± {w1['error']:.2g}", est, f"{exact:.4f}", dev, dz, a.get("seconds")


for path in sorted(glob.glob(os.path.join(HERE, "raw/*/*analyze*"))):
    name = os.path.basename(path)
    if not (name.endswith(".json") or name.startswith("analyze_")):
        continue
    print(os.path.relpath(path, HERE), "|", " | ".join(str(x) for x in row(path)))
