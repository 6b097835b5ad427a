#!/usr/bin/env bash
# Issue 14: does the `scorenf` preset's FKL handover (data FKL -> FKL by importance
# sampling on the flow's samples over the third quarter of training) hurt lattice phi4?
# Tutorial set (L = 8, m2 = -4, lambda = 8), 100 HMC configurations, 1000 steps, lr 1e-3,
# the CLI's default flow and batch; `scorenf` (with the handover) against `scorenf` with
# w_fkl_is = 0 and no decay (the preset before 2026-12-04); IMH 4 x 5000 compared with HMC.
# Resumable (existing files are kept). Output: runs/, phi4_results.txt.
# FF overrides the binary (default: this checkout's release build); SEEDS the seeds (default 1 2 3 4).
set -euo pipefail
cd "$(dirname "$0")"
FF=${FF:-../../../target/release/fieldflow}
SEEDS=${SEEDS:-1 2 3 4}
mkdir -p runs
[ -f runs/hmc.h5 ] || "$FF" generate --config ../../configs/tutorial.toml --n-cfg 2500 --out runs/hmc.h5 -q
# The loss goes in a config (a --loss flag would replace the whole [train.loss] table).
printf '[train.loss]\npreset = "scorenf"\n' > runs/handover.toml
printf '[train.loss]\npreset = "scorenf"\nw_fkl_is = 0.0\n' > runs/no_handover.toml
for variant in handover no_handover; do
  for seed in $SEEDS; do
    m=runs/phi4_${variant}_s$seed.h5
    [ -f "$m" ] || "$FF" train --config runs/$variant.toml --data runs/hmc.h5 --n-train 100 --steps 1000 --lr 1e-3 \
      --seed "$seed" --out "$m" -q
    s=runs/phi4_${variant}_s${seed}_imh.h5
    [ -f "$s" ] || "$FF" sample --model "$m" --n 5000 --chains 4 --seed "$seed" --out "$s" -q
  done
done
{
  for variant in handover no_handover; do
    for seed in $SEEDS; do
      echo "== $variant seed $seed"
      python3 - "runs/phi4_${variant}_s$seed.h5.metrics.csv" <<'PY'
import csv, sys
r = list(csv.DictReader(open(sys.argv[1])))[-1]
print("ess", r["ess"], "acceptance", r["acceptance"], "nll", r.get("nll", ""))
PY
      "$FF" compare runs/hmc.h5 runs/phi4_${variant}_s${seed}_imh.h5 | grep -E "observable|abs_M|chi2|U4|action_density"
    done
  done
} > phi4_results.txt
