"""The free-field layer with the data-trained losses: the runs of run.sh
beside the same set/loss of `cargo xtask reproduce phi4` without the layer
(data/experiments/reproduce_phi4_2026-12-03/runs_phi4.csv).
Usage: python3 table.py  (prints Markdown)."""
import csv, glob, os, re, statistics as st

here = os.path.dirname(os.path.abspath(__file__))
base = os.path.join(here, "..", "reproduce_phi4_2026-12-03", "runs_phi4.csv")


def mean_se(xs):
    m = st.mean(xs)
    se = st.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan")
    return m, se, len(xs)


def fmt(t):
    m, se, n = t
    return f"{m:.3f} ± {se:.3f} ({n})" if n > 1 else f"{m:.3f} (1)"


ref = {}
for r in csv.DictReader(open(base)):
    s, loss = r["variant"].split("/")
    ref.setdefault((s, loss), []).append(r)

runs = {}
for log in sorted(glob.glob(os.path.join(here, "runs", "*_ff.sample.log"))):
    stem = os.path.basename(log)[: -len(".sample.log")]
    s, loss, seed, _ = stem.rsplit("_", 3)
    acc = float(re.search(r"acceptance\s+([0-9.]+)", open(log).read()).group(1))
    train = open(log.replace(".sample.log", ".train.log")).read()
    nll = float(re.search(r"held-out NLL\s+([-0-9.]+)", train).group(1))
    secs = float(open(log.replace(".sample.log", ".time")).read().split()[1])
    runs.setdefault((s, loss), []).append((acc, nll, secs))

print("| set | loss | IMH acc. without (reproduce) | with the layer | held-out NLL without | with | train s without (1 thread, wall) | with (1 thread, CPU) |")
print("|---|---|---|---|---|---|---|---|")
order = {"tutorial": 0, "e1": 1, "e2": 2, "e3": 3, "e4": 4, "e5": 5}
for (s, loss) in sorted(runs, key=lambda k: (order.get(k[0], 9), k[1])):
    w = runs[(s, loss)]
    b = ref.get((s, loss), [])
    col = lambda rows, k: mean_se([float(r[k]) for r in rows]) if rows else (float("nan"), float("nan"), 0)
    print(
        f"| {s} | {loss} | {fmt(col(b, 'imh_acceptance'))} | {fmt(mean_se([x[0] for x in w]))} "
        f"| {fmt(col(b, 'nll'))} | {fmt(mean_se([x[1] for x in w]))} "
        f"| {col(b, 'train_seconds')[0]:.0f} | {st.mean(x[2] for x in w):.0f} |"
    )
