#!/bin/sh
# flowMC 0.6.4 (RQ-spline + MALA, its tutorial settings, walkers from N(0, 4I)) on the same
# targets, 3 seeds each, one at a time. Venv: python3 -m venv target/peers &&
# target/peers/bin/python -m pip install flowMC==0.6.4 (CPU wheels from PyPI).
# Results: peers/<target>_d<dim>_s<seed>.json (skipped when present: resumable).
cd "$(dirname "$0")"
PY=../../../target/peers/bin/python
for spec in "mog4 2" "two_modes 16" "two_modes 64"; do
  set -- $spec
  for s in 1 2 3; do
    out=peers/$1_d$2_s$s.json
    [ -f "$out" ] && continue
    nice $PY /work/shared/peers/flowmc_modes.py --target $1 --dim $2 --seed $s --json $out > peers/$1_d$2_s$s.log 2>&1
  done
done
