#!/usr/bin/env bash
# GPU check, run on the GPU machine from the repository root with gpu-artifacts/ carried over
# (built by scripts/gpu/build-cuda.sh). Fits a small model on the GPU, then scores the same rows
# on CPU and GPU with the same binary and compares the energies; prints timings.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/cuda-env.sh
bin=gpu-artifacts/ddaebm-train

# compare_energies LABEL CUDA.npy CPU.npy: fails unless they agree to 1e-3 (relative, floor 1).
compare_energies() {
    python3 - "$@" <<'PY'
import sys, numpy as np
label, a, b = sys.argv[1], np.load(sys.argv[2]), np.load(sys.argv[3])
rel = np.abs(a - b) / np.maximum(np.abs(b), 1.0)
print(f"{label} cuda vs cpu on {len(a)} rows: max rel diff {rel.max():.2e}, mean {rel.mean():.2e}")
assert rel.max() < 1e-3, f"GPU and CPU {label} disagree"
PY
}
out=${OUT:-/tmp/ddaebm-gpu}
mkdir -p "$out"
python3 - "$out" <<'PY'
import sys, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
c = np.array([(2*i/2.828, 2*j/2.828) for i in range(-2, 3) for j in range(-2, 3)])
x = c[rng.integers(0, 25, 20000)] + rng.normal(0, 0.1/2.828, (20000, 2))
np.save(f"{out}/train.npy", x.astype(np.float32))
np.save(f"{out}/rows.npy", rng.normal(0, 1, (1_000_000, 2)).astype(np.float32))
PY
for dev in cuda cpu; do
    /usr/bin/time -f "fit on $dev: %e s" "$bin" fit --data "$out/train.npy" --out "$out/m-$dev.safetensors" \
        --steps 3000 --device "$dev" 2>&1 | grep -E "wrote|fit on"
done
for dev in cuda cpu; do
    /usr/bin/time -f "score 1M rows on $dev: %e s" "$bin" score --model "$out/m-cuda.safetensors" \
        --data "$out/rows.npy" --out "$out/e-$dev.npy" --device "$dev" 2>&1 | grep -E "score"
done
compare_energies "energies" "$out/e-cuda.npy" "$out/e-cpu.npy"
"$bin" sample --model "$out/m-cuda.safetensors" -n 1000 --device cuda --out "$out/s.npy"

# Image models: synthetic 1×16×16 stroke images, fitted on the GPU; CPU and GPU energies of the
# same file compared as above; iterations/s of both devices printed by `fit`.
python3 - "$out" <<'PY'
import sys, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(1)
def strokes(n):
    img = np.zeros((n, 1, 16, 16), np.uint8)
    for i in range(n):
        r, c = rng.integers(2, 14, 2)
        img[i, 0, r, 2:14] = 255 if rng.random() < 0.5 else 0
        img[i, 0, 2:14, c] = 255
    return img
np.save(f"{out}/img_train.npy", strokes(4000))
np.save(f"{out}/img_rows.npy", strokes(100_000))
PY
for dev in cuda cpu; do
    "$bin" fit --data "$out/img_train.npy" --out "$out/img-$dev.safetensors" --steps 300 \
        --device "$dev" 2>&1 | grep -E "wrote"
done
for dev in cuda cpu; do
    /usr/bin/time -f "score 100k 16x16 images on $dev: %e s" "$bin" score \
        --model "$out/img-cuda.safetensors" --data "$out/img_rows.npy" --out "$out/ie-$dev.npy" \
        --device "$dev" 2>&1 | grep -E "score"
done
compare_energies "image energies" "$out/ie-cuda.npy" "$out/ie-cpu.npy"
"$bin" sample --model "$out/img-cuda.safetensors" -n 64 --device cuda --grid "$out/img-samples.png"
echo "GPU check passed"
