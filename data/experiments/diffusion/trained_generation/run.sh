#!/usr/bin/env bash
# Generation quality of trained linear scores near criticality (issue 17;
# docs/RESULTS.md "Generation with trained scores"). Free field at m·L = 4,
# DSM with Adam (lr 0.05 → 5e-4 cosine) on 2048 exact draws, batch 64,
# 4000 steps, 64 time levels; exact KL/site, χ₂ and G(L/4) errors of the
# generated Gaussian for 8 … 256 reverse steps. Three seeds (data +
# training); d = 2 L = 64 with seed 1 only (≈ 15 min of one loaded core
# alone). About 25 minutes on one core. Usage: bash run.sh (from this
# directory); then python3 summarize.py > tables.md.
set -euo pipefail
cd "$(dirname "$0")"
root=../../../..
cargo build --release --quiet -p fieldflow-diffusion --example trained_generation --manifest-path "$root/Cargo.toml"
bin="$root/target/release/examples/trained_generation"
rm -f d1.jsonl d2.jsonl
for seed in 1 2 3; do
  sizes=8,16,32
  [ "$seed" = 1 ] && sizes=8,16,32,64
  "$bin" --dim 2 --sizes "$sizes" --levels 64 --train-steps 4000 --seed "$seed" --out d2.jsonl > "d2_s$seed.txt"
  "$bin" --dim 1 --sizes 16,64,256,1024 --levels 64 --train-steps 4000 --seed "$seed" --out d1.jsonl > "d1_s$seed.txt"
done
