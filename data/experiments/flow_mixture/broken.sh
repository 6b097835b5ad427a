#!/bin/sh
# Broken-phase lattice φ⁴ (m² = −4, λ = 4) with a mixture of two flows.
# 16 HMC chains give 100 training configurations (each chain stays in one
# vacuum); K = 2; tutorial conv flow per component; RKL 1000 steps.
FF=../../../target/release/fieldflow
set -e
cd "$(dirname "$0")"
mkdir -p out && cd out
for L in 16 32; do
  $FF generate --lattice ${L}x${L} --m2 -4 --lambda 4 --chains 16 --n-cfg 20 --n-therm 300 --thin 10 \
      --seed $((L == 16 ? 5 : 6)) --out bp$L.h5 --force
  $FF train --config ../broken_l$L.toml --out mx$L.h5 --force
  $FF sample --model mx$L.h5 --method global-local --local hmc --n 2000 --chains 4 --seed 4 --out gl$L.h5 --force
  $FF sample --model mx$L.h5 --method imh --n 2000 --chains 4 --seed 4 --out imh$L.h5 --force
  $FF generate --lattice ${L}x${L} --m2 -4 --lambda 4 --chains 4 --n-cfg 2000 --n-therm 500 --seed 4 --out hmc$L.h5 --force
  for f in gl imh hmc; do $FF analyze $f$L.h5; done
done
