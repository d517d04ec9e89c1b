"""Out of core as a user runs it: `clustra train` and `clustra apply` on Parquet larger than the machine.

Usage (repository root)::

    .venv/bin/python bench/out_of_core_cli.py --gib 50 --keep /tmp/ooc50     # ~50 GiB; twice a 24 GiB machine
    .venv/bin/python bench/out_of_core_cli.py --gib 1                        # a quick check of the script

Writes ``--gib`` GiB of uncompressed, plain-encoded Parquet (64 float32 columns in ~66 MiB files of
262,144 rows, ten Gaussian blobs, an int64 ``row_id`` key and the planted ``blob``: the bytes on
disk are the values), then times two commands from process
start to exit, with the default scheduler choice (``auto``: a LocalCluster when the data does not
fit in memory) and every process's peak resident memory sampled every 0.2 s:

* ``clustra train DATA --algorithms kmeans --k 10 --exclude blob --evaluate-against blob``
* ``clustra apply RUN DATA --columns row_id`` (each row's key and cluster columns: a copy of the
  whole dataset would not fit on the disk beside it)

Reported: data size on disk, rows, wall times, peaks per process, the ARI against the planted
blobs (from ``--evaluate-against``) and the rows scored.
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
import pyarrow as pa
import pyarrow.parquet as pq

from _common import machine, write_result
from out_of_core import COLUMNS, ROWS_PER_FILE, PeakMemory, print_peaks

ROOT = Path(__file__).resolve().parents[1]


def write_file(out: Path, index: int, seed: int = 0) -> None:
    """File ``index``: ROWS_PER_FILE rows of ten blobs (each file its own random stream), plain encoding."""
    centers = np.random.default_rng(seed).normal(0, 4, (10, COLUMNS)).astype(np.float32)
    rng = np.random.default_rng([seed, index])
    blobs = rng.integers(0, 10, ROWS_PER_FILE)
    values = centers[blobs] + rng.standard_normal((ROWS_PER_FILE, COLUMNS), dtype=np.float32)
    columns = {"row_id": pa.array(np.arange(index * ROWS_PER_FILE, (index + 1) * ROWS_PER_FILE))}
    columns.update({f"f{j}": pa.array(values[:, j]) for j in range(COLUMNS)})
    columns["blob"] = pa.array(blobs.astype(np.int8))
    pq.write_table(pa.table(columns), out / f"part-{index:05d}.parquet", compression="none", use_dictionary=False)


def write_data(root: Path, gib: float) -> Path:
    """~``gib`` GiB on disk: uncompressed, plain-encoded files of 262,144 rows (~66 MiB), two writers."""
    from concurrent.futures import ProcessPoolExecutor

    out = root / "data"
    out.mkdir(parents=True)
    row_bytes = 8 + COLUMNS * 4 + 1
    n_files = int(np.ceil(gib * 2**30 / (ROWS_PER_FILE * row_bytes)))
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(write_file, [out] * n_files, range(n_files)))
    return out


def timed(command: list[str], log: Path) -> float:
    """Run ``command`` (output to ``log``); its wall seconds. Fails loudly on a non-zero exit."""
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    elapsed = time.perf_counter() - started
    if code:
        sys.exit(f"{command[3]} failed ({code}); see {log}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=50.0)
    parser.add_argument("--keep", help="reuse/keep the data (and the run) in this directory")
    parser.add_argument("--max-iter", type=int, default=300, dest="max_iter")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="clustra-ooc-cli-"))
    data = root / "data"
    if not data.exists():
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_data(root, args.gib)
        print(f"wrote {args.gib} GiB in {time.perf_counter() - started:.0f}s", flush=True)
    files = sorted(data.iterdir())
    disk = sum(f.stat().st_size for f in files)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    run, scored = root / "run", root / "scored"
    clustra = [sys.executable, "-m", "clustra"]
    timings = {}
    try:
        with PeakMemory() as memory:
            timings["train_s"] = timed([*clustra, "train", str(data), "--out", str(run), "--overwrite",
                                        "--algorithms", "kmeans", "--k", "10", "--kmeans-n-init", "1",
                                        "--max-iter", str(args.max_iter), "--exclude", "blob",
                                        "--evaluate-against", "blob"], root / "train.log")
            timings["apply_s"] = timed([*clustra, "apply", str(run), str(data), "--out", str(scored), "--overwrite",
                                        "--columns", "row_id"], root / "apply.log")
        board = json.loads((run / "leaderboard.json").read_text())
        model = board["models"][0]
        scored_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in scored.glob("*.parquet"))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    peaks = sorted(memory.peaks.values(), key=lambda p: -p["peak_rss"])
    payload = {
        "machine": machine(), "memory_total": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "data_bytes_on_disk": disk, "rows": rows, "timings": timings, "rows_scored": scored_rows,
        "model": {key: model.get(key) for key in ("model_id", "n_clusters", "silhouette", "ari", "stability")},
        "peaks": peaks,
    }
    print(f"(results: {write_result('out_of_core_cli', payload)})")
    memory_total = payload["memory_total"]
    print(f"data: {disk / 2**30:.2f} GiB on disk ({disk / memory_total:.2f}x this machine's memory), {rows:,} rows")
    print(f"train {timings['train_s']:.0f}s, apply {timings['apply_s']:.0f}s, {scored_rows:,} rows scored; "
          f"model {payload['model']}")
    print_peaks(peaks, disk)


if __name__ == "__main__":
    main()
