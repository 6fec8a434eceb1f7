#!/usr/bin/env python3
"""CPU scoring throughput: ddaebm_energy (called from C through the C ABI, and through the Python
binding) against numpy running the same forward pass on the same weights read from the
.safetensors file, and PyOD's IsolationForest.decision_function on the same rows. Side by side in
one run; ratios are the result (see bench/scoring/README.md).

    target/bench-venv/bin/python bench/scoring/throughput.py [--dims 32,512] [--out results.json]

Needs the release library and CLI (`cargo build --release --workspace --bins`), a C compiler
(for bench/scoring/throughput.c), numpy and pyod.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "target" / "release"
sys.path.insert(0, str(REPO / "bindings" / "python" / "src"))
os.environ.setdefault("DDAEBM_LIBRARY", str(RELEASE / "libddaebm.so"))

import ddaebm  # noqa: E402  (after DDAEBM_LIBRARY is set)

sys.path.insert(0, str(REPO / "bench"))
from numpy_energy import NumpyEnergy  # noqa: E402

BATCHES = [1, 64, 4096, 65536]


def flops_per_row(model: NumpyEnergy) -> int:
    mats = [w for w, _, _ in model.x_branch] + [model.head_x[0]] + [w for w, _, _ in model.head_rest]
    if model.mixture is not None:
        mats.append(model.mixture[0])
    return sum(2 * w.shape[0] * w.shape[1] for w in mats)


def rows_per_second(fn, x: np.ndarray, min_seconds: float = 1.0, repeats: int = 3) -> float:
    """Best of `repeats` timings, each of as many calls as fill `min_seconds`."""
    fn(x)  # warm-up
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn(x)
            calls += 1
            el = time.perf_counter() - start
            if el >= min_seconds / repeats:
                break
        best = max(best, calls * len(x) / el)
    return best


def sgemm_gflops() -> float:
    """numpy/OpenBLAS f32 matmul on 2048 x 2048 matrices: the practical peak of this machine."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    a @ a
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        a @ a
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9


def fit_model(d: int, tmp: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(d)
    train = rng.standard_normal((2000, d)).astype(np.float32) * 2 + 1
    np.save(tmp / f"train{d}.npy", train)
    out = tmp / f"model{d}.safetensors"
    subprocess.run([str(RELEASE / "ddaebm-train"), "fit", "--data", str(tmp / f"train{d}.npy"),
                    "--out", str(out), "--steps", "100", "--checkpoint-every", "0"],
                   check=True, capture_output=True)
    return out, train


def build_c_harness(tmp: Path) -> Path:
    """bench/scoring/throughput.c linked against the release library."""
    exe = tmp / "throughput"
    subprocess.run(["cc", "-O2", f"-I{REPO / 'include'}", str(Path(__file__).with_name("throughput.c")),
                    f"-L{RELEASE}", "-lddaebm", "-lpthread", f"-Wl,-rpath,{RELEASE}", "-o", str(exe)],
                   check=True)
    return exe


def c_rows_per_second(exe: Path, model: Path, rows: Path, batch: int, seconds: float) -> float:
    out = subprocess.run([str(exe), str(model), str(rows), str(batch), str(seconds)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="32,512")
    ap.add_argument("--seconds", type=float, default=1.5, help="timing budget per cell")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = ap.parse_args(argv)
    from pyod.models.iforest import IForest

    results = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "numpy": np.__version__, "sgemm_gflops": round(sgemm_gflops(), 1)},
               "rows": []}
    print(f"numpy sgemm 2048^3: {results['machine']['sgemm_gflops']} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        harness = build_c_harness(tmp)
        for d in [int(v) for v in args.dims.split(",")]:
            path, train = fit_model(d, tmp)
            ref = NumpyEnergy(path)
            model = ddaebm.Model(path)
            forest = IForest(random_state=0).fit(train)
            rng = np.random.default_rng(1)
            x_all = (rng.standard_normal((max(BATCHES), d)) * 2 + 1).astype(np.float32)
            x_all.tofile(tmp / "rows.f32")
            e_dd, e_np = model.energy(x_all[:4096]), ref(x_all[:4096])
            err = float(np.max(np.abs(e_dd - e_np) / np.maximum(1, np.abs(e_np))))
            assert err < 1e-4, f"numpy and ddaebm energies disagree: {err}"
            fl = flops_per_row(ref)
            for b in BATCHES:
                x = np.ascontiguousarray(x_all[:b])
                r_c = c_rows_per_second(harness, path, tmp / "rows.f32", b, args.seconds)
                r_dd = rows_per_second(model.energy, x, args.seconds)
                r_np = rows_per_second(ref, x, args.seconds)
                r_if = rows_per_second(forest.decision_function, x, args.seconds) if b >= 64 else None
                row = {"d": d, "batch": b, "ddaebm_c_rows_s": r_c, "ddaebm_rows_s": r_dd,
                       "numpy_rows_s": r_np, "iforest_rows_s": r_if, "flops_per_row": fl,
                       "max_rel_diff": err, "ddaebm_gflops": r_c * fl / 1e9}
                results["rows"].append(row)
                print(f"d={d:4} batch={b:6}: ddaebm C {r_c:12.0f} rows/s ({r_c / r_np:5.2f}x numpy), "
                      f"Python {r_dd:12.0f} ({r_dd / r_np:5.2f}x), numpy {r_np:12.0f}"
                      + (f", IForest {r_if:10.0f} (C {r_c / r_if:6.1f}x, Python {r_dd / r_if:6.1f}x)"
                         if r_if else "")
                      + f", {r_c * fl / 1e9:.1f} GFLOP/s", flush=True)
            model.close()
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
