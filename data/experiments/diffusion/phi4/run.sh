#!/usr/bin/env bash
# Diffusion models on the tutorial set and E1–E5 (issue 17): HMC ensembles
# (4 × 10⁴ after thermalization, the sets' configs), DSM training on 3000
# of their configurations, IMH 4 × 10⁴ with the model's log q, compared with
# HMC by `fieldflow compare`. Usage: bash run.sh [OUTDIR] (default
# target/diffusion_phi4; reruns skip finished stages). Appends a line per
# run to results.txt beside this script. The environment may override the
# models (ARCHS, "kind:range[:gaussian]" words), the time levels (LEVELS)
# and the results file (RESULTS): ../phi4_gaussian/run.sh does.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
out="${1:-$root/target/diffusion_phi4}"
F="$root/target/release/fieldflow"
mkdir -p "$out"
archs="${ARCHS:-local:2 local_cubic:1 local_cubic:2}"
levels="${LEVELS:-16}"
results="${RESULTS:-$here/results.txt}"
for set in tutorial e1 e2 e3 e4 e5; do
  ens="$out/hmc_$set.h5"
  [ -f "$ens" ] || "$F" generate --config "$root/data/configs/$set.toml" --out "$ens" -q
  for arch in $archs; do
    IFS=: read -r kind range gaussian <<< "$arch"
    name="${set}_${kind}_r${range}"
    extra=""
    if [ -n "$gaussian" ]; then
      name="${name}_g${gaussian}_l${levels}"
      extra=", gaussian = $gaussian"
    fi
    cat > "$out/$name.toml" <<CFG
seed = 1
[diffusion]
architecture = { kind = "$kind", range = $range$extra }
levels = $levels
[data]
n_train = 3000
n_heldout = 1000
[train]
steps = 3000
lr = 0.05
batch_size = 64
metrics_every = 1500
lr_schedule = { kind = "cosine", total_steps = 3000, min_lr = 0.0 }
CFG
    t0=$(date +%s.%N)
    "$F" train --config "$out/$name.toml" --data "$ens" --out "$out/$name.model.h5" --force -q
    t1=$(date +%s.%N)
    "$F" sample --model "$out/$name.model.h5" --method imh --n 10000 --chains 4 --out "$out/$name.imh.h5" --force > "$out/$name.sample.txt"
    acc=$(grep '^acceptance' "$out/$name.sample.txt" | awk '{print $2}')
    cmp=$("$F" compare "$ens" "$out/$name.imh.h5" | awk '$1=="chi2"||$1=="abs_M"||$1=="action_density"{printf "%s Δ/σ %s τ_B/τ_A %s; ", $1, $(NF-3), $(NF-2)}')
    printf "%-22s train %5.1f s  IMH acceptance %s  %s\n" "$name" "$(echo "$t1 - $t0" | bc)" "$acc" "$cmp" | tee -a "$results"
  done
done
