#!/usr/bin/env bash
# Re-run of the gaussian_r1 rows after the Gaussian model's kernel became
# interpolated between levels (commit c1c2fc7): same settings as run.sh,
# only --archs gaussian_r1; its rows replace the older gaussian_r1 rows of
# d1.jsonl / d2.jsonl (merge_gaussian.py).
set -euo pipefail
cd "$(dirname "$0")"
bin=../../../../target/release/examples/trained_generation
rm -f d1_gauss.jsonl d2_gauss.jsonl
for seed in 1 2 3; do
  sizes=8,16,32
  [ "$seed" = 1 ] && sizes=8,16,32,64
  "$bin" --dim 2 --sizes "$sizes" --levels 64 --train-steps 4000 --seed "$seed" --archs gaussian_r1 --out d2_gauss.jsonl > "d2_gauss_s$seed.txt"
  "$bin" --dim 1 --sizes 16,64,256,1024 --levels 64 --train-steps 4000 --seed "$seed" --archs gaussian_r1 --out d1_gauss.jsonl > "d1_gauss_s$seed.txt"
done
python3 - <<'PY'
import json
for d in (1, 2):
    old = [l for l in open(f"d{d}.jsonl") if json.loads(l)["arch"] != "gaussian_r1"]
    new = [l for l in open(f"d{d}_gauss.jsonl") if json.loads(l)["arch"] == "gaussian_r1"]
    open(f"d{d}.jsonl", "w").writelines(old + new)
PY
python3 summarize.py > tables.md
