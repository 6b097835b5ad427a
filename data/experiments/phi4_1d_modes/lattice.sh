#!/usr/bin/env bash
# Two vacua of broken-phase lattice phi4 (m2 = -4, lambda = 4; HMC does not
# tunnel at L = 16 or 32) in a small external field h: log(w+/w-) by
# `fieldflow free-energy` (default settings). Resumable. Results: runs/lattice_*.json
set -euo pipefail
cd "$(dirname "$0")"
FF=../../../target/release/fieldflow
mkdir -p runs
for L in 16 32; do
  for h in 0.0005 0.001 0.002; do
    out=runs/lattice_L${L}_h$h.json
    [ -f "$out" ] && continue
    printf '[phi4]\nlattice = [%s, %s]\nm2 = -4.0\nlambda = 4.0\n[free_energy]\nfield = %s\n' "$L" "$L" "$h" > runs/lattice_L${L}_h$h.toml
    "$FF" free-energy --config runs/lattice_L${L}_h$h.toml --out "$out"
  done
done
