#!/usr/bin/env python3
"""CPU scoring throughput: ddaebm_energy (called from C through the C ABI, and through the Python
binding) against ONNX Runtime running the model's exported graph (`ddaebm-train export --onnx`,
Python API, as many intra-op threads as ddaebm's pool, all graph optimisations), PyTorch on the
same weights (eager, and torch.compile where it works; same thread count; skipped with a note
when torch is not installed), numpy running
the same forward pass on the same weights read from the .safetensors file, and PyOD's
IsolationForest.decision_function on the same rows. Side by side in one run; ratios are the
result (see bench/scoring/README.md). Also single-row latency (p50 / p99) of ddaebm's and ONNX
Runtime's Python calls.

    target/bench-venv/bin/python bench/scoring/throughput.py [--dims 32,512] [--out results.json]

Needs the release library and CLI (`cargo build --release --workspace --bins`), a C compiler
(for bench/scoring/throughput.c), numpy, pyod and onnxruntime.
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


def single_row_latency_us(fn, row: np.ndarray, calls: int = 3000) -> tuple[float, float]:
    """p50 and p99 of `calls` single-row calls, in microseconds (after 200 warm-up calls)."""
    for _ in range(200):
        fn(row)
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn(row)
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e6), float(np.percentile(times, 99) * 1e6)


def onnx_session(model: Path, tmp: Path, threads: int):
    """The model exported with `ddaebm-train export --onnx`, in an ONNX Runtime CPU session."""
    import onnxruntime as ort

    path = tmp / (model.stem + ".onnx")
    subprocess.run([str(RELEASE / "ddaebm-train"), "export", "--model", str(model), "--onnx", str(path)],
                   check=True, capture_output=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["energy"], {"x": x})[0]


def torch_energies(ref: NumpyEnergy, threads: int) -> dict:
    """PyTorch eager and compiled forward passes of the same weights (bench/scoring/torch_energy.py),
    as numpy-in, numpy-out callables; empty when torch is missing."""
    try:
        import torch
    except ImportError:
        print("PyTorch not installed: its columns are skipped", flush=True)
        return {}
    from torch_energy import TorchEnergy

    torch.set_num_threads(threads)
    module = TorchEnergy(ref).eval()

    def wrap(fn):
        def call(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return fn(torch.from_numpy(x)).numpy()
        return call

    out = {"torch_eager": wrap(module)}
    try:
        compiled = torch.compile(module, dynamic=True)
        wrap(compiled)(np.zeros((3, len(ref.mean)), np.float32))  # compile now, not in a timing
        out["torch_compile"] = wrap(compiled)
    except Exception as e:  # noqa: BLE001  (any backend failure: report and go on)
        print(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}): skipped", flush=True)
    return out


def ort_c_harness(tmp: Path) -> tuple[Path, Path]:
    """bench/scoring/ort_c.c (ONNX Runtime's C API, loaded with dlopen) and the libonnxruntime.so
    the onnxruntime Python wheel ships, so that both ONNX Runtime columns run the same build."""
    import onnxruntime

    libs = sorted((Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so*"))
    if not libs:
        raise SystemExit("the onnxruntime package has no capi/libonnxruntime.so*")
    exe = tmp / "ort_c"
    subprocess.run(["cc", "-O2", str(Path(__file__).with_name("ort_c.c")), "-ldl", "-o", str(exe)], check=True)
    return exe, libs[0]


def ort_c(exe: Path, lib: Path, mode: str, *args) -> str:
    out = subprocess.run([str(exe), mode, str(lib), *map(str, args)], check=True, capture_output=True, text=True)
    return out.stdout


def c_latency_us(exe: Path, model: Path, calls: int) -> tuple[float, float]:
    """p50 and p99 of single-row ddaebm_energy calls through the C ABI (bench/scoring/latency.c)."""
    out = subprocess.run([str(exe), str(model), str(calls)], check=True, capture_output=True, text=True)
    p50, p99, *_ = out.stdout.split()
    return float(p50), float(p99)


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
    import onnxruntime
    from pyod.models.iforest import IForest

    threads = os.cpu_count() or 1  # ddaebm's default pool: one thread per core
    results = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
                           "threads": threads, "sgemm_gflops": round(sgemm_gflops(), 1)},
               "rows": [], "latency": []}
    print(f"numpy sgemm 2048^3: {results['machine']['sgemm_gflops']} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        harness = build_c_harness(tmp)
        latency_exe = tmp / "latency"
        subprocess.run(["cc", "-O2", f"-I{REPO / 'include'}", str(Path(__file__).with_name("latency.c")),
                        f"-L{RELEASE}", "-lddaebm", "-lpthread", f"-Wl,-rpath,{RELEASE}", "-o",
                        str(latency_exe)], check=True)
        ort_exe, ort_lib = ort_c_harness(tmp)
        for d in [int(v) for v in args.dims.split(",")]:
            path, train = fit_model(d, tmp)
            ref = NumpyEnergy(path)
            model = ddaebm.Model(path)
            ort_energy = onnx_session(path, tmp, threads)
            peers = {"onnxruntime": ort_energy, **torch_energies(ref, threads)}
            forest = IForest(random_state=0).fit(train)
            rng = np.random.default_rng(1)
            x_all = (rng.standard_normal((max(BATCHES), d)) * 2 + 1).astype(np.float32)
            x_all.tofile(tmp / "rows.f32")
            e_dd, e_np = model.energy(x_all[:4096]), ref(x_all[:4096])
            err = float(np.max(np.abs(e_dd - e_np) / np.maximum(1, np.abs(e_np))))
            assert err < 1e-4, f"numpy and ddaebm energies disagree: {err}"
            errs = {}
            for name, fn in peers.items():
                e = fn(x_all[:4096])
                errs[name] = float(np.max(np.abs(e_dd - e) / np.maximum(1, np.abs(e_dd))))
                assert errs[name] < 1e-4, f"{name} and ddaebm energies disagree: {errs[name]}"
            onnx_path = tmp / (path.stem + ".onnx")  # written by onnx_session above
            ort_c(ort_exe, ort_lib, "energy", onnx_path, tmp / "rows.f32", d, 4096, tmp / "ort_c.f32", threads)
            e = np.fromfile(tmp / "ort_c.f32", dtype=np.float32)
            errs["onnxruntime_c"] = float(np.max(np.abs(e_dd - e) / np.maximum(1, np.abs(e_dd))))
            assert errs["onnxruntime_c"] < 1e-4, f"ONNX Runtime (C) and ddaebm disagree: {errs['onnxruntime_c']}"
            fl = flops_per_row(ref)
            for b in BATCHES:
                x = np.ascontiguousarray(x_all[:b])
                r_c = c_rows_per_second(harness, path, tmp / "rows.f32", b, args.seconds)
                r_dd = rows_per_second(model.energy, x, args.seconds)
                r_np = rows_per_second(ref, x, args.seconds)
                r_peer = {name: rows_per_second(fn, x, args.seconds) for name, fn in peers.items()}
                r_peer["onnxruntime_c"] = float(ort_c(ort_exe, ort_lib, "throughput", onnx_path, tmp / "rows.f32", d,
                                                      b, args.seconds, threads))
                r_ort = r_peer["onnxruntime"]
                r_if = rows_per_second(forest.decision_function, x, args.seconds) if b >= 64 else None
                row = {"d": d, "batch": b, "ddaebm_c_rows_s": r_c, "ddaebm_rows_s": r_dd,
                       "numpy_rows_s": r_np, "iforest_rows_s": r_if, "flops_per_row": fl,
                       "max_rel_diff": err, "ddaebm_gflops": r_c * fl / 1e9}
                for name, r in r_peer.items():
                    row[f"{name}_rows_s"] = r
                    row[f"{name}_gflops"] = r * fl / 1e9
                    row[f"max_rel_diff_{name}"] = errs[name]
                results["rows"].append(row)
                print(f"d={d:4} batch={b:6}: ddaebm C {r_c:12.0f} rows/s ({r_c / r_np:5.2f}x numpy), "
                      f"Python {r_dd:12.0f} ({r_dd / r_np:5.2f}x), numpy {r_np:12.0f}, "
                      + "".join(f", {name} {r:12.0f} (C {r_c / r:5.2f}x, Python {r_dd / r:5.2f}x)"
                                for name, r in r_peer.items())
                      + (f", IForest {r_if:10.0f} (C {r_c / r_if:6.1f}x, Python {r_dd / r_if:6.1f}x)"
                         if r_if else "")
                      + f", {r_c * fl / 1e9:.1f} GFLOP/s", flush=True)
            row = np.ascontiguousarray(x_all[:1])
            lat = {"d": d}
            for name, fn in [("ddaebm", model.energy), *peers.items()]:
                lat[name + "_p50_us"], lat[name + "_p99_us"] = single_row_latency_us(fn, row)
            lat["ddaebm_c_p50_us"], lat["ddaebm_c_p99_us"] = c_latency_us(latency_exe, path, 20000)
            c50, c99, _ = ort_c(ort_exe, ort_lib, "latency", onnx_path, tmp / "rows.f32", d, 20000, threads).split()
            lat["onnxruntime_c_p50_us"], lat["onnxruntime_c_p99_us"] = float(c50), float(c99)
            results["latency"].append(lat)
            print(f"d={d:4} single row (Python, p50 / p99 us): "
                  + ", ".join(f"{name} {lat[name + '_p50_us']:.1f} / {lat[name + '_p99_us']:.1f}"
                              for name in ["ddaebm", *peers]), flush=True)
            print(f"d={d:4} single row (C, p50 / p99 us): ddaebm {lat['ddaebm_c_p50_us']:.1f} / "
                  f"{lat['ddaebm_c_p99_us']:.1f}, onnxruntime {lat['onnxruntime_c_p50_us']:.1f} / "
                  f"{lat['onnxruntime_c_p99_us']:.1f}", flush=True)
            model.close()
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
