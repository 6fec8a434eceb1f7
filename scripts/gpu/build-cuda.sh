#!/usr/bin/env bash
# Builds the `cuda` feature of ddaebm-train on a machine without a GPU (see ../shared/GPU.md):
# installs the CUDA 13 toolchain wheels into .cuda/, links against a stub libcuda.so generated
# from cudarc's driver bindings, and leaves stripped CUDA builds of the CLI and the library in
# gpu-artifacts/, with two default-size models for scripts/gpu/bench.sh.
# Takes ≈ 12 minutes on 2 cores the first time (10 for the two CUDA builds, measured 2026-12-01).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .cuda/nvidia/cu13/bin/nvcc ] || [ ! -e .cuda/nvidia/cu13/include/nv/target ]; then
    python3 -m pip install -q --target .cuda "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-runtime==13.0.*" \
        "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cuda-nvrtc==13.0.*" \
        "nvidia-cublas>=13.0,<13.1" nvidia-curand "nvidia-cuda-cccl==13.0.*"
fi
H=$PWD/.cuda/nvidia/cu13
(cd "$H/lib" && for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done \
    && ln -sf libcurand.so.10 libcurand.so)
# The driver library comes with the NVIDIA driver, absent here: link against a stub that
# defines every driver-API function cudarc declares. The real libcuda.so.1 is used at run time.
mkdir -p "$H/lib/stubs"
cudarc=$(cargo metadata --format-version 1 --features cuda 2>/dev/null \
    | python3 -c "import json,sys; print(next(p['manifest_path'] for p in json.load(sys.stdin)['packages'] if p['name']=='cudarc'))")
grep -oE "^\s+fn (cu[A-Za-z0-9_]+)\(" "$(dirname "$cudarc")/src/driver/sys/mod.rs" \
    | sed -E 's/^\s+fn (cu[A-Za-z0-9_]+)\(/int \1(void) { return 0; }/' | sort -u > "$H/lib/stubs/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 "$H/lib/stubs/stub.c" -o "$H/lib/stubs/libcuda.so"
# Both packages in one build: built apart, the library alone unifies fewer features of candle's
# dependencies and would compile candle and its CUDA kernels a second time.
CUDA_HOME=$H PATH=$H/bin:$PATH LIBRARY_PATH=$H/lib:$H/lib/stubs CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} \
    cargo build --release -p ddaebm-train -p ddaebm --features ddaebm-train/cuda,ddaebm/cuda \
    --target-dir target/cuda
mkdir -p gpu-artifacts
strip -o gpu-artifacts/ddaebm-train target/cuda/release/ddaebm-train
strip -o gpu-artifacts/libddaebm.so target/cuda/release/libddaebm.so
# Default-size models for scripts/gpu/bench.sh (d = 32 and 512, 2000 rows of random data, 100
# iterations: the weights' values do not matter for speed), fitted here with the CPU build.
cargo build --release -q --workspace --bins
for d in 32 512; do
    python3 -c "
import random, sys
d = int(sys.argv[1]); r = random.Random(d)
for _ in range(2000):
    print(','.join(f'{r.gauss(0, 1) * 2 + 1:.6f}' for _ in range(d)))" "$d" > "target/gpu-train$d.csv"
    target/release/ddaebm-train fit --data "target/gpu-train$d.csv" --out "gpu-artifacts/model$d.safetensors" \
        --steps 100 --checkpoint-every 0 2>&1 | tail -n 1
done
# One CUDA binary is ≈ 44 MB and the device tool carries at most 64 MiB: the bundle (PTX
# compresses well) carries the CLI, the library and the models together for scripts/gpu/bench.sh.
tar -cJf gpu-bundle.tar.xz gpu-artifacts
ls -la gpu-artifacts/ gpu-bundle.tar.xz
