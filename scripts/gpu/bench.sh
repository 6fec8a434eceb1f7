#!/usr/bin/env bash
# GPU benchmarks of issue 7, run on the GPU machine from the repository root with gpu-artifacts/
# or gpu-bundle.tar.xz carried over (built by scripts/gpu/build-cuda.sh). Needs python3 with
# numpy and torch (CUDA).
#   1. scoring throughput, batches 4096 to 1M rows, d = 32 and 512: ddaebm (CUDA build of
#      libddaebm.so through the Python binding) against PyTorch eager on the same GPU, same
#      weights (bench/gpu/throughput.py);
#   2. training iterations/s on the 25-Gaussians toy, heads 2 × 128 and 2 × 300: `ddaebm-train fit
#      --device cuda` against bench/train_speed_torch.py --device cuda (same networks, losses,
#      batch and optimiser work).
# Writes everything under $OUT (default /tmp/ddaebm-gpu-bench); about 5 minutes on an H100.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/cuda-env.sh
out=${OUT:-/tmp/ddaebm-gpu-bench}
mkdir -p "$out"
art=gpu-artifacts
if [ ! -x "$art/ddaebm-train" ] || [ ! -f "$art/libddaebm.so" ]; then
    # carried as gpu-bundle.tar.xz (scripts/gpu/build-cuda.sh): two CUDA binaries exceed the
    # device tool's carry limit uncompressed
    python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall('.')" gpu-bundle.tar.xz
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

python3 bench/gpu/throughput.py --lib "$art/libddaebm.so" \
    --models "$art/model32.safetensors" "$art/model512.safetensors" \
    --batches "${BATCHES:-4096,65536,262144,1048576}" --out "$out/throughput.json" | tee "$out/throughput.md"

python3 - "$out/toy.npy" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)
c = np.array([(2*i/2.828, 2*j/2.828) for i in range(-2, 3) for j in range(-2, 3)])
x = c[rng.integers(0, 25, 20000)] + rng.normal(0, 0.1/2.828, (20000, 2))
np.save(sys.argv[1], x.astype(np.float32))
PY
steps=${STEPS:-2000}
echo "| head | ddaebm it/s (cuda) | PyTorch it/s (cuda) | ratio |" | tee "$out/train.md"
echo "|---|---:|---:|---:|" | tee -a "$out/train.md"
for width in 128 300; do
    dd=$("$art/ddaebm-train" fit --data "$out/toy.npy" --out "$out/toy-$width.safetensors" \
        --steps "$steps" --width "$width" --base-components 0 --device cuda 2>&1 \
        | sed -nE 's/.*\(([0-9.]+) it\/s.*/\1/p')
    th=$(python3 bench/train_speed_torch.py --width "$width" --device cuda --warmup 20 \
        --steps $((steps / 2)) 2>"$out/torch-$width.log" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["it_per_s"])')
    ratio=$(python3 -c "print(f'{$dd / $th:.2f}×')")
    echo "| 2 × $width | $dd | $th | $ratio |" | tee -a "$out/train.md"
done
echo "GPU benchmarks written to $out"
