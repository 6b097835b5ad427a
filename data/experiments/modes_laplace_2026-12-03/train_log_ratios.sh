#!/usr/bin/env bash
# Re-trains the 15 `laplace` runs of `cargo xtask reproduce modes --methods laplace`
# from their resolved configs (configs/) and prints the mixture's importance-sampling
# log(π₂/π₁) from the train summary (the benchmark's IMH/IS columns cannot see the
# minority phase at b ≥ 0.05: its weight is 1.7e-7 … 3.4e-14).
# Usage (from the repository root, ≈ 8 min): bash data/experiments/modes_laplace_2026-12-03/train_log_ratios.sh OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: train_log_ratios.sh OUTDIR}
mkdir -p "$out"
cargo build --release -q -p fieldflow-cli
ff=$(pwd)/target/release/fieldflow
cd "$out"
for b in 0 0.025 0.05 0.075 0.1; do for s in 1 2 3; do
  "$ff" train --config "$here/configs/modes_phi4_1d_b${b}_laplace_s${s}.toml" --seed $s --out b${b}_s${s}.h5 --force > b${b}_s${s}.log 2>&1
  echo "b = $b seed $s: $(grep -o 'log(π₂/π₁) = [^;]*' b${b}_s${s}.log)"
done; done
