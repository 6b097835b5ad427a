# Sourced by scale/run.sh and long/run.sh: train_once FF OUT CONFIG SEED
# trains OUT.model.h5 from CONFIG once (OUT.time: wall, user, sys seconds;
# OUT.trained marks completion) and resumes an interrupted training.
train_once() {
  local ff=$1 out=$2 cfg=$3 seed=$4
  [ -f "$out.trained" ] && return 0
  if [ -f "$out.model.h5" ]; then
    /usr/bin/time -f "%e %U %S resumed" -o "$out.time" "$ff" train --resume --out "$out.model.h5" -q
  else
    /usr/bin/time -f "%e %U %S" -o "$out.time" "$ff" train --config "$cfg" --seed "$seed" --out "$out.model.h5" -q
  fi
  touch "$out.trained"
}
