"""Out of core: train KMeans and apply it on Parquet at least twice the Dask workers' memory.

Usage (repository root)::

    .venv/bin/python bench/out_of_core.py [--gib 4.2] [--workers 2] [--worker-memory 1GiB] [--keep DIR]

Writes ~``--gib`` GiB of float32 Parquet (64 columns, 64 MiB files), starts a LocalCluster
whose workers are limited to ``--worker-memory`` each (2 x 1 GiB = 2 GiB by default), then
runs the library's `train_models` (KMeans, k=8) and `apply_model` exactly as `clustra
train` / `clustra apply` do. The features do not fit, so every pass re-reads the Parquet
files. A sampler records the peak resident memory of every process (driver, nannies,
workers) every 0.2 s. Reported: data size on disk, workers' limit, timings, and peaks.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _common import machine, write_result

COLUMNS = 64
ROWS_PER_FILE = 262_144  # 64 MiB of float32


def write_data(root: Path, gib: float, seed: int = 0) -> Path:
    out = root / "data"
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (10, COLUMNS)).astype(np.float32)
    n_files = int(np.ceil(gib * 2**30 / (ROWS_PER_FILE * COLUMNS * 4)))
    names = [f"f{i}" for i in range(COLUMNS)]
    for i in range(n_files):
        values = centers[rng.integers(0, 10, ROWS_PER_FILE)] + rng.standard_normal((ROWS_PER_FILE, COLUMNS), dtype=np.float32)
        table = pa.Table.from_arrays([pa.array(values[:, j]) for j in range(COLUMNS)], names=names)
        pq.write_table(table, out / f"part-{i:05d}.parquet", compression="none")
    return out


class PeakMemory:
    """Samples the RSS of this process and all its descendants."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.peaks: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _role(self, proc) -> str:
        cmd = " ".join(proc.cmdline())
        if proc.pid == self.psutil.Process().pid:
            return "driver"
        if "spawn_main" in cmd or "multiprocessing" in cmd:
            return "dask worker/nanny"
        return cmd[:60]

    def _run(self) -> None:
        me = self.psutil.Process()
        while not self._stop.is_set():
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                    entry = self.peaks.setdefault(proc.pid, {"role": self._role(proc), "peak_rss": 0})
                    entry["peak_rss"] = max(entry["peak_rss"], rss)
                except self.psutil.Error:
                    continue
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def print_peaks(peaks: list[dict], disk: int) -> None:
    """The sampled peaks as a Markdown table, each beside the data's size on disk."""
    print("| process | peak RSS | vs data size |")
    print("|---|---:|---:|")
    for p in peaks:
        print(f"| {p['role']} | {p['peak_rss'] / 2**20:,.0f} MiB | {p['peak_rss'] / disk:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=4.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="1GiB", dest="worker_memory")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--keep", help="reuse/keep the data in this directory")
    args = parser.parse_args()
    from dask.utils import parse_bytes

    from cluster_core.apply import apply_model
    from cluster_core.config import TrainConfig
    from cluster_core.data import read_dataset
    from cluster_core.progress import PrintProgress
    from cluster_core.training import train_models
    from cluster_core.engine import dask_client

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="clustra-ooc-"))
    data = root / "data"
    if not data.exists():
        root.mkdir(parents=True, exist_ok=True)
        write_data(root, args.gib)
    disk = sum(f.stat().st_size for f in data.iterdir())
    limit = parse_bytes(args.worker_memory) * args.workers
    config = TrainConfig(algorithms=["kmeans"], k=[8], kmeans_n_init=1, max_iter=args.iters, silhouette_sample=2000)
    timings = {}
    try:
        with PeakMemory() as memory, dask_client(n_workers=args.workers, memory_limit=args.worker_memory) as client:
            dataset = read_dataset(str(data))
            started = time.perf_counter()
            result = train_models(dataset, config, client=client, progress=PrintProgress())
            timings["train_s"] = time.perf_counter() - started
            model = result.models()[0]
            started = time.perf_counter()
            summary = apply_model(model, dataset, root / "scored", overwrite=True, progress=PrintProgress())
            timings["apply_s"] = time.perf_counter() - started
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    peaks = sorted(memory.peaks.values(), key=lambda p: -p["peak_rss"])
    payload = {
        "machine": machine(), "data_bytes_on_disk": disk, "rows": dataset.n_rows, "workers_memory_limit_total": limit,
        "data_over_limit": disk / limit, "features_persisted": result.data.persisted, "timings": timings,
        "rows_scored": summary["n_rows"], "silhouette": result.leaderboard()["models"][0]["silhouette"],
        "peaks": peaks,
    }
    print(f"(results: {write_result('out_of_core', payload)})")
    print(f"data: {disk / 2**30:.2f} GiB on disk, {dataset.n_rows:,} rows; workers' limit {limit / 2**30:.2f} GiB "
          f"({disk / limit:.1f}x); features kept in memory: {result.data.persisted}")
    print(f"train {timings['train_s']:.0f}s, apply {timings['apply_s']:.0f}s, {summary['n_rows']:,} rows scored")
    print_peaks(peaks, disk)


if __name__ == "__main__":
    main()
