#!/usr/bin/env bash
# Training speed of `ddaebm-train fit` on CPU: iterations/s for the default networks (head
# 2 × 128) and the SPEC §2.2 toy networks (head 2 × 300), same data, batch and steps, run one
# after the other in this script. Writes the table into BENCHMARKS.md (section "Training speed").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --workspace --bins  # the same features as the other release builds (-p would rebuild candle)
bin=target/release/ddaebm-train
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/toy.npy" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)
c = np.array([(2*i/2.828, 2*j/2.828) for i in range(-2, 3) for j in range(-2, 3)])
x = c[rng.integers(0, 25, 20000)] + rng.normal(0, 0.1/2.828, (20000, 2))
np.save(sys.argv[1], x.astype(np.float32))
PY
steps=${STEPS:-2000}
rate() { # width threads
    RAYON_NUM_THREADS=$2 "$bin" fit --data "$tmp/toy.npy" --out "$tmp/m.safetensors" --steps "$steps" \
        --width "$1" 2>&1 | sed -nE 's/.*\(([0-9.]+) it\/s.*/\1/p'
}
rows=""
for threads in 1 2; do
    a=$(rate 128 $threads); b=$(rate 300 $threads)
    ratio=$(python3 -c "print(f'{$a/$b:.2f}')")
    rows+="| $threads | $a | $b | ${ratio}× |"$'\n'
done
section=$(cat <<MD
## Training speed (CPU)

\`bench/train_speed.sh\`: \`ddaebm-train fit\` on 20 000 rows of 2-D 25-Gaussians, batch 200,
$steps iterations (each one energy step — R1 penalty (second order), score matching, NCE and
conditional NCE — and one
generator + encoder step), $(nproc) cores, $(date -u +%Y-%m-%d). Ratios are between runs of this
one script; absolute numbers depend on the machine.

| threads | default nets (head 2 × 128), it/s | SPEC toy nets (head 2 × 300), it/s | default / toy |
|---|---|---|---|
$rows
MD
)
python3 - "$section" <<'PY'
import re, sys, pathlib
p = pathlib.Path("BENCHMARKS.md")
text = p.read_text() if p.exists() else "# Benchmarks\n\nEvery number here is produced by a script under `bench/`.\n"
section = sys.argv[1].strip() + "\n"
if "## Training speed (CPU)" in text:
    text = re.sub(r"## Training speed \(CPU\)\n.*?(?=\n## |\Z)", section, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + section
p.write_text(text)
PY
echo "$section"
