#!/usr/bin/env python3
"""Spline couplings + SM on flow samples (issue 14): runs of the scan driver
(../scorenf_scan/driver.py: the same configs, train -> IMH 4 x 20000 ->
analyze) for the spline stages below. Results: target/spline_sm/results.jsonl
(FIELDFLOW_SCAN_DIR overrides), one JSON line per run; `table.py` of the scan
prints them (`FIELDFLOW_SCAN_DIR=target/spline_sm python3 ../scorenf_scan/table.py --runs`).

    python3 data/experiments/spline_sm/driver.py STAGE [--jobs 1]
"""
import os, sys

os.environ.setdefault("FIELDFLOW_SCAN_DIR", "target/spline_sm")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scorenf_scan"))
import driver as scan  # noqa: E402

ANN = {"kind": "geometric", "beta0": 0.1, "steps": 1000}
RECIPE = scan.lossd(1, 0.1, 0.1, "flow")


def spline(bound, bins=8, sigma=None):
    f = {"coupling": {"spline": {"bins": bins, "tail_bound": bound}}}
    if sigma is not None:
        f["base_sigma"] = sigma
    return f


def stages():
    S = {}
    # The collapse reproduced, and the tail bound scanned (MOG-4, the annealed recipe).
    S["bound"] = [{"kind": "mog4", "loss": RECIPE, "anneal": ANN, "flow": spline(b), "seed": 1}
                  for b in (6.0, 10.0, 20.0)]
    # The base scale: a base as wide as the data (std 4.1 per coordinate).
    S["sigma"] = [{"kind": "mog4", "loss": RECIPE, "anneal": ANN, "flow": spline(12.0, sigma=3.0), "seed": s}
                  for s in (1, 2, 3)]
    # Which of the two matters: base scale or tail bound (seed 1).
    S["ablate"] = [{"kind": "mog4", "loss": RECIPE, "anneal": ANN, "flow": spline(b, sigma=sg), "seed": 1}
                   for sg, b in ((1.0, 12.0), (3.0, 6.0), (2.0, 8.0), (4.0, 16.0), (1.5, 8.0))]
    # With the wide base: no annealing, and no RKL (seed 1).
    S["variants"] = [{"kind": "mog4", "loss": RECIPE, "flow": spline(12.0, sigma=3.0), "seed": 1},
                     {"kind": "mog4", "loss": scan.lossd(1, 0, 0.1, "flow"), "anneal": ANN,
                      "flow": spline(12.0, sigma=3.0), "seed": 1}]
    # MOG-8: largest coordinate std 7.1.
    S["mog8"] = [{"kind": "mog8", "loss": RECIPE, "anneal": ANN, "flow": spline(24.0, sigma=6.0), "seed": s}
                 for s in (1, 2, 3)]
    # MOG-8 with a longer budget (annealing over the first half), and with w_rkl = 1.
    ANN4 = {"kind": "geometric", "beta0": 0.1, "steps": 2000}
    S["mog8_more"] = [{"kind": "mog8", "loss": RECIPE, "anneal": ANN4, "steps": 4000, "flow": spline(24.0, sigma=6.0),
                       "seed": s} for s in (1, 2, 3)]
    S["mog8_more"] += [{"kind": "mog8", "loss": scan.lossd(1, 1, 0.1, "flow"), "anneal": ANN,
                        "flow": spline(24.0, sigma=6.0), "seed": s} for s in (1, 2, 3)]
    return S


def main():
    scan.main_with(stages)


if __name__ == "__main__":
    main()
