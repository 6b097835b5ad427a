#!/usr/bin/env bash
# Mode log ratios of the tilted 1D phi4 chain (N = 100, a = 0.1, beta = 20) by
# `fieldflow free-energy` (default [free_energy] settings), 3 seeds per tilt.
# Resumable: a finished JSON is not recomputed. Then: python3 table.py
set -euo pipefail
cd "$(dirname "$0")"
FF=../../../target/release/fieldflow
mkdir -p runs
for b in 0.0 0.025 0.05 0.075 0.1; do
  printf '[target]\nkind = "phi4_1d"\nb = %s\n' "$b" > runs/b$b.toml
  for seed in 1 2 3; do
    out=runs/b${b}_seed$seed.json
    [ -f "$out" ] && continue
    "$FF" free-energy --config runs/b$b.toml --seed "$seed" --out "$out" > /dev/null
    echo "b = $b seed $seed done"
  done
done
