#!/usr/bin/env bash
# The tilted 1D φ⁴ chain (N = 100, a = 0.1, β = 20) with a mixture of two flows
# whose components start as the Laplace Gaussians of the phases
# (`affine = "laplace"`, modes found by 512 MALA walkers, no samples): RKL
# training, the mixture's importance-sampling weights and log(π₂/π₁) from the
# training summary, IMH 4 × 10 000 (mode weights, τ_int) at every tilt.
# `--seed S` sets every stream (walkers, training, weight draws), not only the
# flows' initialization as the config's top-level `seed` does.
# Usage: bash run.sh [SEEDS] [TILTS]; resumable (finished runs are skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
ff=${FF:-"$root/target/release/fieldflow"}
seeds=${1:-"1 2 3"}; tilts=${2:-"0 0.025 0.05 0.075 0.1"}
mkdir -p "$here/runs"
for b in $tilts; do for s in $seeds; do
  out="$here/runs/b${b}_s${s}"
  [ -f "$out.done" ] && continue
  cat > "$out.toml" <<TOML
seed = $s
checkpoint_every = 1000
[target]
kind = "phi4_1d"
b = $b
[flow]
mixture = { components = 2, weight_samples = 4096, affine = "laplace", locate = { walkers = 512, sigma = 1.0, steps = 300 } }
[train]
loss = { preset = "rkl" }
batch_size = 256
steps = 1000
lr = 1e-3
metrics_every = 100
eval_batch = 2048
[train.lr_schedule]
kind = "cosine"
total_steps = 1000
min_lr = 1e-5
TOML
  if "$ff" train --config "$out.toml" --seed "$s" --out "$out.model.h5" --force > "$out.train.log" 2>&1; then
    "$ff" sample --model "$out.model.h5" --method imh --chains 4 --n 10000 --seed "$s" --out "$out.imh.h5" --force > "$out.imh.log" 2>&1
    "$ff" analyze "$out.imh.h5" --json > "$out.imh.json" 2> /dev/null
  fi
  touch "$out.done"
  echo "b = $b seed $s: $(grep -h 'mixture weights\|^error' "$out.train.log" | head -1)"
done; done
