#!/usr/bin/env bash
# The training methods side by side (see README.md): samplers and energies on 8 and 25
# Gaussians, GCD's entropy weight tau = 0 against the default, and GCD as a detector on the
# 11 tasks of bench/ood (parts toy, ood); DCD against short-run CD on the same toy data, on the
# digits (near/far OOD, denoising) and as a detector (parts dcd-toy, dcd-digits, dcd-ood).
# Writes bench/methods/results-*.json[l].
#
#   bench/methods/run.sh            # the GCD parts (about 35 min on 2 cores)
#   bench/methods/run.sh toy        # one part: toy, ood, dcd-toy, dcd-digits, dcd-ood or
#                                   # dcd-ablation (DCD's step scale and chain length)
#   bench/methods/run.sh dcd        # the three DCD parts
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
ood_method() {  # method: runs it with its defaults on the 11 tasks of bench/ood, seed 0
  venv=target/bench-venv
  [[ -x $venv/bin/python ]] || { python3 -m venv $venv && $venv/bin/pip install -q numpy scikit-learn pyod; }
  $venv/bin/python bench/ood/run.py --detectors ddaebm --seeds 0 --ddaebm-label "ddaebm-$1" \
    --ddaebm-args "--method $1" --tmp-dir "target/bench-$1" \
    --out-json "bench/methods/results-$1-ood.json"
}
has_data() {
  [[ -d ../shared/data/adbench ]] || { echo "../shared/data not found: part $part is skipped"; return 1; }
}
if [[ "$part" == all || "$part" == ood ]] && has_data; then
  ood_method gcd
fi
if [[ "$part" == dcd || "$part" == dcd-toy ]]; then
  # DCD and short-run CD, mixture base (the default) and isotropic base; two runs at a time.
  dout=bench/methods/results-dcd-toy.jsonl
  export RAYON_NUM_THREADS=1
  { target/release/xtask methods-toy method=dcd toy=8 seed=0 out=target/bench-methods/dcd-g8 >> "$dout.a"; \
    target/release/xtask methods-toy method=dcd toy=8 seed=0 base=iso >> "$dout.a"; } &
  { target/release/xtask methods-toy method=dcd toy=25 seed=0 out=target/bench-methods/dcd-g25 >> "$dout.b"; \
    target/release/xtask methods-toy method=dcd toy=25 seed=0 base=iso >> "$dout.b"; } &
  wait
  cat "$dout.a" "$dout.b" > "$dout" && rm -f "$dout.a" "$dout.b"
fi
if [[ "$part" == dcd-ablation ]]; then
  # DCD's step scale c and chain length K on 8 Gaussians, 1000 iterations, no baseline.
  aout=bench/methods/results-dcd-ablation.jsonl
  : > "$aout"
  for k in 5 20; do
    for c in 0.5 0.7 1 2; do
      RAYON_NUM_THREADS=1 target/release/xtask methods-toy method=dcd toy=8 seed=0 steps=1000 \
        langevin=$k scale=$c baseline=0 >> "$aout"
    done
  done
fi
if [[ "$part" == dcd || "$part" == dcd-digits ]] && [[ -f ../shared/data/digits.npz ]]; then
  # The default networks (mixture base), then the isotropic base, where the learned part of
  # the energy does the work.
  { RAYON_NUM_THREADS=1 target/release/xtask methods-digits seed=0; \
    RAYON_NUM_THREADS=1 target/release/xtask methods-digits seed=0 base=iso; } \
    > bench/methods/results-dcd-digits.jsonl
fi
if [[ "$part" == dcd || "$part" == dcd-ood ]] && has_data; then
  ood_method dcd
fi
