#!/usr/bin/env bash
# LRDS with the Laplace + boundary reference on the tilted chain (README
# "Laplace reference"): untrained (h = 0: the reference's exact reverse
# chain) with 3 seeds of importance sampling and one IMH seed, and trained
# (the benchmark's 300 log-variance steps) with seed 1, at every tilt;
# trained_pc: the same with one correction per component (`per_component`);
# trained_pcf: and the boundary component frozen (`frozen = [2]`).
#   bash data/experiments/lrds_chain/run_laplace.sh untrained|trained|trained_pc|trained_pcf
# TILTS (default "0 0.025 0.05 0.075 0.1") the tilts b run.
# Outputs as run.sh ($OUT); one thread.
set -euo pipefail
here="$(dirname "$0")"
export REF=laplace
for b in ${TILTS:-0 0.025 0.05 0.075 0.1}; do
    case "$1" in
    untrained)
        for seed in 1 2 3; do
            if [ "$seed" = 1 ]; then m="is imh"; else m="is"; fi
            METHODS="$m" bash "$here/run.sh" manual "lap_untrained_b${b}_s$seed" "$b" "$seed" 0 1 1e-12
        done
        ;;
    trained)
        METHODS="is imh" bash "$here/run.sh" manual "lap_trained_b${b}_s1" "$b" 1 0 300 3e-3
        ;;
    trained_pc)
        PC=1 METHODS="is imh" bash "$here/run.sh" manual "lap_trained_pc_b${b}_s1" "$b" 1 0 300 3e-3
        ;;
    trained_pcf)
        PC=frozen METHODS="is imh" bash "$here/run.sh" manual "lap_trained_pcf_b${b}_s1" "$b" 1 0 300 3e-3
        ;;
    esac
done
