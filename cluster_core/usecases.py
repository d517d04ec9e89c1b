"""The use cases every front end runs: train a run, apply a model.

The CLI, the demo, the jobs service's tasks and the Python API all call these two
functions; they differ only in where the data comes from, where progress goes and which
engine runs the work (see :mod:`cluster_core.engine`). Everything that can be checked
cheaply (settings, the output path, the columns the settings name) is checked before an
engine starts, so a bad input fails in a second, not after a cluster came up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._state import check_output
from .config import TrainConfig
from .data import Dataset, dataset_from_table, fit_dataset_partitions, read_dataset
from .engine import AUTO, describe_choice, open_engine, resolve_engine
from .engine.watchdog import memory_watchdog
from .errors import InvalidInputError
from .progress import Progress
from .validation import validated


def train_config(settings: TrainConfig | dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """A validated :class:`TrainConfig` from settings; a bad value is an :class:`InvalidInputError`
    naming its field.

    Parameters
    ----------
    settings : TrainConfig or dict, optional
    **overrides
        Fields set on top of ``settings`` (None values are ignored).
    """
    base = settings.model_dump(exclude_unset=True) if isinstance(settings, TrainConfig) else dict(settings or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    return validated(TrainConfig, base)


def open_dataset(data: Any, *, device: str | None = None) -> Dataset:
    """A :class:`Dataset` from a path (file, directory, glob, URL), a pandas DataFrame, a
    pyarrow Table or a Dataset.

    Raises
    ------
    DataError
        Missing path, no Parquet files, a corrupt file, no rows.
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        from .data import partition_backend
        from .device import resolve_device

        return read_dataset(str(data), backend=partition_backend(resolve_device(device)))
    return dataset_from_table(data)


def check_named_columns(config: TrainConfig, columns: list[str]) -> None:
    """Every column a setting names (include, exclude, kinds, weights, geo pairs) exists.

    Raises
    ------
    InvalidInputError
        Naming the setting (its ``field``), the unknown columns and the dataset's columns.
    """
    named = {
        "include": list(config.include or []),
        "exclude": list(config.exclude),
        "kinds": list(config.kinds),
        "weights": list(config.weights),
        "geo_pairs": [c for pair in config.geo_pair_tuples() for c in pair],
        "evaluate_against": [config.evaluate_against] if config.evaluate_against else [],
    }
    for field, given in named.items():
        unknown = [c for c in dict.fromkeys(given) if c not in columns]
        if unknown:
            raise InvalidInputError(f"column(s) {unknown} not in the dataset; its columns: {columns}", field=field)


@dataclass
class TrainStart:
    """What :func:`start_train` checked and opened: the settings, the output path, the data, the progress."""

    config: TrainConfig
    target: Path | None
    dataset: Dataset
    progress: Progress


def start_train(
    data: Any,
    config: TrainConfig | dict[str, Any] | None,
    *,
    out: str | os.PathLike | None,
    overwrite: bool,
    progress: Progress | None,
) -> TrainStart:
    """The start every training run shares (:func:`train_run`, the series runs): validate the
    settings, check the output can be written, open the data and say what it holds.

    Raises
    ------
    InvalidInputError, DataError
        Bad settings, an existing or unwritable output, unreadable data.
    """
    progress = progress or Progress()
    config = train_config(config)
    target = check_output(out, overwrite=overwrite) if out is not None else None
    progress.step(f"reading {_describe_data(data)}")
    dataset = open_dataset(data, device=config.device)
    progress.message(f"{dataset.n_rows:,} rows in {len(dataset.files) or 1} file(s), columns: {', '.join(dataset.columns)}")
    return TrainStart(config, target, dataset, progress)


def choose_engine(cluster: Any, dataset: Dataset, progress: Progress) -> Any:
    """The engine for ``dataset`` (:func:`cluster_core.engine.resolve_engine`), announced on ``progress``."""
    engine = resolve_engine(cluster, dataset.nbytes)
    progress.step(describe_choice(cluster, engine, dataset.nbytes))
    return engine


@dataclass
class TrainOutcome:
    """What :func:`train_run` produced: the sweep's result and, when written, the run directory."""

    result: Any  # cluster_core.training.TrainResult
    run_dir: Path | None

    def leaderboard(self) -> dict:
        """The run's leaderboard (``{"best", "metric", "models"}``)."""
        return self.result.leaderboard()


def train_run(
    data: Any,
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    cluster: Any = AUTO,
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train a sweep on ``data`` and (with ``out``) write the run directory.

    Parameters
    ----------
    data : str, path, pandas.DataFrame, pyarrow.Table or Dataset
    config : TrainConfig or dict, optional
        Settings (defaults: :class:`TrainConfig`).
    out : path, optional
        The run directory to write (assembled aside, renamed into place when complete).
    overwrite : bool
        Replace an existing ``out``.
    cluster : distributed.Client, "local", "inprocess", None or a scheduler address
        Where the work runs (:func:`cluster_core.engine.open_engine`).
    progress : Progress, optional

    Raises
    ------
    InvalidInputError, DataError
        Bad settings, an existing output, columns the settings name that the data lacks,
        unreadable data; all before an engine is started.
    """
    start = start_train(data, config, out=out, overwrite=overwrite, progress=progress)
    config, target, dataset, progress = start.config, start.target, start.dataset, start.progress
    check_named_columns(config, dataset.columns)
    engine = choose_engine(cluster, dataset, progress)
    with open_engine(engine, device=config.device) as client:
        # imported once the workers are starting: they warm up the same modules meanwhile
        from .runs import write_run
        from .training import train_models

        result = train_models(dataset, config, client=client, progress=progress)
        if target is not None:
            progress.step(f"writing {target}")
            write_run(result, target, overwrite=overwrite)
    return TrainOutcome(result, target)


def apply_run(
    model: Any,
    data: Any,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    cluster: Any = AUTO,
    device: str | None = None,
    progress: Progress | None = None,
    explain: bool = False,
    columns: list[str] | None = None,
) -> dict[str, Any]:
    """Score ``data`` with ``model`` and write it with the cluster columns to ``out``.

    Parameters
    ----------
    model : ClusteringModel or path
        A loaded model, a model directory or a run directory (its best model).
    data : str, path, pandas.DataFrame, pyarrow.Table or Dataset
    out : path
        Output directory (Parquet, one file per input partition).
    overwrite : bool
    cluster : see :func:`train_run`
    device : {"auto", "cpu", "cuda"}, optional
    progress : Progress, optional
    explain : bool
        Add ``runner_up``, ``margin`` and ``explanation`` (docs/insights.md).
    columns : list of str, optional
        The input columns to write before the cluster columns (default: all).

    Returns
    -------
    dict
        ``out``, ``n_rows``, ``n_partitions``, ``cluster_counts``, ``model_id``.
    """
    from .apply import apply_model
    from .runs import load_model

    progress = progress or Progress()
    target = check_output(out, overwrite=overwrite)
    if isinstance(model, (str, os.PathLike)):
        progress.step(f"loading model {model}")
        model = load_model(model)
    progress.step(f"reading {_describe_data(data)}")
    dataset = open_dataset(data, device=device)
    model.pipeline.check_columns(dataset.frame._meta)
    engine = choose_engine(cluster, dataset, progress)
    with open_engine(engine, device=device) as client, memory_watchdog(client) as watchdog:
        dataset = fit_dataset_partitions(dataset, client, progress)
        if watchdog is not None:
            watchdog.partition_bytes = dataset.partition_bytes
        summary = apply_model(model, dataset, target, overwrite=overwrite, progress=progress, explain=explain,
                              columns=columns)
    summary["model_id"] = model.model_id
    return summary


def _describe_data(data: Any) -> str:
    if isinstance(data, (str, os.PathLike)):
        return str(data)
    if isinstance(data, Dataset):
        return data.path
    return f"an in-memory {type(data).__name__}"


__all__ = ["TrainOutcome", "TrainStart", "apply_run", "check_named_columns", "choose_engine", "open_dataset", "start_train",
           "train_config", "train_run"]
