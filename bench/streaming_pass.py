"""One streaming featurize pass over Parquet: the pandas path against the Arrow path, per core.

Usage (repository root)::

    .venv/bin/python bench/streaming_pass.py [--gb 2.0] [--rows-per-file 1000000] [--keep DIR] [--attribution]

Writes ~``--gb`` GB (10^9 bytes on disk, snappy) of a mixed table: 8 float64 and 8 float32
columns (3% missing), 2 integer and 2 boolean columns with nulls, 4 string categories (one
with 400 values: frequency encoding; one dictionary-encoded), 2 timestamps, and 2 columns
the model does not use (an id and a short free-text note). A feature pipeline is fitted on
a 20,000-row sample; then every file goes through one featurize pass, each variant over the
same files in the same run:

* ``pandas (Dask partition)``: what a streaming pass did before: the Dask partition
  (every column decoded to pandas), then ``FeaturePipeline.transform`` on it;
* ``pandas (used columns)``, with ``--attribution``: pyarrow reads only the used columns,
  ``to_pandas()``, transform (separates the two savings);
* ``arrow``: the library's Arrow path (``parquet_pieces`` + ``featurize_piece``): only the used
  columns, encoded without pandas.

Everything runs in one thread (pyarrow's CPU and I/O pools set to 1 thread, BLAS/numexpr to
1), so CPU seconds are seconds of one core. Reported: MB of Parquet (the files' bytes on disk)
per CPU second and per wall second, for each variant; the machine's load average before and
after (other processes share the cores: CPU seconds are the fair measure there).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_MAX_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from _common import machine, write_result  # noqa: E402

PLANS = np.array(["basic", "pro", "team", "free", "enterprise", "trial"])
CHANNELS = np.array(["web", "store", "phone", "partner"])
REGIONS = np.array(["north", "south", "east", "west", "central"])
CITIES = np.array([f"city-{i:03d}" for i in range(400)])
WORDS = np.array(["red", "green", "blue", "fast", "slow", "new", "old", "big", "small", "late"])


def write_file(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)

    def with_nulls(values: np.ndarray, share: float) -> pa.Array:
        return pa.array(values, mask=rng.random(len(values)) < share)

    columns: dict[str, pa.Array] = {}
    for i in range(8):
        columns[f"x{i}"] = with_nulls(rng.normal(i, 1 + i, rows), 0.03)
    for i in range(8):
        columns[f"y{i}"] = with_nulls(rng.standard_normal(rows, dtype=np.float32) * (i + 1), 0.03)
    columns["visits"] = with_nulls(rng.poisson(4, rows).astype(np.int32), 0.02)
    columns["items"] = with_nulls(rng.integers(0, 1000, rows), 0.02)
    columns["member"] = with_nulls(rng.random(rows) < 0.4, 0.02)
    columns["newsletter"] = with_nulls(rng.random(rows) < 0.7, 0.02)
    columns["plan"] = with_nulls(PLANS[rng.integers(0, len(PLANS), rows)], 0.02)
    columns["channel"] = with_nulls(CHANNELS[rng.integers(0, len(CHANNELS), rows)], 0.02).dictionary_encode()
    columns["region"] = pa.array(REGIONS[rng.integers(0, len(REGIONS), rows)])
    columns["city"] = with_nulls(CITIES[rng.zipf(1.3, rows) % len(CITIES)], 0.02)
    start = np.datetime64("2023-01-01T00:00:00", "us").astype(np.int64)
    for name in ("signup", "last_order"):
        stamps = start + rng.integers(0, 730 * 86_400, rows) * 1_000_000
        columns[name] = pa.array(stamps, pa.timestamp("us"), mask=rng.random(rows) < 0.02)
    columns["order_id"] = pa.array(np.arange(rows, dtype=np.int64) + seed * rows)  # unused: an identifier
    note = WORDS[rng.integers(0, len(WORDS), (rows, 3))]
    columns["note"] = pa.array(np.char.add(np.char.add(note[:, 0], " "), np.char.add(note[:, 1], note[:, 2])))  # unused
    pq.write_table(pa.table(columns), path, row_group_size=250_000)


def write_data(root: Path, gb: float, rows_per_file: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    total = 0
    while total < gb * 1e9:
        path = root / f"part-{len(files):04d}.parquet"
        write_file(path, rows_per_file, seed=len(files))
        files.append(path)
        total += path.stat().st_size
        print(f"  wrote {path.name}: {path.stat().st_size / 1e6:.0f} MB (total {total / 1e9:.2f} GB)", flush=True)
    return files


KINDS = {"plan": "categorical", "channel": "categorical", "region": "categorical", "city": "categorical",
         "member": "boolean", "newsletter": "boolean", "signup": "datetime", "last_order": "datetime"}


def fit_pipeline(files: list[Path]):
    from cluster_core.features import FeaturePipeline
    from cluster_core.schema import infer_schema

    sample = pq.read_table(files[0]).slice(0, 20_000).to_pandas()
    schema = infer_schema(sample, exclude=["order_id", "note"], kinds=KINDS)
    return FeaturePipeline(schema).fit(sample)


def used_bytes(files: list[Path], columns: list[str]) -> int:
    """Compressed bytes of the used columns' chunks, from the footers."""
    total = 0
    for file in files:
        meta = pq.ParquetFile(file).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                if group.column(c).path_in_schema in columns:
                    total += group.column(c).total_compressed_size
    return total


def run_pass(name: str, parts, featurize) -> dict:
    """Featurize every part once; CPU and wall seconds of the reads and featurizing (the checksum of the
    features, computed between parts, is not timed), rows and the checksum."""
    rows, checksum, cpu, wall = 0, 0.0, 0.0, 0.0
    for part in parts:
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        features = featurize(part)
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
        rows += features.shape[0]
        checksum += float(features.sum(dtype=np.float64))
        del features
    result = {"variant": name, "cpu_s": cpu, "wall_s": wall, "rows": rows, "checksum": checksum}
    print(f"  {name}: {result['cpu_s']:.1f} CPU s, {result['wall_s']:.1f} wall s, {rows:,} rows", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="Parquet on disk, 10^9 bytes (default 2.0)")
    parser.add_argument("--rows-per-file", type=int, default=1_000_000, dest="rows_per_file")
    parser.add_argument("--keep", help="reuse/keep the data in this directory")
    parser.add_argument("--attribution", action="store_true",
                        help="also run 'pandas (used columns)': pyarrow reads the used columns, then to_pandas()")
    args = parser.parse_args()

    import dask

    from cluster_core.arrow_stream import featurize_piece, parquet_pieces
    from cluster_core.data import read_dataset

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    load_before = os.getloadavg()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="clustra-stream-"))
    data = root / "data"
    try:
        files = sorted(data.glob("*.parquet")) if data.is_dir() else []
        if not files:
            print(f"writing ~{args.gb} GB of Parquet to {data}", flush=True)
            files = write_data(data, args.gb, args.rows_per_file)
        disk = sum(f.stat().st_size for f in files)
        pipeline = fit_pipeline(files)
        columns = pipeline.input_columns
        used = used_bytes(files, columns)
        print(f"{len(files)} files, {disk / 1e9:.2f} GB on disk ({used / disk:.0%} in the {len(columns)} used columns), "
              f"{pipeline.n_features} features", flush=True)
        dataset = read_dataset(str(data))
        pieces = parquet_pieces(dataset, columns)
        assert pieces is not None and len(pieces) == dataset.frame.npartitions
        with dask.config.set(scheduler="sync"):
            results = [
                run_pass("pandas (Dask partition)", dataset.frame.to_delayed(), lambda p: pipeline.transform(p.compute())),
                run_pass("arrow", pieces, lambda piece: featurize_piece(piece, pipeline)),
            ]
            if args.attribution:
                results.insert(1, run_pass("pandas (used columns)", files, lambda f: pipeline.transform(
                    pq.read_table(f, columns=columns, use_threads=False).to_pandas())))
        for result in results:
            result["mb_per_cpu_s"] = disk / 1e6 / result["cpu_s"]
            result["mb_per_wall_s"] = disk / 1e6 / result["wall_s"]
        same = all(np.isclose(r["checksum"], results[0]["checksum"], rtol=1e-9) and r["rows"] == results[0]["rows"] for r in results)
        load_after = os.getloadavg()
        print(f"\nsame features in every variant (rows and checksum): {same}")
        print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), cores {os.cpu_count()}")
        print(f"{'variant':<26}{'CPU s':>8}{'wall s':>8}{'MB/CPU-s':>10}{'MB/wall-s':>11}{'vs pandas':>11}")
        for r in results:
            print(f"{r['variant']:<26}{r['cpu_s']:>8.1f}{r['wall_s']:>8.1f}{r['mb_per_cpu_s']:>10.0f}"
                  f"{r['mb_per_wall_s']:>11.0f}{results[0]['cpu_s'] / r['cpu_s']:>10.1f}x")
        payload = {"machine": machine(), "files": len(files), "bytes_on_disk": disk, "used_column_bytes": used,
                   "rows": results[0]["rows"], "n_features": pipeline.n_features, "same_features": same,
                   "load_before": load_before, "load_after": load_after, "results": results}
        print(f"(results: {write_result('streaming_pass', payload)})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
