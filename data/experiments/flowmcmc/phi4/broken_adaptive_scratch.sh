#!/usr/bin/env bash
# Adaptive flow-MCMC from scratch on the broken phase (L = 16, m² = −4, λ = 4):
# untrained Z₂ flow (f32), 256 walkers from N(0, 1), HMC local moves, FKL + RKL
# on the walkers, 200 rounds × 25 Adam steps; production global-local 4 × 2000.
set -euo pipefail
cd "$(dirname "$0")"
FF=${FF:-../../../../target/release/fieldflow}
[ -f scratch_init.h5 ] || $FF train --config broken_scratch_init.toml --out scratch_init.h5 -q
if [ ! -f scratch.h5 ]; then
  if [ -f scratch.h5.partial ]; then
    /usr/bin/time -f "%e %U %S" -o scratch.time $FF sample --resume --out scratch.h5
  else
    /usr/bin/time -f "%e %U %S" -o scratch.time $FF sample --model scratch_init.h5 --method adaptive --config broken_adaptive_scratch.toml --n 2000 --chains 4 --seed 1 --out scratch.h5
  fi
fi
$FF analyze scratch.h5 > scratch.analyze.txt
