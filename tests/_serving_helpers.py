"""Small trained models for the registry and serving tests (shared by test_registry / test_serving*)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from conftest import make_mixed_frame, write_hive

FEATURE_COLUMNS = ["spend", "visits", "plan", "is_member", "signup", "region"]


def train_run(root: Path, *, algorithms: tuple[str, ...] = ("kmeans", "gmm", "hdbscan"), k: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """Train a small sweep on the mixed dataset (Dask's threaded scheduler); return (data dir, run dir)."""
    from cluster_core.config import TrainConfig
    from cluster_core.data import read_dataset
    from cluster_core.runs import write_run
    from cluster_core.training import train_models

    data = write_hive(make_mixed_frame(600, seed=seed), root / "data", "region")
    config = TrainConfig(algorithms=list(algorithms), k=[k], seed=seed, exclude=["segment_truth"])
    result = train_models(read_dataset(str(data)), config)
    return data, write_run(result, root / "run")


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready records: NaN/None -> null, timestamps -> ISO strings, numpy scalars -> Python."""
    records = []
    for row in frame.to_dict(orient="records"):
        record = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
                record[key] = None
            elif isinstance(value, pd.Timestamp):
                record[key] = value.isoformat()
            elif hasattr(value, "item"):
                record[key] = value.item()
            else:
                record[key] = value
        records.append(record)
    return json.loads(json.dumps(records))


def record(**changes) -> dict:
    """One valid assignment record of the mixed customer table; a value "DROP" leaves the column out."""
    values = {"spend": 105.4, "visits": 8.9, "plan": "team", "is_member": False, "signup": "2024-08-25T17:00:00",
              "region": "south"}
    values.update(changes)
    return {k: v for k, v in values.items() if v != "DROP"}
