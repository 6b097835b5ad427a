#!/usr/bin/env bash
# Linear Gaussian local scores on the tutorial set and E1–E5 (issue 17;
# docs/RESULTS.md "Generation with trained scores"): the protocol of
# ../phi4/run.sh (HMC ensembles of the sets' configs, DSM on 3000
# configurations, 3000 Adam steps, IMH 4 × 10⁴ with the exact log q,
# `fieldflow compare` against HMC) with 64 time levels, for the plain local
# model (range 2) and the Gaussian local model (range 1, 2). Usage:
# bash run.sh [OUTDIR] (default target/diffusion_phi4; ensembles are
# reused). Appends a line per run to results.txt beside this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
out="${1:-$root/target/diffusion_phi4}"
F="$root/target/release/fieldflow"
mkdir -p "$out"
for set in tutorial e1 e2 e3 e4 e5; do
  ens="$out/hmc_$set.h5"
  [ -f "$ens" ] || "$F" generate --config "$root/data/configs/$set.toml" --out "$ens" -q
  for arch in "local:2:false" "local:1:true" "local:2:true"; do
    IFS=: read -r kind range gaussian <<< "$arch"
    name="${set}_${kind}_r${range}_g${gaussian}_l64"
    cat > "$out/$name.toml" <<CFG
seed = 1
[diffusion]
architecture = { kind = "$kind", range = $range, gaussian = $gaussian }
levels = 64
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
    printf "%-30s train %5.1f s  IMH acceptance %s  %s\n" "$name" "$(echo "$t1 - $t0" | bc)" "$acc" "$cmp" | tee -a "$here/results.txt"
  done
done
