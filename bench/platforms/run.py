"""Throughput of the Spark and Ray examples next to single-process scoring, on this machine.

    target/platforms-venv/bin/python bench/platforms/run.py [--rows 1000000] [--dim 32]

Every path does the same whole job: read a Parquet table of ``--rows`` rows (``--dim`` float32
features plus an id), score it (energy and verdict), write it back as Parquet with the two
columns added. Paths:

* single process: pyarrow reads the table, one ``Model.screen`` call scores it on all cores
  (the library's own threads), pyarrow writes it;
* Spark: ``examples/spark/score.py``'s ``score`` on a ``local[N]`` session (N = cores), one
  Python worker per core scoring with one thread each;
* Ray Data: ``examples/ray/score.py``'s ``score_batch`` in ``map_batches`` on a local Ray with
  N CPUs.

The Spark and Ray sessions start (and run the job once on a small table) before the clock
starts: their start-up (a JVM, a Ray cluster: seconds) is reported apart. The model is fitted
here with the release ``ddaebm-train`` (100 iterations: the weights do not change the speed).
The package must be installed in the running Python, from a release wheel for numbers worth
reporting (``scripts/build-wheel.sh``). Writes ``results.json`` beside this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import ddaebm

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "examples" / "spark"), str(REPO / "examples" / "ray")]


def make_table(path: Path, n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cols = {"id": pa.array(np.arange(n, dtype=np.int64))}
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[: n // 100] += 4.0  # some clear outliers
    for j in range(d):
        cols[f"f{j}"] = pa.array(x[:, j])
    pq.write_table(pa.table(cols), path, row_group_size=65_536)


def single_process(model_path: Path, src: Path, dst: Path, columns: list[str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    table = pq.read_table(src)
    x = np.column_stack([table.column(c).to_numpy() for c in columns]).astype(np.float32, copy=False)
    with ddaebm.Model(model_path) as model:
        t1 = time.perf_counter()
        energy, is_ood = model.screen(x)
        score_s = time.perf_counter() - t1
    table = table.append_column("energy", pa.array(energy)).append_column("is_ood", pa.array(is_ood))
    pq.write_table(table, dst)
    return time.perf_counter() - t0, score_s


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="ddaebm-platforms-"))
    trainer = REPO / "target" / "release" / "ddaebm-train"
    try:
        rng = np.random.default_rng(0)
        np.save(work / "train.npy", rng.standard_normal((4000, args.dim)).astype(np.float32))
        model_path = work / "model.safetensors"
        subprocess.run([str(trainer), "fit", "--data", str(work / "train.npy"), "--out", str(model_path),
                        "--steps", "100", "--generator-steps", "0", "--checkpoint-every", "0"],
                       check=True, capture_output=True)
        src, small = work / "rows.parquet", work / "small.parquet"
        make_table(src, args.rows, args.dim, 1)
        make_table(small, 10_000, args.dim, 2)
        columns = [f"f{j}" for j in range(args.dim)]
        with ddaebm.Model(model_path) as m:
            x = np.column_stack([pq.read_table(src).column(c).to_numpy() for c in columns])
            reference = m.energy(x)
        results: dict[str, object] = {"rows": args.rows, "dim": args.dim, "cores": cores,
                                      "library": ddaebm.library_path(), "runs": {}}
        runs: dict[str, dict[str, float]] = {}

        def check(out: Path) -> None:
            t = pq.read_table(out).to_pandas().sort_values("id")
            e = t["energy"].to_numpy(np.float32)
            assert len(e) == args.rows and (e.view(np.uint32) == reference.view(np.uint32)).all()

        best = [single_process(model_path, src, work / "single.parquet", columns) for _ in range(args.repeats)]
        check(work / "single.parquet")
        runs["single process"] = {"seconds": min(b[0] for b in best), "score_only_seconds": min(b[1] for b in best)}

        # --- Spark ---
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        import score as spark_score  # examples/spark/score.py

        t0 = time.perf_counter()
        spark = (SparkSession.builder.master(f"local[{cores}]").appName("bench")
                 .config("spark.ui.enabled", "false").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        spark.sparkContext.addFile(str(model_path))
        spark_score.score(spark.read.parquet(str(small)), model_path.name, columns, False) \
            .write.mode("overwrite").parquet(str(work / "spark-warm"))
        start = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            spark_score.score(spark.read.parquet(str(src)), model_path.name, columns, False) \
                .write.mode("overwrite").parquet(str(work / "spark.parquet"))
            times.append(time.perf_counter() - t0)
        spark.stop()
        check(work / "spark.parquet")
        runs["Spark local[%d]" % cores] = {"seconds": min(times), "startup_seconds": start}

        # --- Ray Data ---
        import ray

        sys.modules.pop("score", None)
        sys.path.remove(str(REPO / "examples" / "spark"))
        import score as ray_score  # examples/ray/score.py

        t0 = time.perf_counter()
        # Workers import examples/ray/score.py by name, as the driver did.
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO / "examples" / "ray")}})
        data = model_path.read_bytes()
        kwargs = {"digest": hashlib.sha256(data).hexdigest(), "model_bytes": ray.put(data),
                  "columns": columns, "pvalues": False}

        def ray_job(path: Path, out: Path) -> None:
            ray.data.read_parquet(str(path)).map_batches(
                ray_score.score_batch, fn_kwargs=kwargs, batch_format="pandas", num_cpus=1
            ).write_parquet(str(out), mode="overwrite")

        ray_job(small, work / "ray-warm")
        start = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ray_job(src, work / "ray.parquet")
            times.append(time.perf_counter() - t0)
        ray.shutdown()
        check(work / "ray.parquet")
        runs["Ray Data (%d CPUs)" % cores] = {"seconds": min(times), "startup_seconds": start}

        base = runs["single process"]["seconds"]
        for name, r in runs.items():
            r["rows_per_s"] = args.rows / r["seconds"]
            r["ratio_to_single"] = r["rows_per_s"] / (args.rows / base)
        results["runs"] = runs
        (Path(__file__).parent / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"{args.rows} rows x {args.dim} features, {cores} cores, best of {args.repeats}")
        print("| path | rows/s | vs single process | start-up |")
        print("|---|---:|---:|---:|")
        for name, r in runs.items():
            extra = f"{r['startup_seconds']:.1f} s" if "startup_seconds" in r else "-"
            print(f"| {name} | {r['rows_per_s']:,.0f} | {r['ratio_to_single']:.2f}x | {extra} |")
        s = runs["single process"]
        print(f"(single process: scoring alone {s['score_only_seconds']:.3f} s of {s['seconds']:.3f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
