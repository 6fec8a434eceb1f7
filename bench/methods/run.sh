#!/usr/bin/env bash
# The training methods side by side (see README.md): samplers and energies on 8 and 25
# Gaussians, GCD's entropy weight tau = 0 against the default, and GCD as a detector on the
# 11 tasks of bench/ood. Writes bench/methods/results-toy.jsonl and results-gcd-ood.json.
#
#   bench/methods/run.sh            # everything (about 25 min on 2 cores)
#   bench/methods/run.sh toy        # the toy part only (about 8 min)
set -euo pipefail
cd "$(dirname "$0")/../.."
part="${1:-all}"
cargo build --release -p xtask -p ddaebm-train
out=bench/methods/results-toy.jsonl
if [[ "$part" == all || "$part" == toy ]]; then
  : > "$out"
  # One thread per run, two runs at a time.
  export RAYON_NUM_THREADS=1
  { target/release/xtask methods-toy toy=8 seed=0 out=target/bench-methods/g8 >> "$out.a"; \
    target/release/xtask methods-toy toy=8 seed=0 tau=0 ddaebm=0 ddpm1000=0 >> "$out.a"; } &
  { target/release/xtask methods-toy toy=25 seed=0 out=target/bench-methods/g25 >> "$out.b"; \
    target/release/xtask methods-toy toy=25 seed=0 tau=0 ddaebm=0 ddpm1000=0 >> "$out.b"; } &
  wait
  cat "$out.a" "$out.b" > "$out" && rm -f "$out.a" "$out.b"
fi
if [[ "$part" == all || "$part" == ood ]]; then
  if [[ ! -d ../shared/data/adbench ]]; then
    echo "../shared/data not found: the detector part is skipped"
    exit 0
  fi
  venv=target/bench-venv
  [[ -x $venv/bin/python ]] || { python3 -m venv $venv && $venv/bin/pip install -q numpy scikit-learn pyod; }
  $venv/bin/python bench/ood/run.py --detectors ddaebm --seeds 0 --ddaebm-label ddaebm-gcd \
    --ddaebm-args "--method gcd" --tmp-dir target/bench-gcd \
    --out-json bench/methods/results-gcd-ood.json
fi
