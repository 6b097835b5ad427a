#!/usr/bin/env bash
# Seeds 2 and 3 of run.sh (after an interrupted run.sh had finished seed 1).
set -euo pipefail
cd "$(dirname "$0")"
bin=../../../../target/release/examples/trained_generation
for seed in 2 3; do
  "$bin" --dim 2 --sizes 8,16,32 --levels 64 --train-steps 4000 --seed "$seed" --out d2.jsonl > "d2_s$seed.txt"
  "$bin" --dim 1 --sizes 16,64,256,1024 --levels 64 --train-steps 4000 --seed "$seed" --out d1.jsonl > "d1_s$seed.txt"
done
