#!/usr/bin/env bash
# The free-field layer (docs/THEORY.md §4.12) with the data-trained losses
# of `cargo xtask reproduce phi4`: the same config
# (data/configs/reproduce/phi4.toml: 1000 steps, batch 128, 100 HMC
# configurations) plus `[flow] free_field = true`, the same HMC ensembles,
# the same IMH (4 chains × 10 000). The rows without the layer are the
# reproduce run's (runs_phi4.csv of data/experiments/reproduce_phi4_2026-12-03).
# Resumable: a run whose .analyze.json exists is skipped.
# Usage: ENS=/path/to/ensembles bash run.sh SEED SET LOSS [SET LOSS ...]
#   e.g. ENS=/work/repro-1203/phi4/ensembles bash run.sh 1 e3 scorenf e3 fkl
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
ff=${FF:-"$root/target/release/fieldflow"}
ens=${ENS:?set ENS to the directory of the HMC ensembles of reproduce phi4}
seed=$1; shift
mkdir -p "$here/runs"
while [ $# -ge 2 ]; do
  set_=$1; loss=$2; shift 2
  out="$here/runs/${set_}_${loss}_s${seed}_ff"
  [ -f "$out.analyze.json" ] && continue
  # The config has the layer since 2026-12-03 (thirteenth session); add it
  # to older ones.
  if grep -q '^free_field = true' "$root/data/configs/reproduce/phi4.toml"; then
    cp "$root/data/configs/reproduce/phi4.toml" "$out.toml"
  else
    sed 's/^dtype = "f32"$/dtype = "f32"\nfree_field = true/' \
      "$root/data/configs/reproduce/phi4.toml" > "$out.toml"
  fi
  grep -q '^free_field = true' "$out.toml"
  if [ ! -f "$out.trained" ]; then
    /usr/bin/time -f "%e %U %S" -o "$out.time" "$ff" train --config "$out.toml" \
      --data "$ens/$set_.h5" --loss "$loss" --seed "$seed" --out "$out.model.h5" --force \
      > "$out.train.log" 2>&1
    touch "$out.trained"
  fi
  "$ff" sample --model "$out.model.h5" --method imh --chains 4 --n 10000 --seed "$seed" \
    --out "$out.imh.h5" --force > "$out.sample.log"
  "$ff" analyze "$out.imh.h5" --json > "$out.analyze.json.tmp" 2> "$out.analyze.err" || true
  mv "$out.analyze.json.tmp" "$out.analyze.json"
  echo "$set_ $loss seed $seed: $(cat "$out.time") (wall user sys); $(grep -i accept "$out.sample.log" | head -1)"
done
