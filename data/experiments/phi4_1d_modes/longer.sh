#!/usr/bin/env bash
# Are the replica errors honest where log t- dominates (b = 0.1)? Same
# estimate with 4x longer chains (samples = 8000), 3 seeds. Resumable.
set -euo pipefail
cd "$(dirname "$0")"
FF=../../../target/release/fieldflow
mkdir -p runs
printf '[target]\nkind = "phi4_1d"\nb = 0.1\n[free_energy]\nsamples = 8000\n' > runs/b0.1_long.toml
for seed in 1 2 3; do
  out=runs/b0.1_long_seed$seed.json
  [ -f "$out" ] || "$FF" free-energy --config runs/b0.1_long.toml --seed "$seed" --out "$out" > /dev/null
  echo "seed $seed done"
done
