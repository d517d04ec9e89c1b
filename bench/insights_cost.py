"""What insights cost: the share of a default ``clustra train`` spent computing insights.json.

Writes a mixed table (numbers, a category, a flag, a date, coordinates) as Parquet, runs the
default ``clustra train`` on it (every default algorithm and cluster count, insights on at
their default sample sizes) as a user would, and reads the insights time the run records
(``run.json``: ``insights_seconds`` out of ``seconds``). The target: at most 15% of the train.

Usage: ``.venv/bin/python bench/insights_cost.py [--rows 200000]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import ROOT, machine, write_result


def table(n: int, seed: int = 0) -> pd.DataFrame:
    """Five segments in two numbers, a category, a flag, a date and a place."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 5, n)
    return pd.DataFrame({
        "spend": segment * 40 + rng.normal(100, 12, n),
        "visits": segment % 3 * 5 + rng.normal(3, 1, n),
        "tenure_days": rng.gamma(2.0, 200, n),
        "plan": np.array(["basic", "pro", "team", "free", "enterprise"])[segment],
        "member": segment > 2,
        "signup": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
        "latitude": np.array([48.8, 40.7, 51.5, 35.7, -33.9])[segment] + rng.normal(0, 0.3, n),
        "longitude": np.array([2.3, -74.0, -0.1, 139.7, 151.2])[segment] + rng.normal(0, 0.3, n),
    })


def write_data(folder: Path, n: int, parts: int = 8) -> Path:
    folder.mkdir(parents=True)
    frame = table(n)
    step = -(-n // parts)
    for i, start in enumerate(range(0, n, step)):
        frame.iloc[start:start + step].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(Path(tmp) / "data", args.rows)
        run = Path(tmp) / "run"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "clustra.cli", "train", str(data), "--out", str(run)], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        facts = json.loads((run / "run.json").read_text())
        models = sorted(p.name for p in (run / "models").iterdir() if (p / "insights.json").is_file())
    share = facts["insights_seconds"] / facts["seconds"]
    result = {"rows": args.rows, "models_with_insights": len(models), "train_seconds": facts["seconds"],
              "insights_seconds": facts["insights_seconds"], "share": share, "command_wall_seconds": wall,
              "machine": machine()}
    write_result("insights_cost", result)
    print("| rows | models | `clustra train` (s) | insights (s) | share | target |")
    print("|---:|---:|---:|---:|---:|---|")
    print(f"| {args.rows:,} | {len(models)} | {facts['seconds']:.1f} | {facts['insights_seconds']:.1f} | {share:.1%} | "
          f"≤ 15% {'met' if share <= 0.15 else '**missed**'} |")


if __name__ == "__main__":
    main()
