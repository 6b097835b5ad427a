#!/usr/bin/env bash
# Issue 15 on the 1D φ⁴ chain (N = 100, a = 0.1, β = 20, b = 0): the flow-MCMC
# samplers with the `laplace+boundary` mixture of `cargo xtask reproduce modes`
# (trained by RKL from the phases' and the mode boundary's Laplace Gaussians,
# 1000 steps; docs/THEORY.md §4.11) as the proposal: mode weight (exact ½),
# τ_int of the mode indicator, acceptance, wall time. neutra-MCMC needs a
# bijection and refuses a mixture. Usage: bash run.sh MODEL.h5 (e.g.
# results/reproduce/models/modes_phi4_1d_b0_laplace_boundary_s1.h5); ≈ 2 min.
set -euo pipefail
model=${1:?usage: run.sh MODEL.h5}
root=$(cd "$(dirname "$0")/../../../.." && pwd)
ff=${FF:-"$root/target/release/fieldflow"}
out=$(mktemp -d)
for m in imh isir global-local hybrid; do
  extra=(); [ "$m" = isir ] && extra=(--proposals 8)
  start=$(date +%s.%N)
  "$ff" sample --model "$model" --method "$m" "${extra[@]}" --chains 4 --n 10000 --seed 1 --out "$out/$m.h5" --force > "$out/$m.log"
  t=$(echo "$(date +%s.%N) - $start" | bc)
  echo "$m: $(grep -iE 'acceptance|moved' "$out/$m.log" | head -1 | tr -s ' ') · $(printf '%.1f' "$t") s"
  "$ff" analyze "$out/$m.h5" | grep "mode_1"
done
"$ff" sample --model "$model" --method neutra --n 10 --out "$out/n.h5" 2>&1 | head -1 || true
