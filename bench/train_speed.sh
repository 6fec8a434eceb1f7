#!/usr/bin/env bash
# Training speed of `ddaebm-train fit` on CPU: iterations/s for the default networks (head
# 2 × 128) and the reference networks (head 2 × 300, docs/method.md#networks), same data, batch and steps, and the
# same iteration in PyTorch (bench/train_speed_torch.py: same networks, losses, batch and
# optimiser work), run alternately in this script. Writes the table into BENCHMARKS.md
# (section "Training speed").
# Both use the isotropic Gaussian base (--base-components 0): the mixture base that fit picks
# for larger data has no PyTorch twin here.
# TORCH_PY: a Python with torch (default target/torch-venv/bin/python; install with
#   python3 -m venv --system-site-packages target/torch-venv && target/torch-venv/bin/pip install torch
# ). Without one, the PyTorch columns say "not installed".
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --workspace --bins  # the same features as the other release builds (-p would rebuild candle)
bin=target/release/ddaebm-train
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# numpy for the data: the benchmark venv's Python where it exists (see bench/ood/README.md).
py=target/bench-venv/bin/python
[ -x "$py" ] || py=python3
"$py" - "$tmp/toy.npy" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)
c = np.array([(2*i/2.828, 2*j/2.828) for i in range(-2, 3) for j in range(-2, 3)])
x = c[rng.integers(0, 25, 20000)] + rng.normal(0, 0.1/2.828, (20000, 2))
np.save(sys.argv[1], x.astype(np.float32))
PY
steps=${STEPS:-2000}
rate() { # width threads
    RAYON_NUM_THREADS=$2 "$bin" fit --data "$tmp/toy.npy" --out "$tmp/m.safetensors" --steps "$steps" \
        --width "$1" --base-components 0 2>&1 | sed -nE 's/.*\(([0-9.]+) it\/s.*/\1/p'
}
torch_py=${TORCH_PY:-target/torch-venv/bin/python}
torch_rate() { # width threads
    if ! "$torch_py" -c 'import torch' 2>/dev/null; then echo "not installed"; return; fi
    OMP_WAIT_POLICY=PASSIVE "$torch_py" bench/train_speed_torch.py --width "$1" --threads "$2" \
        --warmup 20 --steps $((steps / 2)) 2>/dev/null \
        | python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["it_per_s"])'
}
ratio() { python3 -c "import sys; a, b = sys.argv[1:]; print(f'{float(a)/float(b):.2f}×' if b[0].isdigit() else '–')" "$1" "$2"; }
rows=""
for threads in 1 2; do
    a=$(rate 128 $threads); ta=$(torch_rate 128 $threads)
    b=$(rate 300 $threads); tb=$(torch_rate 300 $threads)
    rows+="| $threads | $a | $ta | $(ratio "$a" "$ta") | $b | $tb | $(ratio "$b" "$tb") |"$'\n'
done
torch_version=$("$torch_py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "not installed")
section=$(cat <<MD
## Training speed (CPU)

\`bench/train_speed.sh\`: \`ddaebm-train fit\` on 20 000 rows of 2-D 25-Gaussians, batch 200,
$steps iterations (each one energy step — R1 penalty (second order), score matching, NCE and
conditional NCE — and one
generator + encoder step), $(nproc) cores, $(date -u +%Y-%m-%d). PyTorch $torch_version runs the
same iteration (\`bench/train_speed_torch.py\`: same networks, losses, batch, Adam and EMA; its
docstring lists the differences) for half as many timed iterations after 20 warm-up ones,
alternating with ddaebm in the same script (\`OMP_WAIT_POLICY=PASSIVE\`). ddaebm's rate is the
whole \`fit\` (data loading, calibration and writing the model included). Ratios are between runs of
this one script; absolute numbers depend on the machine.

| threads | default nets (head 2 × 128): ddaebm it/s | PyTorch it/s | ddaebm / PyTorch | reference nets (head 2 × 300): ddaebm it/s | PyTorch it/s | ddaebm / PyTorch |
|---|---|---|---|---|---|---|
$rows
Where the time went, and what changed (2026-11-30): a profile of the one-thread head-300 fit had
the matrix products at about 30% and candle's elementwise work, allocation and zero-filling at
most of the rest. Two changes, both measured on that fit: (1) the R1 penalty's and score
matching's input gradient of the MLP energy is written out layer by layer
(\`EnergyNet::log_density_ratio_and_input_grad\`) instead of a candle backward pass, which also
computed every unused weight gradient and started each gradient as zeros + grad; candle's
gradient-graph retention is now only turned on for image models: 19.6 → 28.5 it/s;
(2) bias addition, PReLU and the PReLU's gradient selection are one CPU pass each
(\`src/nn/ops.rs\`), the bias gradient a matrix product: 28.5 → 31.6 it/s (head 128:
55 → 71 → 92 it/s). The previous run of this script (2026-11-30, before both): 1.10× / 0.95× on
one thread, 1.99× / 1.55× on two. PyTorch's rates on this shared machine vary by up to ±25%
between runs (head 128, one thread: 50.4 and 37.7 it/s in two runs the same evening).
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
