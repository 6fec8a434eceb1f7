"""Score a Parquet table with a ddaebm model on Apache Spark.

    python score.py MODEL.safetensors IN.parquet OUT.parquet [--master local[2]]
                    [--columns f0,f1,...] [--pvalues]

Every input column is kept; ``energy`` (float, higher = more out-of-distribution) and
``is_ood`` (the calibrated verdict) are added, and ``p_value`` with ``--pvalues``. The feature
columns are ``--columns`` in that order, or else every floating-point column in table order.

How it runs: ``SparkContext.addFile`` ships the model file to every executor;
``DataFrame.mapInPandas`` hands each partition to a Python worker as pandas batches; the worker
opens the model once (``ddaebm.shared_model``: one open per worker process, reused by every
later task on it) and scores each batch with the Python binding, one thread per task (Spark
runs ``spark.task.cpus`` = 1 core per task, so more threads would oversubscribe the executor).
Executors need the ``ddaebm`` package installed (the wheel) and the same Python as the driver.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark import SparkFiles
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BooleanType, DoubleType, FloatType, StructField, StructType

import ddaebm


def feature_columns(df: DataFrame, columns: list[str] | None) -> list[str]:
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise SystemExit(f"error: columns not in the table: {', '.join(missing)}")
        return columns
    found = [f.name for f in df.schema.fields if isinstance(f.dataType, (FloatType, DoubleType))]
    if not found:
        raise SystemExit("error: the table has no floating-point columns; name them with --columns")
    return found


def score(df: DataFrame, model_name: str, columns: list[str], pvalues: bool) -> DataFrame:
    """``df`` with the scores appended; ``model_name`` is a file shipped with ``addFile``."""
    added = [StructField("energy", FloatType(), False), StructField("is_ood", BooleanType(), False)]
    if pvalues:
        added.append(StructField("p_value", FloatType(), False))
    schema = StructType(df.schema.fields + added)

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = ddaebm.shared_model(SparkFiles.get(model_name), threads=1)
        for batch in batches:
            x = batch[columns].to_numpy(dtype=np.float32)
            energy, is_ood = model.screen(x)
            batch = batch.assign(energy=energy, is_ood=is_ood)
            if pvalues:
                batch = batch.assign(p_value=model.pvalues(x))
            yield batch

    return df.mapInPandas(score_batches, schema)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("input", help="Parquet file or directory")
    ap.add_argument("output", help="Parquet directory to write (replaced if it exists)")
    ap.add_argument("--master", default=os.environ.get("SPARK_MASTER", "local[2]"))
    ap.add_argument("--columns", help="comma-separated feature columns, in the model's order")
    ap.add_argument("--pvalues", action="store_true", help="add conformal p-values")
    args = ap.parse_args(argv)

    # Python workers run the driver's interpreter, where ddaebm is installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(args.master)
        .appName("ddaebm-score")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        spark.sparkContext.addFile(os.path.abspath(args.model))
        df = spark.read.parquet(args.input)
        columns = feature_columns(df, args.columns.split(",") if args.columns else None)
        with ddaebm.Model(args.model) as model:  # fail fast on the driver: file and width
            if model.input_dim != len(columns):
                raise SystemExit(f"error: the model takes {model.input_dim} features, got {len(columns)} columns")
        scored = score(df, os.path.basename(args.model), columns, args.pvalues)
        scored.write.mode("overwrite").parquet(args.output)
        flagged = spark.read.parquet(args.output).filter("is_ood").count()
        print(f"flagged {flagged} of {df.count()} rows -> {args.output}")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
