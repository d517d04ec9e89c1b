"""Scoring a whole dataset partition by partition: the original columns plus cluster columns."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ._state import check_output, staged_directory
from .arrow_stream import ParquetPiece, parquet_pieces
from .data import Dataset
from .errors import InvalidInputError
from .model import ClusteringModel
from .progress import Progress


def _score_partition(part: pd.DataFrame, model: ClusteringModel, explain: bool = False,
                     kept: list[str] | None = None) -> pd.DataFrame:
    if hasattr(part, "to_pandas"):  # cuDF
        part = part.to_pandas()
    scored = model.score_frame(part, explain)
    if kept is None or kept == list(part.columns):
        return scored
    added = [c for c in scored.columns if c not in part.columns]
    return scored[kept + added]


def output_input_columns(dataset: Dataset, columns: list[str] | None) -> list[str]:
    """The input columns ``apply`` writes: ``columns`` (checked against the dataset), or all of them."""
    if columns is None:
        return list(dataset.columns)
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise InvalidInputError(f"columns must be a list of column names, got {columns!r}")
    missing = [c for c in columns if c not in dataset.columns]
    if missing:
        raise InvalidInputError(f"columns {missing} are not in the dataset; its columns are {list(dataset.columns)}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InvalidInputError(f"columns {repeated} are named more than once in columns={columns!r}")
    return list(columns)


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
    columns: list[str] | None = None,
) -> dict[str, Any]:
    """Write ``dataset`` with ``cluster_id`` (and ``cluster_probability`` / ``distance``), ``cluster_name``
    and, with ``explain``, ``runner_up`` / ``margin`` / ``explanation`` to ``out_dir``.

    One output file per input partition, rows in their original order; columns the
    model does not use pass through untouched. The output is written to a hidden
    sibling directory and renamed into place when complete.

    A dataset read from Parquet files that hold all its columns is streamed through Arrow:
    each partition's rows are read with pyarrow, featurized without pandas and written back
    with their Arrow types (:func:`score_piece`); other datasets (hive-partitioned, in
    memory, cuDF) go through their pandas partitions. Read with pandas, both outputs are the
    same.

    ``columns`` names the input columns written before the cluster columns (default: all of
    them, in the dataset's order): e.g. a key to join the clusters back on, when a copy of a
    large dataset is not wanted. The model's input columns are read either way.

    Returns
    -------
    dict
        ``out``, ``n_rows``, ``n_partitions``, ``cluster_counts``.
    """
    progress = progress or Progress()
    out_dir = check_output(out_dir, overwrite=overwrite)
    kept = output_input_columns(dataset, columns)
    clashes = [c for c in model.output_columns(explain) if c in kept]
    if clashes:
        raise InvalidInputError(f"the dataset already has column(s) {clashes} that apply would add")
    model.pipeline.check_columns(dataset.frame._meta)
    pieces = parquet_pieces(dataset, dataset.columns)
    if pieces is not None:
        return _apply_pieces(model, pieces, dataset, out_dir, overwrite=overwrite, progress=progress, explain=explain,
                             kept=kept)
    frame = dataset.frame
    if hasattr(frame._meta, "to_pandas"):
        frame = frame.to_backend("pandas")
    scored = frame.map_partitions(
        _score_partition, model, explain, kept, meta=output_meta(model, frame._meta[kept], explain),
        align_dataframes=False,
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


def score_piece(piece: ParquetPiece, index: int, model: ClusteringModel, explain: bool, columns: list[str],
                out_dir: str, pandas_metadata: bytes) -> dict[int, int]:
    """Score one Parquet piece through Arrow and write it as ``part.<index>.parquet`` in ``out_dir``.

    Only the model's input columns are featurized (without pandas); ``columns`` pass through
    with their Arrow types and the output columns are appended. ``pandas_metadata`` is the
    file's ``pandas`` schema metadata (the dtypes the pandas path writes, so pandas reads the
    same frame back). Returns the piece's ``{cluster_id: rows}``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    inputs = model.pipeline.input_columns
    read = columns + [c for c in inputs if c not in columns]
    table = piece.read(read)
    scored = model.transform(table.select(inputs), explain)
    added = pa.Table.from_pandas(scored, preserve_index=False)
    out = table.select(columns)
    for name in added.column_names:
        out = out.append_column(added.schema.field(name), added.column(name))
    out = out.replace_schema_metadata({**(table.schema.metadata or {}), b"pandas": pandas_metadata})
    pq.write_table(out, os.path.join(out_dir, f"part.{index}.parquet"))
    labels, counts = np.unique(scored["cluster_id"].to_numpy(), return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist()))


def _apply_pieces(model: ClusteringModel, pieces: list[ParquetPiece], dataset: Dataset, out_dir: Any, *,
                  overwrite: bool, progress: Progress, explain: bool, kept: list[str]) -> dict[str, Any]:
    """:func:`apply_model` as one :func:`score_piece` task per partition; the counts summed on the driver."""
    import dask
    import pyarrow as pa

    progress.step(f"scoring {dataset.n_rows:,} rows in {len(pieces)} partition(s) (Parquet read and written through Arrow)")
    meta = output_meta(model, dataset.frame._meta[kept], explain)  # the dtypes the pandas path writes
    pandas_metadata = pa.Schema.from_pandas(meta, preserve_index=False).metadata[b"pandas"]
    score = dask.delayed(score_piece, pure=True)
    shared = dask.delayed(model, pure=True)
    with staged_directory(out_dir, overwrite=overwrite) as staging:
        parts = dask.compute(*[score(p, i, shared, explain, kept, str(staging), pandas_metadata)
                               for i, p in enumerate(pieces)])
    counts = sum((Counter(p) for p in parts), Counter())
    return {
        "out": str(out_dir),
        "n_rows": int(sum(counts.values())),
        "n_partitions": len(pieces),
        "cluster_counts": {str(int(k)): int(v) for k, v in sorted(counts.items())},
    }
