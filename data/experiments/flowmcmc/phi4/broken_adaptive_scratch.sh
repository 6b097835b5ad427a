#!/usr/bin/env bash
# Adaptive flow-MCMC from scratch on the broken phase (L = 16, m² = −4, λ = 4):
# untrained Z₂ flow (f32), 256 walkers from N(0, 1), HMC local moves, FKL + RKL
# on the walkers, 200 rounds × 25 Adam steps; production global-local 4 × 2000.
# Usage: bash broken_adaptive_scratch.sh [SEED] (seed 1: files scratch.*,
# otherwise scratch_sSEED.*); resumable (sample --resume). LAYER=1: the flow
# with the free-field layer first (broken_scratch_init_ff.toml; files
# scratch_ff.* / scratch_ff_sSEED.*).
set -euo pipefail
cd "$(dirname "$0")"
FF=${FF:-../../../../target/release/fieldflow}
seed=${1:-1}
if [ "${LAYER:-0}" = 1 ]; then base=scratch_ff init=broken_scratch_init_ff.toml; else base=scratch init=broken_scratch_init.toml; fi
if [ "$seed" = 1 ]; then p=$base; init_seed=(); else p=${base}_s$seed; init_seed=(--seed "$seed"); fi
[ -f ${p}_init.h5 ] || $FF train --config $init "${init_seed[@]}" --out ${p}_init.h5 -q
if [ ! -f $p.h5 ]; then
  if [ -f $p.h5.partial ]; then
    /usr/bin/time -f "%e %U %S" -o $p.time $FF sample --resume --out $p.h5
  else
    /usr/bin/time -f "%e %U %S" -o $p.time $FF sample --model ${p}_init.h5 --method adaptive --config broken_adaptive_scratch.toml --n 2000 --chains 4 --seed "$seed" --out $p.h5
  fi
fi
$FF analyze $p.h5 > $p.analyze.txt
