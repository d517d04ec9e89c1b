"""Scoring a whole dataset partition by partition: the original columns plus cluster columns."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from ._state import check_output, staged_directory
from .data import Dataset
from .errors import InvalidInputError
from .model import ClusteringModel
from .progress import Progress


def _score_partition(part: pd.DataFrame, model: ClusteringModel, explain: bool = False) -> pd.DataFrame:
    if hasattr(part, "to_pandas"):  # cuDF
        part = part.to_pandas()
    return model.score_frame(part, explain)


def output_meta(model: ClusteringModel, meta: pd.DataFrame, explain: bool = False) -> pd.DataFrame:
    """Empty frame with the output's columns and dtypes."""
    out = meta.copy()
    for name, dtype in model.output_columns(explain).items():
        out[name] = pd.Series(dtype=dtype)
    return out


def apply_model(
    model: ClusteringModel,
    dataset: Dataset,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    explain: bool = False,
) -> dict[str, Any]:
    """Write ``dataset`` with ``cluster_id`` (and ``cluster_probability`` / ``distance``), ``cluster_name``
    and, with ``explain``, ``runner_up`` / ``margin`` / ``explanation`` to ``out_dir``.

    One output file per input partition, rows in their original order; columns the
    model does not use pass through untouched. The output is written to a hidden
    sibling directory and renamed into place when complete.

    Returns
    -------
    dict
        ``out``, ``n_rows``, ``n_partitions``, ``cluster_counts``.
    """
    progress = progress or Progress()
    out_dir = check_output(out_dir, overwrite=overwrite)
    clashes = [c for c in model.output_columns(explain) if c in dataset.columns]
    if clashes:
        raise InvalidInputError(f"the dataset already has column(s) {clashes} that apply would add")
    model.pipeline.check_columns(dataset.frame._meta)
    frame = dataset.frame
    if hasattr(frame._meta, "to_pandas"):
        frame = frame.to_backend("pandas")
    scored = frame.map_partitions(
        _score_partition, model, explain, meta=output_meta(model, frame._meta, explain), align_dataframes=False
    )
    progress.step(f"scoring {dataset.n_rows:,} rows in {frame.npartitions} partition(s)")
    with staged_directory(out_dir, overwrite=overwrite) as staging:
        scored.to_parquet(staging, write_index=False)
    import dask.dataframe as dd

    counts = dd.read_parquet(out_dir, columns=["cluster_id"])["cluster_id"].value_counts().compute()
    return {
        "out": str(out_dir),
        "n_rows": int(counts.sum()),
        "n_partitions": int(frame.npartitions),
        "cluster_counts": {str(int(k)): int(v) for k, v in counts.sort_index().items()},
    }
