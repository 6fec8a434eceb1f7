"""Run in a fresh virtual environment holding only the installed wheel (and numpy), with no Rust
toolchain on PATH: what a new user does first. Prints one "ok - ..." or "not ok - ..." line per
check and exits non-zero if any failed. Used by scripts/test-wheel.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

import ddaebm

failed = 0


def check(name: str, fn: Callable[[], object]) -> None:
    global failed
    try:
        fn()
        print(f"ok - {name}", flush=True)
    except Exception:
        failed += 1
        traceback.print_exc()
        print(f"not ok - {name}", flush=True)


def no_rust_and_no_overrides() -> None:
    for tool in ("cargo", "rustc"):
        assert shutil.which(tool) is None, f"{tool} is on PATH: {shutil.which(tool)}"
    for var in ("DDAEBM_LIBRARY", "DDAEBM_TRAIN"):
        assert var not in os.environ, var
    package = Path(ddaebm.__file__).resolve().parent
    assert "site-packages" in str(package), package
    assert Path(ddaebm.library_path()).resolve() == package / "libddaebm.so"
    assert ddaebm.trainer_path() == package / "bin" / "ddaebm-train"


rng = np.random.default_rng(0)
d = 6
X = rng.standard_normal((2000, d)).astype(np.float32)
work = Path(tempfile.mkdtemp(prefix="ddaebm-wheel-"))
model: ddaebm.Model | None = None


def fit() -> None:
    global model
    # Few iterations: this checks the installed pieces, not the detector's quality.
    model = ddaebm.fit(X, work / "detector.safetensors", steps=150, generator_steps=50, progress=False)
    assert model.input_dim == d and np.isfinite(model.threshold)


def screen() -> None:
    assert model is not None
    rows = np.concatenate([rng.standard_normal((50, d)), rng.standard_normal((50, d)) + 6.0]).astype(np.float32)
    energy, is_ood = model.screen(rows)
    assert energy.shape == (100,) and is_ood.dtype == np.bool_
    assert is_ood[50:].mean() > 0.9 and is_ood[:50].mean() < 0.5, (is_ood[:50].mean(), is_ood[50:].mean())


def explain() -> None:
    assert model is not None
    row = np.zeros((1, d), np.float32)
    row[0, 2] = 8.0
    a = model.explain(row)
    assert a.shape == (1, d) and int(np.argmax(np.abs(a[0]))) == 2, a


def drift() -> None:
    assert model is not None
    same = model.drift(rng.standard_normal((300, d)).astype(np.float32))
    shifted = model.drift((rng.standard_normal((300, d)) + 1.0).astype(np.float32))
    assert 0.0 <= same.p_value <= 1.0 and shifted.p_value < 1e-3, (same, shifted)


def command_line() -> None:
    command = shutil.which("ddaebm-train")
    assert command is not None and Path(command).parent == Path(sys.executable).parent, command
    out = subprocess.run(
        [command, "inspect", "--model", str(work / "detector.safetensors")], capture_output=True, text=True, check=True
    ).stdout
    assert "ddaebm" in out, out
    np.save(work / "rows.npy", X[:10])
    subprocess.run(
        [
            command,
            "score",
            "--model",
            str(work / "detector.safetensors"),
            "--data",
            str(work / "rows.npy"),
            "--out",
            str(work / "energy.npy"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert model is not None
    assert (np.load(work / "energy.npy").astype(np.float32) == model.energy(X[:10])).all()
    bad = subprocess.run(
        [command, "fit", "--data", str(work / "missing.npy"), "--out", str(work / "x.safetensors")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "missing.npy" in bad.stderr, bad.stderr


check("no Rust toolchain; the bundled library and trainer are the ones used", no_rust_and_no_overrides)
check("ddaebm.fit on a numpy array", fit)
check("Model.screen flags shifted rows", screen)
check("Model.explain names the moved feature", explain)
check("Model.drift: shifted batch has a tiny p-value", drift)
check("ddaebm-train on the venv's PATH: inspect, score, error", command_line)
if model is not None:
    model.close()
shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if failed else 0)
