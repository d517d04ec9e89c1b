"""Streaming passes over Parquet through Arrow: each partition's file piece read with pyarrow,
only the columns the pass needs, featurized without pandas (``FeaturePipeline.transform`` on
a pyarrow Table).

A Parquet dataset's Dask DataFrame decodes every column of a partition into pandas; a pass
that only featurizes (training's streaming passes) or that writes the rows back out
(``clustra apply``) does not need that. :func:`parquet_pieces` recovers the file and row
groups behind each partition of the frame (so a pass sees the same rows in the same
partitions, and training's train/validation split is unchanged); the pass then runs one task
per piece. Frames that are not a plain read of Parquet files (an in-memory table, a frame
persisted in worker memory, the cuDF backend) or whose files lack a needed column (a hive
``key=value`` column lives in the path, not the file) get ``None``: the caller keeps the
pandas path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError


@dataclass(frozen=True)
class ParquetPiece:
    """The rows of one partition: a Parquet file, or some of its row groups.

    Attributes
    ----------
    file : str
        Path on the dataset's filesystem.
    row_groups : tuple of int or None
        The row groups, in order; None for the whole file.
    url : str
        The dataset's path as the user gave it (names the filesystem).
    storage_options : dict
        fsspec options of that filesystem.
    """

    file: str
    row_groups: tuple[int, ...] | None
    url: str
    storage_options: dict = field(default_factory=dict, hash=False)

    @contextmanager
    def _open(self, columns: list[str]) -> Iterator[Any]:
        """The piece's file as a ``pyarrow.parquet.ParquetFile``, checked to hold ``columns``."""
        import pyarrow.parquet as pq
        from fsspec.core import url_to_fs

        fs, _ = url_to_fs(self.url, **self.storage_options)
        local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        handle = None if local else fs.open(self.file, "rb")
        try:
            parquet = pq.ParquetFile(self.file if local else handle)
            absent = [c for c in columns if c not in parquet.schema_arrow.names]
            if absent:
                raise DataError(f"column {absent[0]!r} is not stored in {self.file!r} (has {parquet.schema_arrow.names})")
            yield parquet
        finally:
            if handle is not None:
                handle.close()

    def _groups(self, parquet: Any) -> list[int]:
        return list(range(parquet.num_row_groups)) if self.row_groups is None else list(self.row_groups)

    def num_rows(self, columns: list[str]) -> int:
        """The piece's row count, from the file's footer (no data read); DataError naming the file when
        one of ``columns`` is missing."""
        with self._open(columns) as parquet:
            return sum(parquet.metadata.row_group(g).num_rows for g in self._groups(parquet))

    def read(self, columns: list[str]) -> Any:
        """The piece's rows, ``columns`` only, as a pyarrow Table (DataError naming the file when one is missing)."""
        with self._open(columns) as parquet:
            return parquet.read_row_groups(self._groups(parquet), columns=columns)

    def featurize(self, pipeline: Any) -> np.ndarray:
        """The float32 features of the piece: the pipeline's input columns decoded one row group at a
        time and encoded through Arrow into one matrix, so the piece's decoded columns are never
        held whole (a row group decodes ~20% faster whole than in ``iter_batches``' slices: 0.09 s
        against 0.12 s for a 74 MB file)."""
        columns = pipeline.input_columns
        with self._open(columns) as parquet:
            groups = self._groups(parquet)
            n_rows = sum(parquet.metadata.row_group(g).num_rows for g in groups)
            if not groups:
                return pipeline.transform(parquet.schema_arrow.empty_table().select(columns))
            tables = (parquet.read_row_group(g, columns=columns) for g in groups)
            return pipeline.transform_batches(tables, n_rows)


def _frame_pieces(frame: Any) -> list[tuple[str, tuple[int, ...] | None]] | None:
    """(file, row groups) of every partition of a ``dd.read_parquet`` frame, None for any other frame.

    Reads the plan of Dask's Parquet reader (``ReadParquetFSSpec._plan["parts"]``: one
    ``{"piece": (path, row_groups, partition_keys)}`` per partition); anything unexpected
    there (another Dask version's layout, aggregated files) gives None.
    """
    expr = getattr(frame, "expr", None)
    if type(expr).__name__ != "ReadParquetFSSpec":
        return None
    try:
        parts = expr._plan["parts"]
    except Exception:  # a Dask version without this plan: keep the pandas path
        return None
    pieces = []
    for part in parts:
        piece = part.get("piece") if isinstance(part, dict) else None
        if not (isinstance(piece, tuple) and len(piece) == 3 and isinstance(piece[0], str)) or piece[2]:
            return None
        pieces.append((piece[0], None if piece[1] is None else tuple(int(g) for g in piece[1])))
    return pieces if len(pieces) == frame.npartitions else None


def parquet_pieces(dataset: Any, columns: list[str]) -> list[ParquetPiece] | None:
    """The Parquet piece behind each partition of ``dataset.frame``, in partition order, when
    Arrow can read ``columns`` from them; None when the pass must use the pandas partitions.

    Parameters
    ----------
    dataset : cluster_core.data.Dataset
    columns : list of str
        Columns the pass reads; each must be stored in the files (checked on the first file;
        :meth:`ParquetPiece.read` names a later file that lacks one).
    """
    import pyarrow.parquet as pq
    from fsspec.core import url_to_fs

    if dataset.backend != "pandas" or not dataset.files:
        return None
    found = _frame_pieces(dataset.frame)
    if not found:
        return None
    options = dict(dataset.storage_options or {})
    fs, _ = url_to_fs(dataset.path, **options)
    with fs.open(found[0][0], "rb") as handle:
        stored = set(pq.read_schema(handle).names)
    if not set(columns) <= stored:
        return None
    return [ParquetPiece(file, groups, dataset.path, options) for file, groups in found]


def featurize_piece(piece: ParquetPiece, pipeline: Any) -> np.ndarray:
    """The float32 features of one piece (:meth:`ParquetPiece.featurize`)."""
    return piece.featurize(pipeline)


__all__ = ["ParquetPiece", "featurize_piece", "parquet_pieces"]
