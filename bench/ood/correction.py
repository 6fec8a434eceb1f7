#!/usr/bin/env python3
"""What the learned energy adds to the base measure, task by task (see README.md).

ddaebm's level-0 energy is E(x) = -(h(x) + log b(x)): b is the base measure (the spherical
Gaussian mixture fitted by EM, or the isotropic Gaussian on small data) and h the energy MLP's
learned log-ratio. For each task and seed this script fits a default model with `ddaebm-train fit`
(the same split and seed as run.py), scores the test rows with `ddaebm-train score`, splits the
energy into its two terms with plain numpy (bench/numpy_energy.py; the sum is checked against the
CLI's energies) and reports the AUROC of the base alone (-log b), of the correction alone (-h)
and of the full energy.

    target/bench-venv/bin/python bench/ood/correction.py --datasets core --seeds 0 \
        [--ddaebm-args "--r1-gamma 0.02"] [--work-dir target/bench-ood/correction] [--reuse]

`--reuse` keeps a task's model from an earlier run in the same work directory instead of
fitting again (the split is recomputed and must match the stored one).
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "bench"))

from numpy_energy import NumpyEnergy  # noqa: E402
from run import load_task, select_tasks  # noqa: E402


def fit_and_score(binary: Path, extra: list[str], seed: int, X_train, X_test, work: Path,
                  reuse: bool) -> np.ndarray:
    """Fits (unless reusing a model of the same split) and returns the CLI's test energies."""
    work.mkdir(parents=True, exist_ok=True)
    train, test, model = work / "train.npy", work / "test.npy", work / "model.safetensors"
    energies = work / "e.npy"
    same_split = (reuse and model.is_file() and train.is_file()
                  and np.array_equal(np.load(train), X_train.astype(np.float32)))
    np.save(test, np.ascontiguousarray(X_test, dtype=np.float32))
    if not same_split:
        np.save(train, np.ascontiguousarray(X_train, dtype=np.float32))
        subprocess.run([str(binary), "fit", "--data", str(train), "--out", str(model),
                        "--seed", str(seed), *extra], check=True, capture_output=True, text=True)
    subprocess.run([str(binary), "score", "--model", str(model), "--data", str(test),
                    "--out", str(energies)], check=True, capture_output=True, text=True)
    return np.load(energies).astype(np.float64).ravel()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="core")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--ddaebm-bin", type=Path, default=REPO / "target" / "release" / "ddaebm-train")
    ap.add_argument("--ddaebm-args", default="", help="extra args for `ddaebm-train fit`")
    ap.add_argument("--work-dir", type=Path, default=REPO / "target" / "bench-ood" / "correction")
    ap.add_argument("--reuse", action="store_true", help="reuse models of an earlier run")
    args = ap.parse_args(argv)
    if not (args.data_dir / "adbench").is_dir():
        print(f"data directory {args.data_dir} (with adbench/) not found: skipped")
        return 0
    if not args.ddaebm_bin.is_file():
        ap.error(f"{args.ddaebm_bin} not found: build it with `cargo build --release -p ddaebm-train`")
    from sklearn.metrics import roc_auc_score

    extra = shlex.split(args.ddaebm_args)
    print("| task | seed | base | base alone | correction alone | full energy | full − base |")
    print("|---|---:|---|---:|---:|---:|---:|")
    deltas = []
    for task in select_tasks(args.datasets):
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            X_train, X_test, y, _ = load_task(task, args.data_dir, seed)
            work = args.work_dir / f"{task}-s{seed}"
            e_cli = fit_and_score(args.ddaebm_bin, extra, seed, X_train, X_test, work, args.reuse)
            model = NumpyEnergy(work / "model.safetensors")
            h, log_base = (p.astype(np.float64) for p in model.parts(X_test.astype(np.float32)))
            e = -(h + log_base)
            scale = np.maximum(1.0, np.abs(e_cli))
            if np.max(np.abs(e - e_cli) / scale) > 1e-3:
                raise SystemExit(f"{task} seed {seed}: the numpy energy disagrees with the CLI's "
                                 f"(max relative difference {np.max(np.abs(e - e_cli) / scale):.2e})")
            kind = "mixture" if model.mixture is not None else "isotropic"
            base, corr, full = (roc_auc_score(y, s) for s in (-log_base, -h, e_cli))
            deltas.append(full - base)
            print(f"| {task} | {seed} | {kind} | {base:.4f} | {corr:.4f} | {full:.4f} | "
                  f"{full - base:+.4f} |", flush=True)
    print(f"\nmean full − base over {len(deltas)} runs: {np.mean(deltas):+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
