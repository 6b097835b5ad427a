#!/usr/bin/env bash
# ScoreNF on lattice φ⁴ with score matching on a fraction of the flow batch
# (`loss.sm_fraction`, crates/losses/src/loss.rs "A cheaper SM term"):
# the `reproduce phi4` training config (data/configs/reproduce/phi4.toml:
# tutorial architecture, f32 conditioners, 1000 steps, batch 128, 100 HMC
# configurations) with sm_fraction = 1 and 0.25, then IMH 2 × 10 000.
#   bash data/experiments/scorenf_sm_fraction/run.sh SETS SEEDS FRACTIONS
#   e.g. run.sh "tutorial e3" "1 2" "1 0.25"
# Outputs in $OUT (default /tmp/scorenf_sm_fraction); results.txt lines:
# set seed fraction train_cpu_s train_wall_s imh_acceptance ess nll.
# One thread (FF: the fieldflow binary, default target/release/fieldflow).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export RAYON_NUM_THREADS=1
ff=${FF:-target/release/fieldflow}
OUT=${OUT:-/tmp/scorenf_sm_fraction}
mkdir -p "$OUT"
for set in $1; do
    [ -f "$OUT/$set.h5" ] || $ff generate --config "data/configs/$set.toml" --out "$OUT/$set.h5" > "$OUT/$set.generate.log"
    for seed in $2; do
        for f in $3; do
            name="${set}_s${seed}_f$f"
            sed "s/^loss = { preset = \"scorenf\" }/loss = { preset = \"scorenf\", sm_fraction = $f }/" \
                data/configs/reproduce/phi4.toml > "$OUT/$name.toml"
            /usr/bin/time -f "%U %e" -o "$OUT/$name.time" $ff train --config "$OUT/$name.toml" --data "$OUT/$set.h5" \
                --seed "$seed" --out "$OUT/$name.h5" --force > "$OUT/$name.train.log" 2>&1
            $ff sample --model "$OUT/$name.h5" --method imh --n 10000 --chains 2 --seed "$seed" \
                --out "$OUT/${name}_imh.h5" --force > "$OUT/${name}_imh.log" 2>&1
            acc=$(grep -m1 -i "acceptance" "$OUT/${name}_imh.log" | awk "{print \$2}")
            ess=$(grep -m1 "^ESS" "$OUT/$name.train.log" | awk '{print $2}')
            nll=$(grep -m1 "held-out NLL" "$OUT/$name.train.log" | awk '{print $3}')
            echo "$set $seed $f $(cat "$OUT/$name.time") $acc $ess $nll" | tee -a "$OUT/results.txt"
        done
    done
done
