"""Runs the Spark and Ray examples (examples/spark, examples/ray) on a Parquet table built from
the binding fixture and checks that they return exactly what single-process scoring returns.
Prints "ok - ..." / "not ok - ..." lines and exits non-zero if any check failed. Used by
scripts/test-wheel.sh, in a virtual environment holding the wheel, pyspark and ray.

    python platforms_check.py FIXTURE_DIR REPO_DIR WORK_DIR
"""

from __future__ import annotations

import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

import ddaebm

fixture, repo, work = (Path(p) for p in sys.argv[1:4])
work.mkdir(parents=True, exist_ok=True)
info = dict(line.split() for line in (fixture / "fixture.txt").read_text().splitlines())
n_fixture, d = int(info["rows"]), int(info["dim"])
base = np.fromfile(fixture / "rows.f32", dtype="<f4").reshape(n_fixture, d)
rust_energy = np.fromfile(fixture / "energy.f32", dtype="<f4")
model_path = fixture / "model.safetensors"

# The fixture's rows first (their energies are the Rust library's own), then jittered copies:
# enough rows for several partitions and batches.
n = 20_000
rng = np.random.default_rng(0)
rows = np.concatenate([base, base[rng.integers(0, n_fixture, n - n_fixture)]])
rows[n_fixture:] += rng.normal(0.0, 0.5, (n - n_fixture, d)).astype(np.float32)
table = pd.DataFrame({"id": np.arange(n, dtype=np.int64)})
for j in range(d):
    table[f"f{j}"] = rows[:, j]
table["source"] = np.where(np.arange(n) % 3 == 0, "a", "b")
input_path = work / "rows.parquet"
table.sample(frac=1.0, random_state=1).to_parquet(input_path, index=False)  # order must not matter

with ddaebm.Model(model_path) as model:
    t0 = time.perf_counter()
    energy, is_ood = model.screen(rows)
    pvalue = model.pvalues(rows)
    single_s = time.perf_counter() - t0
    model_threshold = model.threshold
n_calibration = int(info["calibration_rows"])

failed = 0


def run_example(name: str) -> None:
    out = work / f"{name}.parquet"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            str(repo / "examples" / name / "score.py"),
            str(model_path),
            str(input_path),
            str(out),
            "--pvalues",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise AssertionError(f"examples/{name}/score.py exited with {proc.returncode}")
    got = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    assert len(got) == n and (got["id"].to_numpy() == np.arange(n)).all(), "rows lost or duplicated"
    # Every input column comes back unchanged, next to the scores.
    for j in range(d):
        assert (got[f"f{j}"].to_numpy().view(np.uint32) == rows[:, j].view(np.uint32)).all(), f"f{j} changed"
    assert (got["source"].to_numpy() == table["source"].to_numpy()).all()
    e = got["energy"].to_numpy(np.float32)
    # The same library scores every batch. A row's energy does not depend on the other rows in
    # its batch, except that batches of 256 rows or fewer may take other matrix-product kernels
    # (a few ulps; README, "Using the library from C, C++, Go and Python"): equal to float32
    # rounding, and verdicts equal away from the threshold.
    assert np.allclose(e, energy, rtol=1e-6, atol=1e-6), f"max |diff| {np.abs(e - energy).max()}"
    assert np.allclose(e[:n_fixture], rust_energy, rtol=1e-6, atol=1e-6)
    clear = np.abs(energy - model_threshold) > 1e-5
    assert (got["is_ood"].to_numpy(bool)[clear] == is_ood[clear]).all()
    assert np.allclose(got["p_value"].to_numpy(np.float32), pvalue, rtol=0, atol=1.0 / n_calibration + 1e-6)
    same = int((e.view(np.uint32) == energy.view(np.uint32)).sum())
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("flagged ")), "")
    assert line.startswith(f"flagged {int(is_ood.sum())} of {n} rows"), proc.stdout[-2000:]
    print(
        f"# {name}: {n} rows in {wall:.1f} s end to end (single process scores them in {single_s * 1e3:.1f} ms); "
        f"{same} of {n} energies bit-identical to single-process scoring"
    )


for name in ("spark", "ray"):
    try:
        run_example(name)
        print(f"ok - examples/{name}/score.py matches single-process scoring", flush=True)
    except Exception:
        failed += 1
        traceback.print_exc()
        print(f"not ok - examples/{name}/score.py matches single-process scoring", flush=True)
sys.exit(1 if failed else 0)
