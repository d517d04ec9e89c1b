"""Shared fixtures: seeds, a mixed-kind hive-partitioned Parquet dataset, a Dask cluster, a running assignment API."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("CLUSTRA_DEVICE", "cpu")


@pytest.fixture
def seed() -> int:
    """The suite's seed."""
    return 0


def make_mixed_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Three segments that differ in numbers, a category, a flag and the time of day; with missing values."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0], [6.0, 1.0], [0.0, 7.0]])
    xy = centers[segment] + rng.normal(0, 1.0, (n, 2))
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64) + 1000,
            "spend": xy[:, 0] * 10 + 100,
            "visits": xy[:, 1],
            "plan": np.array(["basic", "pro", "team"])[segment],
            "is_member": segment == 1,
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(segment * 8 + rng.integers(0, 3, n), unit="h")
            + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
            "region": np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)],
            "constant": "same",
            "segment_truth": segment,
        }
    )
    frame.loc[rng.random(n) < 0.05, "spend"] = np.nan
    frame.loc[rng.random(n) < 0.05, "plan"] = None
    frame.loc[rng.random(n) < 0.03, "visits"] = np.nan
    return frame


def write_hive(frame: pd.DataFrame, root: Path, by: str) -> Path:
    """Write ``frame`` as ``root/by=value/part-i.parquet`` (two files per value)."""
    for value, rows in frame.groupby(by):
        part = root / f"{by}={value}"
        part.mkdir(parents=True, exist_ok=True)
        half = len(rows) // 2
        rows.iloc[:half].drop(columns=by).to_parquet(part / "part-0.parquet", index=False)
        rows.iloc[half:].drop(columns=by).to_parquet(part / "part-1.parquet", index=False)
    return root


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """See :func:`make_mixed_frame`."""
    return make_mixed_frame()


@pytest.fixture
def mixed_dataset(tmp_path, mixed_frame) -> Path:
    """The mixed frame as a hive-partitioned Parquet directory (partitioned by region)."""
    return write_hive(mixed_frame, tmp_path / "customers", "region")


@pytest.fixture(scope="session")
def dask_client():
    """One in-process LocalCluster (2 worker processes) for the session."""
    from cluster_core.engine import dask_client as make_client

    with make_client(n_workers=2) as client:
        yield client


@pytest.fixture(scope="session")
def serving_service(tmp_path_factory):
    """`clustra serve --host 127.0.0.1` with two applications (``open`` at ``/``, ``secured`` at ``/secured``
    with a bearer token) over a registry of three models; started once for every serving test file
    (Ray starts slowly). See ``_serving_helpers.start_service``."""
    from _serving_helpers import start_service

    yield from start_service(tmp_path_factory.mktemp("serving-api"))
