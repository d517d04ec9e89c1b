"""Series mode on a synthetic multiseries retail table: segmentation ARI and time to segment
(docs/benchmarks.md, "Series mode").

``cluster_core.series.synthetic.retail_series``: daily sales of N stores over D days, a third
each flat, trending up and weekly-seasonal, levels from 10 to 1,000, 8% noise, late starts,
5% missing days and 7-21 day gaps in a third of the series. The table is written as Parquet
and segmented through the CLI (features method: KMeans at k = 3, KMeans over k 2..6, then
everything at its defaults: algorithms, sweep of k, recommendation), timed end to end (one
process, as a user runs it)::

    python bench/series_retail.py --series 10000 --days 365 --out /tmp/series-retail
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from _common import ROOT
from cluster_core.series.synthetic import retail_series


def segment(data: Path, out: Path, flags: list[str]) -> tuple[float, pd.DataFrame, str]:
    command = [sys.executable, "-m", "clustra.cli", "train", str(data), "--series-id", "store", "--time", "date",
               "--value", "sales", "--seed", "0", "--out", str(out), "--overwrite", *flags]
    env = dict(os.environ, CLUSTRA_DEVICE="cpu", PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=7200)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return seconds, pd.read_parquet(out / "series_assignments.parquet"), done.stdout


def main() -> None:
    from sklearn.metrics import adjusted_rand_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--out", type=Path, default=Path("/tmp/series-retail"))
    parser.add_argument("--scheduler", default="auto")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frame = retail_series(args.series, args.days, seed=0)
    data = args.out / "sales.parquet"
    frame.to_parquet(data, index=False, row_group_size=500_000)
    print(f"{len(frame):,} rows, {args.series:,} series: generated in {time.perf_counter() - started:.1f}s", flush=True)
    truth = frame.groupby("store")["behaviour"].first()
    runs = {
        "features, kmeans k=3": ["--algorithms", "kmeans", "--k", "3", "--no-insights"],
        "features, kmeans k=2..6 (recommended)": ["--algorithms", "kmeans", "--k", "2,3,4,5,6", "--no-insights"],
        "features, defaults (recommended)": [],  # what a new user runs: the default algorithms and sweep of k
    }
    for name, flags in runs.items():
        seconds, assigned, stdout = segment(data, args.out / "".join(c if c.isalnum() else "_" for c in name),
                                            [*flags, "--scheduler", args.scheduler])
        ari = adjusted_rand_score(truth.loc[assigned["store"]], assigned["cluster_id"])
        summary = [line for line in stdout.splitlines() if "series segmented by" in line]
        print(json.dumps({"run": name, "series": len(assigned), "ari": round(float(ari), 4), "seconds": round(seconds, 1),
                          "summary": summary[0] if summary else None}), flush=True)


if __name__ == "__main__":
    main()
