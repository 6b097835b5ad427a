#!/usr/bin/env bash
# The default φ⁴ recipe of `fieldflow train` (issue 16) on E1–E5: a config
# with only the [phi4] section (data/configs/eK.toml's target), so every
# training setting is the recipe's (crates/cli/src/cmd/train/recipe.rs),
# then IMH (4 chains × 25 000 proposals) and analyze.
# Resumable: a set whose imh_*.h5 exists is skipped; a training
# interrupted is resumed with --resume.
# Usage: bash run.sh [SEED] [SETS...]   (default seed 1, sets e1 … e5)
# With FREE_FIELD=1 the config adds `[flow] free_field = true` (the learned
# free-field layer, docs/THEORY.md §4.12) and the runs are named eK_sN_ff.
# Since 2026-12-03 the recipe turns the layer on by itself: runs without
# the suffix were made before that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
ff=${FF:-"$root/target/release/fieldflow"}
suffix=${FREE_FIELD:+_ff}
seed=${1:-1}; shift || true
sets=${*:-e1 e2 e3 e4 e5}
mkdir -p "$here/runs"
for s in $sets; do
  out="$here/runs/${s}_s${seed}${suffix}"
  cfg="$out.toml"
  # The target only: the [phi4] table of the set's generate config.
  python3 - "$root/data/configs/$s.toml" "$cfg" "$suffix" <<'PY'
import sys, tomllib
phi4 = tomllib.load(open(sys.argv[1], "rb"))["phi4"]
val = lambda v: "[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else repr(v)
flow = "[flow]\nfree_field = true\n" if sys.argv[3] else ""
open(sys.argv[2], "w").write("[phi4]\n" + "".join(f"{k} = {val(v)}\n" for k, v in phi4.items()) + flow)
PY
  if [ ! -f "$out.model.h5" ]; then
    /usr/bin/time -f "%e %U %S" -o "$out.time" "$ff" train --config "$cfg" --seed "$seed" --out "$out.model.h5" -q
    touch "$out.trained"
  elif [ ! -f "$out.trained" ]; then
    # Interrupted: continue (the time file then covers the resumed part only).
    /usr/bin/time -f "%e %U %S resumed" -o "$out.time" "$ff" train --resume --out "$out.model.h5" -q
    touch "$out.trained"
  fi
  if [ ! -f "$out.imh.h5" ]; then
    "$ff" sample --model "$out.model.h5" --method imh --chains 4 --n 25000 --seed "$seed" --out "$out.imh.h5" > "$out.sample.log"
    "$ff" analyze "$out.imh.h5" --json > "$out.analyze.json" 2> "$out.analyze.err" || true
  fi
  echo "$s seed $seed: $(cat "$out.time") (wall user sys)"; grep -i "accept" "$out.sample.log" | head -2
done
