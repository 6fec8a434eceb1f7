"""Score a Parquet table with a ddaebm model on Ray Data.

    python score.py MODEL.safetensors IN.parquet OUT.parquet [--address auto]
                    [--columns f0,f1,...] [--pvalues]

Every input column is kept; ``energy`` (float, higher = more out-of-distribution) and
``is_ood`` (the calibrated verdict) are added, and ``p_value`` with ``--pvalues``. The feature
columns are ``--columns`` in that order, or else every floating-point column in table order.

How it runs: the model file's bytes go into Ray's object store once. ``map_batches`` runs the
scoring function as Ray tasks, one CPU each; Ray keeps its worker processes between tasks, so
each worker writes the bytes to a local file and opens the model (``ddaebm.shared_model``) once,
on its first task, and reuses it for every later batch, scoring with one thread (the task's
CPU). Workers need the ``ddaebm`` package installed (the wheel); nothing has to be on a shared
file system. (A pool of actors holding the model would work too, but on a small machine the
actors take every CPU and Ray Data's read tasks wait for them forever.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile

import numpy as np
import pandas as pd
import pyarrow as pa
import ray

import ddaebm


def local_model(digest: str, model_bytes: ray.ObjectRef | bytes) -> ddaebm.Model:
    """This worker's copy of the model: written once per machine (named by its SHA-256), opened
    once per worker process."""
    path = os.path.join(tempfile.gettempdir(), f"ddaebm-{digest}.safetensors")
    if not os.path.exists(path):
        data = model_bytes if isinstance(model_bytes, bytes) else ray.get(model_bytes)
        fd, partial = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".partial")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(partial, path)  # atomic: workers racing here all see a whole file
    return ddaebm.shared_model(path, threads=1)


def score_batch(
    batch: pd.DataFrame, *, digest: str, model_bytes: ray.ObjectRef | bytes, columns: list[str], pvalues: bool
) -> pd.DataFrame:
    model = local_model(digest, model_bytes)
    x = batch[columns].to_numpy(dtype=np.float32)
    energy, is_ood = model.screen(x)
    batch = batch.assign(energy=energy, is_ood=is_ood)
    if pvalues:
        batch = batch.assign(p_value=model.pvalues(x))
    return batch


def feature_columns(schema: ray.data.Schema, columns: list[str] | None) -> list[str]:
    if columns:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise SystemExit(f"error: columns not in the table: {', '.join(missing)}")
        return columns
    found = [
        name
        for name, kind in zip(schema.names, schema.types)
        if isinstance(kind, pa.DataType) and pa.types.is_floating(kind)
    ]
    if not found:
        raise SystemExit("error: the table has no floating-point columns; name them with --columns")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("input", help="Parquet file or directory")
    ap.add_argument("output", help="Parquet directory to write (replaced if it exists)")
    ap.add_argument("--address", default=None, help="a running Ray cluster (default: start one here)")
    ap.add_argument("--columns", help="comma-separated feature columns, in the model's order")
    ap.add_argument("--pvalues", action="store_true", help="add conformal p-values")
    args = ap.parse_args(argv)

    with ddaebm.Model(args.model) as model:  # fail fast here: file and width
        input_dim = model.input_dim
    with open(args.model, "rb") as f:
        model_bytes = f.read()

    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.read_parquet(args.input)
        columns = feature_columns(ds.schema(), args.columns.split(",") if args.columns else None)
        if input_dim != len(columns):
            raise SystemExit(f"error: the model takes {input_dim} features, got {len(columns)} columns")
        scored = ds.map_batches(
            score_batch,
            fn_kwargs={
                "digest": hashlib.sha256(model_bytes).hexdigest(),
                "model_bytes": ray.put(model_bytes),
                "columns": columns,
                "pvalues": args.pvalues,
            },
            batch_format="pandas",
            num_cpus=1,
        )
        scored.write_parquet(args.output, mode="overwrite")
        out = ray.data.read_parquet(args.output)
        flagged = int(out.sum("is_ood") or 0)
        print(f"flagged {flagged} of {out.count()} rows -> {args.output}")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
