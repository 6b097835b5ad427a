#!/usr/bin/env bash
# LRDS on the tilted 1D φ⁴ chain (issue 18). Reproduces every run of
# data/experiments/lrds_chain/README.md. Outputs (models and samples as
# HDF5, logs as text) go to $OUT (default /tmp/lrds_chain_out); only the
# text files are kept in the repository (raw/).
#
#   bash data/experiments/lrds_chain/run.sh default TARGETS SEEDS
#       `cargo xtask reproduce modes --full --methods lrds` (the benchmark's
#       LRDS settings, xtask/src/reproduce/modes_lrds.rs) on TARGETS
#       (comma-separated, e.g. phi4_1d_b0,phi4_1d_b0.05) with seeds 1..SEEDS
#   bash data/experiments/lrds_chain/run.sh manual NAME B SEED WALKER_STEPS TRAIN_STEPS LR
#       the same settings by hand (`fieldflow train` on an [lrds] config,
#       `sample --method imh` and `--method is`, 4 × $NSAMP (default 10 000) each, `analyze`)
#       with walker_steps, train.steps and train.lr given; TRAIN_STEPS = 1
#       with LR = 1e-12 is the untrained reference (h = 0 up to 1e-12).
#       Environment: REF=laplace replaces walkers + EM by the Laplace
#       reference (`laplace = { starts = [1.0, -1.0], boundary = { site = 49,
#       value = 0.0 } }`, WALKER_STEPS then unused); PC=1 adds
#       `per_component = true` (one correction per reference component,
#       docs/THEORY.md §6.14.7), PC=frozen also `frozen = [2]` (the
#       boundary component untrained); METHODS (default "imh is") the samplers
#       run; FF a fieldflow binary to use instead of building
#       target/release/fieldflow.
#
# One thread (the machine has two cores and is shared).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export RAYON_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
OUT=${OUT:-/tmp/lrds_chain_out}
mkdir -p "$OUT"
case "$1" in
default)
    cargo xtask reproduce modes --full --methods lrds --targets "$2" --seeds "$3" --out "$OUT/xt"
    ;;
manual)
    name=$2 b=$3 seed=$4 wsteps=$5 tsteps=$6 lr=$7
    if [ -z "${FF:-}" ]; then cargo build --release -p fieldflow; fi
    ff=${FF:-target/release/fieldflow}
    if [ "${REF:-em}" = laplace ]; then
        reference='laplace = { starts = [1.0, -1.0], boundary = { site = 49, value = 0.0 } }'
    else
        reference=$(printf 'components = 2\nwalkers = 12800\nwalker_sigma = 1.0\nwalker_steps = %s\nem_restarts = 5' "$wsteps")
    fi
    d="$OUT/manual"
    mkdir -p "$d"
    cat > "$d/$name.toml" <<TOML
seed = 1
checkpoint_every = 100000

[target]
kind = "phi4_1d"
b = $b

[lrds]
steps = 32
hidden = [64, 64]
$reference
$(case "${PC:-0}" in 1) echo 'per_component = true' ;; frozen) printf 'per_component = true\nfrozen = [2]' ;; esac)

[train]
steps = $tsteps
lr = $lr
batch_size = 256
clip_grad_norm = 10.0
metrics_every = $(( tsteps / 3 > 1 ? tsteps / 3 : 1 ))
eval_batch = 1024
TOML
    { /usr/bin/time -f "train wall %e s" $ff train --config "$d/$name.toml" --out "$d/$name.h5" --seed "$seed" --force; } > "$d/$name.train.log" 2>&1
    cp "$d/$name.h5.metrics.csv" "$d/$name.metrics.csv"
    for m in ${METHODS:-imh is}; do
        { /usr/bin/time -f "sample wall %e s" $ff sample --model "$d/$name.h5" --n "${NSAMP:-10000}" --chains 4 --seed "$seed" \
            --method $m --out "$d/${name}_$m.h5" --force; } > "$d/${name}_$m.sample.log" 2>&1
        $ff analyze "$d/${name}_$m.h5" > "$d/${name}_$m.analyze.txt" 2>&1
        $ff analyze "$d/${name}_$m.h5" --json > "$d/${name}_$m.analyze.json" 2>&1
    done
    ;;
*)
    echo "usage: run.sh default TARGETS SEEDS | manual NAME B SEED WALKER_STEPS TRAIN_STEPS LR" >&2
    exit 2
    ;;
esac
