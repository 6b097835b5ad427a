#!/usr/bin/env bash
# Pareto k̂ on diffusion proposals (issue 17's local-cubic r = 2) against HMC.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"; F="$root/target/release/fieldflow"
# Writes into the current folder; run it from a scratch folder: bash <repo>/data/experiments/pareto_k/run.sh
for set in tutorial e1 e3 e5; do
  ens=hmc_$set.h5
  [ -f $ens ] || $F generate --config $root/data/configs/$set.toml --out $ens -q
  name=${set}_lc2
  cat > $name.toml <<CFG
seed = 1
[diffusion]
architecture = { kind = "local_cubic", range = 2 }
levels = 16
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
  [ -f $name.model.h5 ] || $F train --config $name.toml --data $ens --out $name.model.h5 --force > $name.train.txt
  for m in imh is; do
    [ -f $name.$m.h5 ] || $F sample --model $name.model.h5 --method $m --n 10000 --chains 4 --out $name.$m.h5 --force > $name.$m.txt
    echo "== $set $m $(grep -E '^(acceptance|ESS/N|Pareto)' $name.$m.txt | tr '\n' ' ')"
    $F compare $ens $name.$m.h5 | awk '$1=="chi2"||$1=="abs_M"{print "   ", $0}'
  done
  grep -E "^(ESS|Pareto|IMH acc)" $name.train.txt | tr '\n' ' '; echo
done
