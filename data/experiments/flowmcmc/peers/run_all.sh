#!/usr/bin/env bash
# Sequential flowMC peer runs (one at a time). Run from /work/main.
set -u
PY=/work/main/target/peers/bin/python
H=/work/shared/peers/flowmc_modes.py
OUT=/work/main/data/experiments/flowmcmc/peers
run() {  # target dim seed
  local t=$1 d=$2 s=$3 tag="flowmc_$1_d$2_s$3"
  [ "$t" = mog4 ] && tag="flowmc_mog4_d2_s$3"
  echo "=== $tag start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  timeout 480 /usr/bin/time -v -o "$OUT/$tag.time" "$PY" "$H" --target "$t" --dim "$d" --seed "$s" --json "$OUT/$tag.json" > "$OUT/$tag.log" 2>&1
  local rc=$?
  echo "=== $tag rc=$rc end $(date -u +%T)"
  grep '^RESULT ' "$OUT/$tag.log" | sed 's/^RESULT //' >> "$OUT/results.jsonl"
  grep -E '^\[|Elapsed|Maximum resident' "$OUT/$tag.log" "$OUT/$tag.time" 2>/dev/null
}
for s in 1 2 3; do run two_modes 16 $s; done
for s in 1 2 3; do run mog4 2 $s; done
for s in 1 2 3; do run two_modes 32 $s; done
for s in 1 2 3; do run two_modes 64 $s; done
for s in 1 2 3; do run two_modes 8 $s; done
