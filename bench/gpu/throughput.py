#!/usr/bin/env python3
"""GPU scoring throughput: ddaebm's energy on CUDA against PyTorch (eager) on the same GPU.

Both sides score the same rows with the same weights, read from the same `.safetensors` file:
ddaebm through its Python binding over a CUDA build of `libddaebm.so` (`Model(path,
device="cuda")`), PyTorch with the forward pass of `bench/numpy_energy.py` written in torch.
ddaebm's call takes host rows and returns host energies, so the PyTorch column that compares
with it ("torch, host to host") copies the rows to the GPU, runs the forward pass and copies the
energies back; "torch, on device" times the forward pass alone on rows already on the GPU, and
"torch bf16" the same with the MLP under bf16 autocast (the mixture base measure stays f32), with
its energies' error against f32 reported (ddaebm computes in f32). Every energy column is checked against numpy in f64 before timing.

    python3 bench/gpu/throughput.py --lib gpu-artifacts/libddaebm.so \
        --models gpu-artifacts/model32.safetensors gpu-artifacts/model512.safetensors \
        [--device cuda] [--batches 4096,65536,262144,1048576] [--out results.json]

Needs numpy and torch. `--device cpu` runs the same comparison on the CPU (with the CPU
library), which is how the script is tested where there is no GPU. The model files are fitted by
`scripts/gpu/build-cuda.sh` on the build machine (default-size models on random data; the
weights' values do not matter for speed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "bench" / "scoring"))
sys.path.insert(0, str(REPO / "bindings" / "python" / "src"))

from numpy_energy import NumpyEnergy  # noqa: E402


class TorchEnergy:
    """NumpyEnergy's forward pass in torch, its weights moved to `device` once."""

    def __init__(self, ref: NumpyEnergy, device: str):
        import torch

        self.torch = torch
        t = lambda a: torch.tensor(np.array(a, np.float32), device=device)
        layer = lambda w, b, a: (t(w), t(b), None if a is None else float(a))
        self.mean, self.inv_std, self.clip = t(ref.mean), t(ref.inv_std), ref.clip
        self.base = None if ref.base is None else float(ref.base)
        self.layers = [layer(*l) for l in ref.x_branch + [ref.head_x] + ref.head_rest]
        self.mixture = None
        if ref.mixture is not None:
            w, c, q = ref.mixture
            if q is None:
                raise SystemExit("diagonal mixtures are not written here (fit makes spherical ones)")
            self.mixture = (t(w), t(c), t(q))

    def __call__(self, x):
        torch = self.torch
        xn = (x - self.mean) * self.inv_std
        u = xn / torch.sqrt(1 + (xn / self.clip) ** 2) if self.clip > 0 else xn
        h = u
        for w, b, a in self.layers:
            h = torch.addmm(b, h, w)
            if a is not None:
                h = torch.maximum(h, a * h)
        f = h[:, 0].float()
        sq = (xn * xn).sum(1)
        if self.base is not None:
            f = f - self.base * sq
        if self.mixture is not None:
            # Always f32: the component log-densities are hundreds of nats that cancel in the
            # log-sum-exp, which bf16's 8-bit mantissa cannot carry.
            with torch.autocast(device_type=x.device.type, enabled=False):
                w, c, q = self.mixture
                logits = torch.addmm(c + sq.float()[:, None] * q, xn.float(), w)
                f = f + torch.logsumexp(logits, dim=1)
        return -f


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", type=Path, required=True, help="libddaebm.so (a CUDA build for --device cuda)")
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", default="4096,65536,262144,1048576")
    ap.add_argument("--seconds", type=float, default=3.0, help="per cell (best of 3 timings)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    os.environ["DDAEBM_LIBRARY"] = str(args.lib.resolve())
    import torch

    import ddaebm
    from throughput import rows_per_second  # imports the binding: after DDAEBM_LIBRARY is set

    cuda = args.device.startswith("cuda")
    autocast_device = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    batches = [int(b) for b in args.batches.split(",")]
    gpu = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"device {args.device} ({gpu}), torch {torch.__version__}, ddaebm {ddaebm.library_version()}")
    print("| d | batch | ddaebm rows/s | torch host to host rows/s | ddaebm / torch | "
          "torch on device rows/s | torch bf16 on device rows/s | bf16 max rel error |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for path in args.models:
        ref = NumpyEnergy(path)
        d = len(ref.mean)
        model = ddaebm.Model(path, device=args.device)
        tch = TorchEnergy(ref, args.device)
        rng = np.random.default_rng(d)
        rows = (rng.standard_normal((max(batches), d)) * 2 + 1).astype(np.float32)
        # Correctness first: all three f32 paths against numpy in f64 on 4096 rows.
        check = rows[:4096]
        want = ref(check.astype(np.float64)).astype(np.float64)
        scale = np.maximum(np.abs(want), 1.0)
        with torch.no_grad():
            got_t = tch(torch.from_numpy(check).to(args.device)).cpu().numpy()
        for name, got in (("ddaebm", model.energy(check)), ("torch", got_t)):
            err = np.max(np.abs(got - want) / scale)
            print(f"d = {d}: {name} energies vs numpy f64: max rel diff {err:.2e}")
            if err > 1e-3:
                raise SystemExit(f"{name} energies disagree with numpy")
        for b in batches:
            x = rows[:b]
            x_dev = torch.from_numpy(x).to(args.device)

            def torch_host():
                with torch.no_grad():
                    return tch(torch.from_numpy(x).to(args.device)).cpu().numpy()

            def torch_device():
                with torch.no_grad():
                    tch(x_dev)
                sync()

            def torch_bf16():
                with torch.no_grad(), torch.autocast(autocast_device, dtype=torch.bfloat16):
                    tch(x_dev)
                sync()

            with torch.no_grad():
                e32 = tch(x_dev)
                with torch.autocast(autocast_device, dtype=torch.bfloat16):
                    e16 = tch(x_dev)
            bf16_err = float(((e16.float() - e32).abs() / e32.abs().clamp(min=1.0)).max())
            r_dd = rows_per_second(model.energy, x, args.seconds)
            r_th = rows_per_second(lambda _: torch_host(), x, args.seconds)
            r_td = rows_per_second(lambda _: torch_device(), x, args.seconds)
            r_tb = rows_per_second(lambda _: torch_bf16(), x, args.seconds)
            results.append({"d": d, "batch": b, "ddaebm_rows_s": r_dd, "torch_host_rows_s": r_th,
                            "torch_device_rows_s": r_td, "torch_bf16_rows_s": r_tb,
                            "bf16_max_rel_err": bf16_err})
            print(f"| {d} | {b} | {r_dd:.3g} | {r_th:.3g} | {r_dd / r_th:.2f}× | {r_td:.3g} | "
                  f"{r_tb:.3g} | {bf16_err:.1e} |", flush=True)
            del x_dev
        model.close()
    if args.out:
        args.out.write_text(json.dumps({"device": args.device, "gpu": gpu, "torch": torch.__version__,
                                        "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
