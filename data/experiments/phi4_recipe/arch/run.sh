#!/usr/bin/env bash
# Issue 16's "beyond" goals need a stronger flow than the tutorial
# architecture: the default recipe (`[phi4]` + `train.steps`, RKL, the
# recipe's schedule and curriculum, f32 conditioners) with a `[flow]`
# override, at (roughly) equal CPU time, then IMH 4 × 25 000.
#   bash run.sh SET ARCH STEPS [SEED]
# ARCH: base (tutorial: 16 couplings, conv 1→8→8→2, kernel 3), wide
# (hidden [16, 16]), k5 (kernel 5), deep (32 couplings), z2 (Z₂-equivariant).
# One thread; outputs in $OUT (default /tmp/phi4_arch); a line per run is
# appended to results.txt here: set arch steps seed train_cpu_s train_wall_s
# imh_acceptance.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
ff=${FF:-"$root/target/release/fieldflow"}
OUT=${OUT:-/tmp/phi4_arch}
mkdir -p "$OUT"
set_=$1; arch=$2; steps=$3; seed=${4:-1}
c='activation = "leaky_relu", output_activation = "tanh"'
case "$arch" in
base) flow="" ;;
wide) flow="conditioner = { kind = \"conv\", hidden = [16, 16], kernel = 3, $c }" ;;
k5) flow="conditioner = { kind = \"conv\", hidden = [8, 8], kernel = 5, $c }" ;;
deep) flow="n_layers = 32" ;;
z2) flow="z2_equivariant = true" ;;
*) echo "unknown ARCH $arch" >&2; exit 2 ;;
esac
name="${set_}_${arch}_${steps}_s$seed"
python3 - "$root/data/configs/$set_.toml" "$OUT/$name.toml" "$flow" "$steps" <<'PY'
import sys, tomllib
phi4 = tomllib.load(open(sys.argv[1], "rb"))["phi4"]
val = lambda v: "[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else repr(v)
open(sys.argv[2], "w").write("[phi4]\n" + "".join(f"{k} = {val(v)}\n" for k, v in phi4.items())
                             + f"[flow]\n{sys.argv[3]}\n[train]\nsteps = {int(sys.argv[4])}\n")
PY
export RAYON_NUM_THREADS=1
/usr/bin/time -f "%U %e" -o "$OUT/$name.time" "$ff" train --config "$OUT/$name.toml" --seed "$seed" \
    --out "$OUT/$name.h5" --force > "$OUT/$name.train.log" 2>&1
"$ff" sample --model "$OUT/$name.h5" --method imh --chains 4 --n 25000 --seed "$seed" \
    --out "$OUT/$name.imh.h5" --force > "$OUT/$name.imh.log" 2>&1
acc=$(grep -m1 acceptance "$OUT/$name.imh.log" | awk '{print $2}')
echo "$set_ $arch $steps $seed $(cat "$OUT/$name.time") $acc" | tee -a "$here/results.txt"
