#!/usr/bin/env bash
# Issue 16, L = 32 budget scan (fifteenth session): the run.sh recipe with the
# free-field layer at L = 32 and a larger `[train] steps`, then IMH 4 × 25 000
# and `compare` against the seed-1 HMC ensemble (runs/L32_s1.hmc.h5, made by
# run.sh). Usage: bash budget.sh "SEED STEPS TAG" ...  (the session ran
# "2 16000 2x" and "1 24000 3x"; "1 16000 2x" was run by hand before).
# Resumable: an interrupted training resumes, finished steps are skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ff=${FF:-"$here/../../../../target/release/fieldflow"}
cd "$here/runs"
for spec in "$@"; do
  set -- $spec; seed=$1; steps=$2; tag=$3
  out=L32_s${seed}_ff_$tag
  printf '[phi4]\nlattice = [32, 32]\nm2 = -4.0\nlambda = 4.742\n[flow]\nfree_field = true\n[train]\nsteps = %s\n' "$steps" > $out.toml
  if [ ! -f $out.trained ]; then
    if [ -f $out.model.h5 ]; then
      /usr/bin/time -f "%e %U %S resumed" -o $out.time "$ff" train --resume --out $out.model.h5 > $out.train.log 2>&1
    else
      /usr/bin/time -f "%e %U %S" -o $out.time "$ff" train --config $out.toml --seed $seed --out $out.model.h5 > $out.train.log 2>&1
    fi
    touch $out.trained
  fi
  [ -f $out.imh.h5 ] || "$ff" sample --model $out.model.h5 --method imh --chains 4 --n 25000 --seed $seed --out $out.imh.h5 > $out.sample.log
  "$ff" compare L32_s1.hmc.h5 $out.imh.h5 > $out.compare.txt
  "$ff" compare L32_s1.hmc.h5 $out.imh.h5 --json > $out.compare.json
  echo "$out done $(cat $out.time)"
done
