"""Reading Parquet datasets (file, directory with hive partitions, glob; local or any fsspec URL)."""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from .errors import DataError, MemoryLimitError

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class FileFooter:
    """What one Parquet file's footer says about its size."""

    file: str
    rows: int
    nbytes: int  # uncompressed, all row groups
    max_group_rows: int  # rows of the largest row group (by bytes)
    max_group_bytes: int  # uncompressed bytes of the largest row group


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
    footers : list of FileFooter
        Per Parquet file: rows, uncompressed bytes and the largest row group (for sizing
        partitions, :func:`fit_partitions`).
    storage_options, backend
        How ``frame`` was read (to read it again with smaller partitions).
    partition_bytes : int or None
        Estimated decoded size of the largest partition, once :func:`fit_partitions` sized them.
    """

    path: str
    frame: Any
    files: list[str]
    n_rows: int
    nbytes: int = 0
    footers: list[FileFooter] = field(default_factory=list)
    storage_options: dict | None = None
    backend: str = "pandas"
    partition_bytes: int | None = None

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


def _footer_sizes(fs: Any, file: str) -> FileFooter:
    """Rows and uncompressed bytes of one Parquet file and of its largest row group, from its footer."""
    import pyarrow.parquet as pq

    try:
        with fs.open(file, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError variants for bad files
        raise DataError(f"{file!r} is not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    groups = [(int(meta.row_group(i).total_byte_size), int(meta.row_group(i).num_rows)) for i in range(meta.num_row_groups)]
    group_bytes, group_rows = max(groups, default=(0, 0))
    return FileFooter(file, int(meta.num_rows), sum(b for b, _ in groups), group_rows, group_bytes)


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
    path = str(path)
    fs, files = list_parquet_files(path, storage_options)
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        footers = list(pool.map(lambda f: _footer_sizes(fs, f), files))
    n_rows, nbytes = sum(f.rows for f in footers), sum(f.nbytes for f in footers)
    if n_rows == 0:
        raise DataError(f"dataset {path!r} has no rows ({len(files)} file(s), all empty)")
    frame = _read_frame(path, storage_options, backend)
    return Dataset(path=path, frame=frame, files=files, n_rows=n_rows, nbytes=nbytes, footers=footers,
                   storage_options=storage_options, backend=backend)


def _read_frame(path: str, storage_options: dict | None, backend: str, **options: Any) -> Any:
    """``dd.read_parquet`` with the partition backend; DataError when Dask cannot read it."""
    import dask
    import dask.dataframe as dd

    with dask.config.set({"dataframe.backend": backend}):
        try:
            return dd.read_parquet(path, storage_options=storage_options or None, **options)
        except Exception as exc:
            raise DataError(f"cannot read {path!r} as Parquet ({type(exc).__name__}: {exc})") from exc


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


DECODE_SAMPLE_ROWS = 2_000


def decoded_ratio(dataset: Dataset) -> float:
    """Bytes a row takes decoded into pandas per uncompressed Parquet byte (at least 1),
    measured on the first rows of the first non-empty file: dictionary-encoded text takes
    far more room as Python strings than in the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from fsspec.core import url_to_fs

    footer = next((f for f in dataset.footers if f.rows and f.nbytes), None)
    if footer is None:
        return 1.0
    fs, _ = url_to_fs(dataset.path, **(dataset.storage_options or {}))
    with fs.open(footer.file, "rb") as handle:
        batch = next(pq.ParquetFile(handle).iter_batches(batch_size=DECODE_SAMPLE_ROWS), None)
        if batch is None or batch.num_rows == 0:
            return 1.0
        decoded = pa.Table.from_batches([batch]).to_pandas().memory_usage(deep=True, index=False).sum()
    return max(1.0, float(decoded / batch.num_rows) / (footer.nbytes / footer.rows))


def fit_partitions(dataset: Dataset, memory: Any) -> tuple[Dataset, str | None]:
    """``dataset`` with partitions that fit a Dask worker, and a line saying what changed (None
    when nothing did).

    Parquet partitions are whole files (Dask's default splits only files larger than
    256 MiB); when the largest file, decoded, exceeds ``memory.partition_budget`` the data is
    read again with as many row groups per partition as fit (``split_row_groups``). A row
    group cannot be split: when one alone exceeds the budget, the error says so. An in-memory
    table is repartitioned.

    Parameters
    ----------
    dataset : Dataset
    memory : cluster_core.engine.memory.WorkerMemory or None
        None (no cluster, or workers without a memory limit): nothing to fit.

    Raises
    ------
    MemoryLimitError
        Naming the workers' memory limit, the partition size and what to change.
    """
    from .engine import format_bytes

    if memory is None:
        return dataset, None
    budget, limit = memory.partition_budget, format_bytes(memory.limit)
    if budget <= 0:
        raise MemoryLimitError(
            f"Dask workers with a memory limit of {limit} leave no room for data: Clustra's libraries and model fits "
            f"take about {format_bytes(memory.in_use)} of a worker, over the {memory.pause_fraction:.0%} of its limit at "
            f"which Dask pauses it (distributed.worker.memory.pause); give each worker more memory "
            f"(memory_limit, e.g. --memory-limit {_enough_memory(memory, 64 << 20)})"
        )
    if not dataset.footers:
        return _fit_table(dataset, budget, limit)
    ratio = decoded_ratio(dataset)
    largest_file = int(max(f.nbytes for f in dataset.footers) * ratio)
    if largest_file <= budget and dataset.frame.npartitions >= len(dataset.files):
        return replace(dataset, partition_bytes=largest_file), None
    group = max(dataset.footers, key=lambda f: f.max_group_bytes)
    group_bytes = int(group.max_group_bytes * ratio)
    if group_bytes > budget:
        rows = max(1, int(group.max_group_rows * budget / group_bytes))
        raise MemoryLimitError(
            f"a partition of {format_bytes(group_bytes)} decoded (a Parquet row group of {group.max_group_rows:,} rows "
            f"in {group.file}, which cannot be split) does not fit Dask workers with a memory limit of {limit}: "
            f"a partition may take at most {format_bytes(budget)} {memory.explain_budget()}; give each worker more "
            f"memory (memory_limit, e.g. --memory-limit {_enough_memory(memory, group_bytes)}) or rewrite the data "
            f"with smaller row groups (at most {rows:,} rows, e.g. pyarrow.parquet.write_table(..., row_group_size={rows}))"
        )
    per_partition = max(1, budget // max(group_bytes, 1))
    frame = _read_frame(dataset.path, dataset.storage_options, dataset.backend, split_row_groups=per_partition)
    size = min(largest_file, per_partition * group_bytes)
    note = (f"partitions sized for Dask workers with a memory limit of {limit}: {dataset.frame.npartitions} -> "
            f"{frame.npartitions} partition(s) of at most {format_bytes(size)} decoded "
            f"({per_partition} row group(s) each; at most {format_bytes(budget)} fit)")
    return replace(dataset, frame=frame, partition_bytes=size), note


def fit_dataset_partitions(dataset: Dataset, client: Any, progress: Any) -> Dataset:
    """``dataset`` in partitions that fit ``client``'s workers (:func:`fit_partitions` with
    :func:`cluster_core.engine.memory.worker_memory`), the change reported on ``progress``."""
    from .engine.memory import worker_memory

    dataset, note = fit_partitions(dataset, worker_memory(client))
    if note:
        progress.message(note)
    return dataset


def _enough_memory(memory: Any, partition_bytes: int) -> str:
    """A per-worker memory limit whose budget holds ``partition_bytes``, rounded up to 256 MiB (``"768MiB"``)."""
    from .engine.memory import PARTITION_COPIES

    needed = (partition_bytes * PARTITION_COPIES + memory.in_use) / memory.pause_fraction
    return f"{int(-(-needed // (256 << 20))) * 256}MiB"


def _fit_table(dataset: Dataset, budget: int, limit: str) -> tuple[Dataset, str | None]:
    """An in-memory table in partitions of at most ``budget`` bytes."""
    from .engine import format_bytes

    parts = dataset.frame.npartitions
    size = -(-dataset.nbytes // parts)
    if size <= budget:
        return replace(dataset, partition_bytes=size), None
    wanted = min(dataset.n_rows, -(-dataset.nbytes // budget))
    frame = dataset.frame.repartition(npartitions=wanted)
    size = -(-dataset.nbytes // frame.npartitions)
    note = (f"partitions sized for Dask workers with a memory limit of {limit}: {parts} -> {frame.npartitions} "
            f"partition(s) of about {format_bytes(size)}")
    return replace(dataset, frame=frame, partition_bytes=size), note


def partition_backend(device) -> str:
    """``"cudf"`` on a GPU device when cuDF is installed, else ``"pandas"``."""
    from ._compat import optional_import

    return "cudf" if device.is_gpu and optional_import("cudf") is not None else "pandas"


def sample_frame(dataset: Dataset, n_rows: int, seed: int) -> pd.DataFrame:
    """About ``n_rows`` rows drawn uniformly from the whole dataset, as pandas.

    The rows of ``dataset.frame.sample(frac=n_rows / rows, random_state=seed)`` (each partition
    samples ``round(frac * its rows)`` with its own state). On a plain Parquet read they are drawn
    through Arrow (:func:`_arrow_sample`, one Dask task per partition: the workers read on a
    cluster): the same rows in the same order and dtypes, without decoding every partition into
    pandas first.
    """
    fraction = min(1.0, n_rows / max(dataset.n_rows, 1))
    if fraction >= 1.0:
        sample = dataset.frame.compute()
    else:
        sample = _arrow_sample(dataset, fraction, seed)
        if sample is None:
            sample = dataset.frame.sample(frac=fraction, random_state=seed).compute()
    if hasattr(sample, "to_pandas"):  # cuDF
        sample = sample.to_pandas()
    return sample.reset_index(drop=True)


def _draw_rows(piece: Any, columns: list[str], state: Any, fraction: float) -> Any:
    """One partition's sampled rows as an Arrow table: pandas' ``sample(frac=fraction)`` positions under
    ``RandomState(state)``, in their order (a Dask task: on a cluster the worker reads the piece)."""
    import numpy as np
    import pyarrow as pa

    table = piece.read(columns)
    if table.num_rows == 0:
        return table
    positions = np.random.RandomState(state).choice(table.num_rows, size=round(fraction * table.num_rows), replace=False)
    return table.take(pa.array(positions.astype(np.int64)))


def _arrow_sample(dataset: Dataset, fraction: float, seed: int) -> pd.DataFrame | None:
    """Dask's ``frame.sample(frac=fraction, random_state=seed)`` of a Parquet read, drawn from each
    partition's Arrow table and converted to pandas after sampling (a 1M-row table: the whole
    dataset was decoded into pandas, strings as Python objects, to keep a tenth of it).

    Replays Dask's draw: one ``RandomState`` per partition from ``random_state_data(partitions,
    seed)``, each taking ``choice(rows, round(fraction * rows), replace=False)`` positions in
    that order (pandas' ``sample``); the table is converted as Dask's Arrow engine converts a
    partition. None (the caller uses Dask) when the frame is not a plain Parquet read or the
    result's dtypes would differ from the frame's.
    """
    import dask
    import pyarrow as pa
    from dask.utils import random_state_data

    from .arrow_stream import parquet_pieces

    try:  # Dask's own conversion of a partition's table (internal API: another Dask version keeps Dask's path)
        from dask.dataframe.io.parquet.arrow import ArrowDatasetEngine
        from dask.dataframe.utils import pyarrow_strings_enabled

        to_pandas = ArrowDatasetEngine._arrow_table_to_pandas
    except (ImportError, AttributeError):
        return None

    columns = [str(c) for c in dataset.frame.columns]
    pieces = parquet_pieces(dataset, columns)
    if not pieces:
        return None
    states = random_state_data(len(pieces), seed)
    draw = dask.delayed(_draw_rows, pure=True)
    try:
        tables = dask.compute(*[draw(piece, columns, state, fraction) for piece, state in zip(pieces, states)])
        table = pa.concat_tables(tables, promote_options="default")
    except (DataError, pa.ArrowException):  # files that disagree (a column missing, int32 here and int64 there)
        return None  # Dask converts each partition to pandas first and reports or reconciles them
    if any(pa.types.is_dictionary(t) for t in table.schema.types):
        return None  # categoricals: Dask unions each partition's categories; keep its path
    try:
        sample = to_pandas(table, None, convert_string=pyarrow_strings_enabled())
    except TypeError:  # another signature
        return None
    meta = dataset.frame._meta
    if list(sample.columns) != list(meta.columns) or not sample.dtypes.equals(meta.dtypes):
        return None
    return sample
