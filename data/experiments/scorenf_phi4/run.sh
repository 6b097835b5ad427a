#!/usr/bin/env bash
# Issue 14: does the multimodal recipe `scorenf_modes` (FKL + 0.1 RKL + 0.1 SM on
# flow samples) also serve lattice phi4, where the preset `scorenf` (RKL + SM on
# data) won? Tutorial set (L = 8, m2 = -4, lambda = 8), 100 HMC configurations,
# 1000 steps, lr 1e-3, IMH 4 x 5000, compared with HMC. Resumable (existing
# files are kept). Output: runs/, results.txt
set -euo pipefail
cd "$(dirname "$0")"
FF=../../../target/release/fieldflow
mkdir -p runs
[ -f runs/hmc.h5 ] || "$FF" generate --config ../../configs/tutorial.toml --n-cfg 2500 --out runs/hmc.h5 -q
for loss in scorenf scorenf_modes; do
  for seed in 1 2; do
    m=runs/${loss}_s$seed.h5
    [ -f "$m" ] || "$FF" train --data runs/hmc.h5 --n-train 100 --loss "$loss" --steps 1000 --lr 1e-3 --seed "$seed" --out "$m" -q
    s=runs/${loss}_s${seed}_imh.h5
    [ -f "$s" ] || "$FF" sample --model "$m" --n 5000 --chains 4 --seed "$seed" --out "$s" -q
  done
done
{
  for loss in scorenf scorenf_modes; do
    for seed in 1 2; do
      echo "== $loss seed $seed"
      "$FF" inspect runs/${loss}_s$seed.h5 | grep -iE "imh_acceptance|ess" | tail -2 || true
      "$FF" compare runs/hmc.h5 runs/${loss}_s${seed}_imh.h5 | grep -E "observable|abs_M|chi2|U4|action_density|acceptance"
    done
  done
} > results.txt
