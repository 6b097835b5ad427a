#!/usr/bin/env bash
# Issue 16, "L = 16 and 32 at fixed ξ/L": the default recipe of
# `fieldflow train` (only [phi4] given) on L = 16 and 32 at m² = −4 and the
# λ that continues E1–E5's line of constant physics (a fit
# λ(L) = λ_c + a L^{-2} through E3–E5: λ_c = 4.655, a = 89.5, so λ = 5.005
# at L = 16 and 4.742 at L = 32; the HMC ensembles' ξ₂/L checks it), then
# IMH (4 × 25 000), an HMC ensemble (4 × 10 000 after 1000 thermalization
# trajectories, E-sets' HMC settings) and `fieldflow compare` HMC vs IMH.
# Resumable per step (an existing output is kept).
# Usage: bash run.sh [SEED] [L...]   (default seed 1, L = 16 32)
# With FREE_FIELD=1 the flow gets `[flow] free_field = true` (runs named
# L{L}_s{SEED}_ff; the HMC ensemble L{L}_s{SEED}.hmc.h5 is shared). Since
# 2026-12-03 the recipe turns the layer on by itself: runs without the
# suffix were made before that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
ff=${FF:-"$root/target/release/fieldflow"}
seed=${1:-1}; shift || true
sizes=${*:-16 32}
suffix=${FREE_FIELD:+_ff}
mkdir -p "$here/runs"
. "$here/../train_once.sh"
for L in $sizes; do
  lambda=$(python3 -c "print(round(4.655 + 89.5 / $L**2, 3))")
  hmc="$here/runs/L${L}_s${seed}"
  out="$hmc$suffix"
  printf '[phi4]\nlattice = [%s, %s]\nm2 = -4.0\nlambda = %s\n' "$L" "$L" "$lambda" > "$out.toml"
  [ -n "$suffix" ] && printf '[flow]\nfree_field = true\n' >> "$out.toml"
  train_once "$ff" "$out" "$out.toml" "$seed"
  [ -f "$out.imh.h5" ] || "$ff" sample --model "$out.model.h5" --method imh --chains 4 --n 25000 --seed "$seed" --out "$out.imh.h5" > "$out.sample.log"
  if [ ! -f "$hmc.hmc.h5" ]; then
    { printf 'seed = %s\nchains = 4\nn_therm = 1000\nn_cfg = 10000\nthin = 1\nblock = 500\n' "$seed"; head -4 "$out.toml"; printf '[algorithm.hmc]\ntrajectory_length = 1.0\nn_steps = 10\nintegrator = "omelyan"\ntarget_acceptance = 0.8\n'; } > "$hmc.hmc.toml"
    /usr/bin/time -f "%e %U %S" -o "$hmc.hmc.time" "$ff" generate --config "$hmc.hmc.toml" --out "$hmc.hmc.h5" -q
  fi
  "$ff" compare "$hmc.hmc.h5" "$out.imh.h5" > "$out.compare.txt"
  "$ff" compare "$hmc.hmc.h5" "$out.imh.h5" --json > "$out.compare.json"
  echo "L = $L (λ = $lambda), seed $seed: train $(cat "$out.time")"; cat "$out.compare.txt"
done
