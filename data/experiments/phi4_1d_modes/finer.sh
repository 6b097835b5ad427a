#!/usr/bin/env bash
# The 0.026-nat residual at b = 0.1 with long chains: the same estimate with a
# profile grid twice as fine (profile_step = 0.025), samples = 8000, seeds 1-2.
set -euo pipefail
cd "$(dirname "$0")"
FF=../../../target/release/fieldflow
mkdir -p runs
printf '[target]\nkind = "phi4_1d"\nb = 0.1\n[free_energy]\nsamples = 8000\nprofile_step = 0.025\n' > runs/b0.1_fine.toml
for seed in 1 2; do
  out=runs/b0.1_fine_seed$seed.json
  [ -f "$out" ] || "$FF" free-energy --config runs/b0.1_fine.toml --seed "$seed" --out "$out" > /dev/null
  echo "seed $seed done"
done
