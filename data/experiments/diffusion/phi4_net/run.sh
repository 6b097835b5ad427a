#!/usr/bin/env bash
# Local-net against local-cubic diffusion scores on φ⁴ E1–E3 (issue 17):
# HMC ensembles (4 × 10⁴, the sets' configs), DSM on 3000 of their
# configurations, 16 time levels, Adam lr 0.05 with cosine decay, batch 64;
# IMH 4 × 10⁴ with the ODE log q (Heun, 100 steps), compared with HMC by
# `fieldflow compare`. One thread (RAYON_NUM_THREADS=1) so that training
# times compare. Usage: bash run.sh [OUTDIR] [SETS] [MODELS], MODELS a list
# of name:arch:steps with arch a TOML inline table body, e.g.
#   "cubic2:kind=\"local_cubic\",range=2:3000"
# Environment: NPROP IMH proposals per chain (default 10⁴); LEVELS (16) and
# ODE_STEPS (100) the time levels and Heun steps; LR (0.05) and BATCH (64)
# the Adam step and DSM minibatch; SEED (unset: the defaults) the seed of
# training ([train] seed) and of IMH; FIELDFLOW the binary; RESULTS the
# file a line per run is appended to (default results.txt beside this
# script). The docs/RESULTS.md table: the defaults, then BATCH=256, then
# BATCH=256 SEED=2 and 3, for the models cubic2 (3000 and 20000 steps) and
# net2c4 (3000 and 10000 steps).
set -euo pipefail
export RAYON_NUM_THREADS=1
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
out="${1:-$root/target/diffusion_net}"
sets="${2:-e1 e2 e3}"
models="${3:-cubic2:kind=\"local_cubic\",range=2:3000 net2c4:kind=\"local_net\",range=2,channels=4,net_range=1:3000}"
F="${FIELDFLOW:-$root/target/release/fieldflow}"
mkdir -p "$out"
for set in $sets; do
  ens="$out/hmc_$set.h5"
  [ -f "$ens" ] || "$F" generate --config "$root/data/configs/$set.toml" --out "$ens" -q
  for spec in $models; do
    name="${spec%%:*}"; rest="${spec#*:}"; arch="${rest%:*}"; steps="${rest##*:}"
    run="${set}_${name}_s${steps}_l${LEVELS:-16}_o${ODE_STEPS:-100}_lr${LR:-0.05}_b${BATCH:-64}${SEED:+_seed$SEED}"
    cat > "$out/$run.toml" <<CFG
seed = 1
[diffusion]
architecture = { ${arch//,/, } }
levels = ${LEVELS:-16}
steps = ${ODE_STEPS:-100}
[data]
n_train = 3000
n_heldout = 1000
[train]
${SEED:+seed = $SEED}
steps = $steps
lr = ${LR:-0.05}
batch_size = ${BATCH:-64}
metrics_every = $steps
lr_schedule = { kind = "cosine", total_steps = $steps, min_lr = 0.0 }
CFG
    t0=$(date +%s.%N)
    "$F" train --config "$out/$run.toml" --data "$ens" --out "$out/$run.model.h5" --force -q
    t1=$(date +%s.%N)
    "$F" sample --model "$out/$run.model.h5" --method imh --n "${NPROP:-10000}" --chains 4 ${SEED:+--seed "$SEED"} --out "$out/$run.imh.h5" --force > "$out/$run.sample.txt"
    t2=$(date +%s.%N)
    acc=$(grep '^acceptance' "$out/$run.sample.txt" | awk '{print $2}')
    "$F" compare "$ens" "$out/$run.imh.h5" > "$out/$run.compare.txt"
    cmp=$(awk '$1=="chi2"||$1=="abs_M"{printf "%s Δ/σ %s; ", $1, $(NF-3)}' "$out/$run.compare.txt")
    printf "%-34s train %6.1f s  sample %6.1f s  IMH acceptance %s  %s\n" "$run" "$(echo "$t1 - $t0" | bc)" \
      "$(echo "$t2 - $t1" | bc)" "$acc" "$cmp" | tee -a "${RESULTS:-$here/results.txt}"
  done
done
