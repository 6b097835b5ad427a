#!/usr/bin/env bash
# Linear Gaussian local scores on the tutorial set and E1–E5 (issue 17;
# docs/RESULTS.md "Generation with trained scores near criticality"): the
# protocol of ../phi4/run.sh (HMC ensembles of the sets' configs, DSM on
# 3000 configurations, 3000 Adam steps, IMH 4 × 10⁴ with the exact log q,
# `fieldflow compare` against HMC) with 64 time levels, for the plain local
# model (range 2) and the Gaussian local model (range 1, 2). Usage:
# bash run.sh [OUTDIR] (default target/diffusion_phi4; ensembles are
# reused). Appends a line per run to results.txt beside this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ARCHS="local:2:false local:1:true local:2:true" LEVELS=64 RESULTS="$here/results.txt" \
  exec bash "$here/../phi4/run.sh" "$@"
