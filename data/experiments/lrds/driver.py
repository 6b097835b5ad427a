#!/usr/bin/env python3
"""LRDS benchmark driver (issue 18, second half): runs the example
`lrds_bench` once per (target, seed) and appends its JSON line to
results.jsonl; rows already there are skipped (resumable).

    nice -n 5 python3 data/experiments/lrds/driver.py [--only two_modes:8 mog4] [--seeds 1 2 3]
"""
import argparse
import json
import pathlib
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
BIN = ROOT / "target" / "release" / "examples" / "lrds_bench"
TARGETS = ["two_modes:8", "two_modes:16", "two_modes:32", "two_modes:64", "mog4", "mog8"]


def done(path):
    if not path.exists():
        return set()
    return {(r["target"], r["seed"]) for r in map(json.loads, path.read_text().splitlines()) if r}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=TARGETS)
    ap.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    ap.add_argument("--out", default=str(HERE / "results.jsonl"))
    ap.add_argument("--bin", default=str(BIN), help="the lrds_bench binary (a copy keeps a series on one build)")
    ap.add_argument("extra", nargs="*", help="passed to lrds_bench after --")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    have = done(out)
    for t in a.only:
        for s in a.seeds:
            if (t, s) in have:
                continue
            cmd = [a.bin, "--target", t, "--seed", str(s), *a.extra]
            print(" ".join(cmd), flush=True)
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
            with out.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
