"""End to end on the same Parquet directory: `clustra train` (KMeans, one k) vs Spark MLlib.

Usage (repository root; needs `pip install pyspark` and Java 17)::

    .venv/bin/python bench/e2e_spark.py [--rows 2000000] [--cols 16] [--k 8] [--files 16]

Both run as a user runs them, with their defaults, from a cold start:

* Clustra: the `clustra train DATA --out RUN --algorithms kmeans --k K` command (a new
  process: reads and checks the Parquet files, starts a local Dask cluster, infers the
  schema, featurizes with robust scaling, k-means++ x3 + Lloyd, validation metrics incl.
  sampled silhouette, cluster profiles, writes the run).
* Spark MLlib (local[2], a new JVM): read Parquet -> VectorAssembler -> StandardScaler ->
  KMeans (k-means||, maxIter 20) -> transform -> ClusteringEvaluator (silhouette).

Reported: wall seconds of each and Spark's time divided by Clustra's; both silhouettes
(not the same estimator: Spark's is the squared-Euclidean silhouette on all rows,
Clustra's the Euclidean one on a validation sample).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import ROOT, machine, write_result


def write_data(root: Path, rows: int, cols: int, files: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 5, (12, cols))
    out = root / "data"
    out.mkdir(parents=True)
    per_file = rows // files
    for i in range(files):
        labels = rng.integers(0, 12, per_file)
        values = centers[labels] + rng.normal(0, 1.5, (per_file, cols))
        frame = pd.DataFrame(values.astype(np.float64), columns=[f"f{j}" for j in range(cols)])
        frame.to_parquet(out / f"part-{i:04d}.parquet", index=False)
    return out


def run_clustra(data: Path, run: Path, k: int) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "clustra.cli", "train", str(data), "--out", str(run), "--algorithms", "kmeans", "--k", str(k)],
        capture_output=True, text=True, cwd=ROOT,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    best = json.loads((run / "leaderboard.json").read_text())["models"][0]
    return {"seconds": seconds, "silhouette": best["silhouette"]}


SPARK_SCRIPT = r"""
import sys, time, json
started = time.perf_counter()
from pyspark.sql import SparkSession
from pyspark.ml.feature import VectorAssembler, StandardScaler
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
spark = (SparkSession.builder.master("local[2]").appName("clustra-bench")
         .config("spark.driver.memory", "6g").config("spark.ui.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
frame = spark.read.parquet(sys.argv[1])
assembled = VectorAssembler(inputCols=frame.columns, outputCol="raw").transform(frame)
scaled = StandardScaler(inputCol="raw", outputCol="features").fit(assembled).transform(assembled).cache()
model = KMeans(k=int(sys.argv[2]), seed=0, featuresCol="features").fit(scaled)
predictions = model.transform(scaled)
silhouette = ClusteringEvaluator(featuresCol="features").evaluate(predictions)
iterations = model.summary.numIter
seconds = time.perf_counter() - started
spark.stop()
print(json.dumps({"silhouette": silhouette, "seconds_in_jvm_session": seconds, "iterations": iterations}))
"""


def run_spark(data: Path, k: int) -> dict:
    started = time.perf_counter()
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")  # loopback only
    result = subprocess.run([sys.executable, "-c", SPARK_SCRIPT, str(data), str(k)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    payload["seconds"] = seconds
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--files", type=int, default=16)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clustra-e2e-"))
    try:
        data = write_data(root, args.rows, args.cols, args.files)
        size = sum(f.stat().st_size for f in data.iterdir())
        clustra = run_clustra(data, root / "run", args.k)
        spark = run_spark(data, args.k)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    payload = {"machine": machine(), "rows": args.rows, "cols": args.cols, "k": args.k, "parquet_bytes": size,
               "clustra": clustra, "spark": spark, "spark_time_over_clustra": spark["seconds"] / clustra["seconds"]}
    print(f"(results: {write_result('e2e_spark', payload)})")
    print("| rows x cols | Parquet | Clustra train s | Spark MLlib s | Spark / Clustra | silhouette Clustra / Spark |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| {args.rows:,} x {args.cols} | {size / 2**20:.0f} MiB | {clustra['seconds']:.1f} | {spark['seconds']:.1f} | "
          f"{payload['spark_time_over_clustra']:.2f}x | {clustra['silhouette']:.3f} / {spark['silhouette']:.3f} |")


if __name__ == "__main__":
    main()
