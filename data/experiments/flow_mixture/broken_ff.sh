#!/bin/sh
# broken.sh's L = 32 run with the free-field layer in each mixture component
# (`[flow] free_field = true`, broken_l32_ff.toml); the training data and the
# HMC reference are generated as in broken.sh (same seeds). Outputs in out/:
# bp32.h5, mx32_ff.h5, gl32_ff.h5, imh32_ff.h5, hmc32.h5; analyze text in
# broken_ff_l32.txt. FF overrides the binary; each step is skipped when its
# output exists (rerun to resume after an interruption).
FF=${FF:-../../../target/release/fieldflow}
set -e
cd "$(dirname "$0")"
mkdir -p out && cd out
[ -f bp32.h5 ] || $FF generate --lattice 32x32 --m2 -4 --lambda 4 --chains 16 --n-cfg 20 --n-therm 300 --thin 10 --seed 6 --out bp32.h5
[ -f mx32_ff.h5 ] || /usr/bin/time -f "%e %U %S" -o mx32_ff.time $FF train --config ../broken_l32_ff.toml --out mx32_ff.h5 -q
[ -f gl32_ff.h5 ] || $FF sample --model mx32_ff.h5 --method global-local --local hmc --n 2000 --chains 4 --seed 4 --out gl32_ff.h5
[ -f imh32_ff.h5 ] || $FF sample --model mx32_ff.h5 --method imh --n 2000 --chains 4 --seed 4 --out imh32_ff.h5
[ -f hmc32.h5 ] || $FF generate --lattice 32x32 --m2 -4 --lambda 4 --chains 4 --n-cfg 2000 --n-therm 500 --seed 4 --out hmc32.h5
{ for f in gl32_ff imh32_ff hmc32; do echo "== $f"; $FF analyze $f.h5; done
  echo "== training (last metrics)"; tail -1 mx32_ff.h5.metrics.csv; echo "train time: $(cat mx32_ff.time)"; } > ../broken_ff_l32.txt
cat ../broken_ff_l32.txt
