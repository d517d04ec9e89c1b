"""Reading Parquet datasets (file, directory with hive partitions, glob; local or any fsspec URL)."""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .errors import DataError

_GLOB_CHARS = set("*?[")


@dataclass
class Dataset:
    """A Parquet dataset opened as a Dask DataFrame, after its files were checked.

    Attributes
    ----------
    path : str
        What the user gave.
    frame : dask.dataframe.DataFrame
        Partitions are pandas DataFrames (cuDF with the dask ``cudf`` backend).
    files : list of str
        The Parquet files found.
    n_rows : int
        Total rows, from the file footers.
    nbytes : int
        Uncompressed size of the data, from the file footers (an estimate of its size
        in memory).
    """

    path: str
    frame: Any
    files: list[str]
    n_rows: int
    nbytes: int = 0

    @property
    def columns(self) -> list[str]:
        """Column names (hive partition keys included)."""
        return [str(c) for c in self.frame.columns]


def _is_data_file(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    return not any(p.startswith((".", "_")) for p in parts[-1:]) and not path.endswith((".crc", ".json", ".txt"))


def list_parquet_files(path: str, storage_options: dict | None = None) -> tuple[Any, list[str]]:
    """The filesystem and the data files that ``path`` names (DataError when there are none)."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(path, **(storage_options or {}))
    if set(root) & _GLOB_CHARS:
        files = [f for f in fs.glob(root) if fs.isfile(f)]
        if not files:
            raise DataError(f"no files match {path!r}")
    elif fs.isdir(root):
        files = sorted(f for f in fs.find(root) if _is_data_file(posixpath.relpath(f, root)))
        if not files:
            raise DataError(f"directory {path!r} contains no Parquet files")
    elif fs.isfile(root):
        files = [root]
    else:
        raise DataError(f"path {path!r} does not exist")
    return fs, sorted(files)


def _footer_sizes(fs: Any, file: str) -> tuple[int, int]:
    """(rows, uncompressed bytes) of one Parquet file, from its footer."""
    import pyarrow.parquet as pq

    try:
        with fs.open(file, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError variants for bad files
        raise DataError(f"{file!r} is not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    return int(meta.num_rows), sum(int(meta.row_group(i).total_byte_size) for i in range(meta.num_row_groups))


def read_dataset(path: str, *, storage_options: dict | None = None, backend: str = "pandas") -> Dataset:
    """Open ``path`` as a Dask DataFrame after checking every file's footer.

    Parameters
    ----------
    path : str
        A Parquet file, a directory (hive ``key=value`` sub-directories become columns),
        a glob, or an fsspec URL (``s3://bucket/prefix``, ``gs://``, ``memory://``).
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint).
    backend : {"pandas", "cudf"}
        Partition type (``cudf`` needs the GPU extra).

    Raises
    ------
    DataError
        Missing path, no Parquet files, a corrupt file (named), or no rows.
    """
    import dask
    import dask.dataframe as dd

    path = str(path)
    fs, files = list_parquet_files(path, storage_options)
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        sizes = list(pool.map(lambda f: _footer_sizes(fs, f), files))
    n_rows, nbytes = sum(r for r, _ in sizes), sum(b for _, b in sizes)
    if n_rows == 0:
        raise DataError(f"dataset {path!r} has no rows ({len(files)} file(s), all empty)")
    with dask.config.set({"dataframe.backend": backend}):
        try:
            frame = dd.read_parquet(path, storage_options=storage_options or None)
        except Exception as exc:
            raise DataError(f"cannot read {path!r} as Parquet ({type(exc).__name__}: {exc})") from exc
    return Dataset(path=path, frame=frame, files=files, n_rows=n_rows, nbytes=nbytes)


IN_MEMORY_PARTITION_BYTES = 128 << 20


def dataset_from_table(table: Any, *, name: str | None = None) -> Dataset:
    """A :class:`Dataset` over an in-memory table: no Parquet on disk, no cluster needed.

    Parameters
    ----------
    table : pandas.DataFrame or pyarrow.Table
        Rows keep their order; partitions of about 128 MiB.
    name : str, optional
        What progress lines and run metadata call the data (default: the type).

    Raises
    ------
    DataError
        Not a table, or no rows.
    """
    import dask.dataframe as dd

    if hasattr(table, "to_pandas") and not isinstance(table, pd.DataFrame):  # pyarrow Table / RecordBatch
        table = table.to_pandas()
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"data must be a path, a pandas DataFrame or a pyarrow Table, got {type(table).__name__}")
    if len(table) == 0:
        raise DataError("the table has no rows")
    frame = table.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    nbytes = int(frame.memory_usage(deep=True).sum())
    parts = max(1, min(len(frame), -(-nbytes // IN_MEMORY_PARTITION_BYTES)))
    return Dataset(
        path=name or f"<in-memory {type(table).__name__}>",
        frame=dd.from_pandas(frame, npartitions=parts, sort=False),
        files=[],
        n_rows=len(frame),
        nbytes=nbytes,
    )


def partition_backend(device) -> str:
    """``"cudf"`` on a GPU device when cuDF is installed, else ``"pandas"``."""
    from ._compat import optional_import

    return "cudf" if device.is_gpu and optional_import("cudf") is not None else "pandas"


def sample_frame(dataset: Dataset, n_rows: int, seed: int) -> pd.DataFrame:
    """About ``n_rows`` rows drawn uniformly from the whole dataset, as pandas."""
    fraction = min(1.0, n_rows / max(dataset.n_rows, 1))
    frame = dataset.frame if fraction >= 1.0 else dataset.frame.sample(frac=fraction, random_state=seed)
    sample = frame.compute()
    if hasattr(sample, "to_pandas"):  # cuDF
        sample = sample.to_pandas()
    return sample.reset_index(drop=True)
