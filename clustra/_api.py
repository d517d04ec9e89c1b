"""The Python API: :func:`train` a sweep, look at its :class:`Run`, :func:`load_model` and use it.

The same use cases as the ``clustra`` command (:mod:`cluster_core.usecases`); a table in
memory trains without Parquet on disk and without a Dask cluster.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from cluster_core.model import ClusteringModel
from cluster_core.progress import PrintProgress, Progress


class Run:
    """The models of one sweep, ranked.

    Attributes
    ----------
    leaderboard : pandas.DataFrame
        One row per model, best first (``rank``, ``model_id``, ``algorithm``,
        ``n_clusters``, ``silhouette``, ``davies_bouldin``, ``calinski_harabasz``, ...).
    best : Model
        The top-ranked model.
    models : dict of str to Model
        Every successful model by its id (``kmeans-k3``, ``gmm-k5``, ``hdbscan``).
    path : pathlib.Path or None
        The run directory, once written (``out=`` of :func:`train`, or :meth:`save`).
    """

    def __init__(self, result: Any, path: Any = None) -> None:
        self._result = result
        self.path = path
        self.models: dict[str, ClusteringModel] = {m.model_id: m for m in result.models()}
        board = result.leaderboard()
        self.leaderboard = pd.DataFrame(board["models"]).set_index("rank", drop=False)
        self.best = self.models[board["best"]]
        # the model the rule of cluster_core.selection recommends (what apply and publish of the run use)
        self.recommended = self.models[board.get("recommended") or board["best"]]
        self.recommended_reason = board.get("recommended_reason", "")

    def __repr__(self) -> str:
        return f"<clustra.Run: {len(self.models)} models, best {self.best.model_id!r}>"

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Any:
        """Write the run directory (what ``clustra train --out`` writes); its path."""
        from cluster_core._state import check_output
        from cluster_core.runs import write_run

        self.path = write_run(self._result, check_output(path, overwrite=overwrite), overwrite=overwrite)
        return self.path


def _progress(progress: bool | Progress) -> Progress:
    if isinstance(progress, Progress):
        return progress
    return PrintProgress() if progress else Progress()


def train(
    data: Any,
    *,
    k: list[int] | int | None = None,
    algorithms: list[str] | str | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    cluster: Any = None,
    progress: bool | Progress = False,
    **settings: Any,
) -> Run:
    """Train a sweep of clustering models and rank them.

    Parameters
    ----------
    data : str, path, pandas.DataFrame or pyarrow.Table
        A Parquet file, directory (hive partitions), glob or fsspec URL; or a table in memory.
    k : int or list of int, optional
        Cluster counts to sweep (default: chosen from the data size).
    algorithms : str or list of str, optional
        Registered algorithm names (default ``kmeans, gmm, hdbscan``).
    out : path, optional
        Also write the run directory here.
    overwrite : bool
        Replace an existing ``out``.
    cluster : distributed.Client, "auto", "local", "inprocess" or a scheduler address, optional
        Where the work runs; default ``CLUSTRA_DASK_SCHEDULER`` when set, else ``"auto"``:
        this process (Dask's threads, no cluster) for data that fits comfortably, else a
        LocalCluster.
    progress : bool or Progress
        Print progress to stderr (True) or send it to a :class:`~cluster_core.progress.Progress`.
    **settings
        Any other field of :class:`cluster_core.config.TrainConfig` (``seed``, ``exclude``,
        ``include``, ``kinds``, ``max_k``, ``validation_fraction``, ...).

    Returns
    -------
    Run

    Raises
    ------
    cluster_core.errors.InvalidInputError
        A bad setting (its ``field`` names it), unknown columns, unreadable data.
    """
    from cluster_core.engine import AUTO, scheduler_address
    from cluster_core.usecases import train_config, train_run

    if isinstance(k, int):
        k = [k]
    if isinstance(algorithms, str):
        algorithms = [algorithms]
    config = train_config(settings, k=k, algorithms=algorithms)
    outcome = train_run(data, config, out=out, overwrite=overwrite, cluster=cluster or scheduler_address() or AUTO,
                        progress=_progress(progress))
    return Run(outcome.result, outcome.run_dir)


def load_model(path: str | os.PathLike) -> ClusteringModel:
    """A saved model: a model directory, or a run directory (its best model). Never unpickles."""
    from cluster_core.runs import load_model as _load

    return _load(path)


def train_series(
    data: Any,
    *,
    series_id: str,
    time: str,
    values: list[str] | str | None = None,
    method: str = "features",
    k: list[int] | int | None = None,
    algorithms: list[str] | str | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    cluster: Any = None,
    progress: bool | Progress = False,
    series: dict[str, Any] | None = None,
    **settings: Any,
) -> Any:
    """Segment the series of a long table, one row per series (docs/series.md).

    Parameters
    ----------
    data : str, path, pandas.DataFrame or pyarrow.Table
        One row per observation.
    series_id, time : str
        The columns naming the series and holding the timestamps.
    values : str or list of str, optional
        Value columns (default: every other numeric column).
    method : {"features", "shape", "kshape"}
    k, algorithms, out, overwrite, cluster, progress, **settings
        As for :func:`train` (the sweep of the features method).
    series : dict, optional
        Other fields of :class:`cluster_core.series.SeriesSettings` (``shape_length``, ``max_length``, ...).

    Returns
    -------
    cluster_core.series.SeriesOutcome
        ``assignments`` (one row per series), ``report`` (dropped series), ``summary`` (series.json).
    """
    from cluster_core.engine import AUTO, scheduler_address
    from cluster_core.series import train_series_run
    from cluster_core.usecases import train_config

    if isinstance(k, int):
        k = [k]
    if isinstance(algorithms, str):
        algorithms = [algorithms]
    if isinstance(values, str):
        values = [values]
    fields = dict(series or {}, series_id=series_id, time=time, values=values, method=method)
    return train_series_run(data, fields, train_config(settings, k=k, algorithms=algorithms), out=out, overwrite=overwrite,
                            cluster=cluster or scheduler_address() or AUTO, progress=_progress(progress))


__all__ = ["Run", "load_model", "train", "train_series"]
