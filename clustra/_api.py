"""The Python API: :func:`train` a sweep, look at its :class:`Run`, :func:`load_model` and use it;
read a model's :func:`insights`, :func:`rename` its clusters, write the HTML :func:`report`.

The same use cases as the ``clustra`` command (:mod:`cluster_core.usecases`); a table in
memory trains without Parquet on disk and without a Dask cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
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

    def _model(self, model: str | None) -> ClusteringModel:
        from cluster_core.errors import InvalidInputError

        if model is None:
            return self.recommended
        if model not in self.models:
            raise InvalidInputError(f"model={model!r} is not a model of this run; its models: {sorted(self.models)}",
                                    field="model")
        return self.models[model]

    def insights(self, model: str | None = None) -> dict:
        """A model's insights (what ``insights.json`` holds; docs/insights.md).

        Parameters
        ----------
        model : str, optional
            A model id of the run (default: the recommended model).

        Raises
        ------
        cluster_core.errors.InvalidInputError
            ``model`` is not a model of the run.
        cluster_core.errors.ArtifactError
            The run was trained with ``insights=False`` (or that model's insights failed).
        """
        from cluster_core.errors import ArtifactError

        chosen = self._model(model)
        document = self._result.insights.get(chosen.model_id)
        if document is None:
            raise ArtifactError(f"model {chosen.model_id!r} has no insights (trained with insights=False?)")
        return document

    def rename(self, cluster: int, name: str, *, model: str | None = None) -> dict:
        """Name a cluster of a model of this run (default: the recommended model), as ``clustra rename``.

        The name labels ``cluster_name`` in :meth:`Model.transform <cluster_core.model.ClusteringModel.transform>`
        and the insights; a saved run (``path`` set) is renamed on disk too. Returns the
        cluster's ``model.json`` entry.

        Parameters
        ----------
        cluster : int
            The cluster id.
        name : str
            1 to 100 printable characters (whitespace runs collapse to one space).
        model : str, optional
            A model id of the run (default: the recommended model).

        Raises
        ------
        cluster_core.errors.InvalidInputError
            Unknown model (field ``model``) or cluster (field ``cluster``), a bad name (field ``name``).
        """
        from cluster_core.insights import check_name, rename_cluster
        from cluster_core.insights.names import check_cluster, name_insights, named_clusters

        chosen = self._model(model)
        text = check_name(name)
        check_cluster(cluster, chosen.n_clusters, chosen.model_id)
        if self.path is not None:
            rename_cluster(Path(self.path) / "models" / chosen.model_id, cluster, text)
        chosen.clusters, entry = named_clusters(chosen.clusters, cluster, text)
        if chosen.model_id in self._result.insights:
            name_insights(self._result.insights[chosen.model_id], cluster, text)
        return entry

    def report(self, out: str | os.PathLike, *, models: list[str] | None = None, overwrite: bool = False) -> Path:
        """Write the HTML report of the saved run (see :func:`report`); the file's path."""
        from cluster_core.errors import InvalidInputError

        if self.path is None:
            raise InvalidInputError("the run is not saved: call run.save(PATH) (or train with out=) before run.report()",
                                    field="run")
        return report(self.path, out, models=models, overwrite=overwrite)


def _progress(progress: bool | Progress) -> Progress:
    if isinstance(progress, Progress):
        return progress
    return PrintProgress() if progress else Progress()


def _sweep_config(settings: dict[str, Any], k: list[int] | int | None, algorithms: list[str] | str | None) -> Any:
    """The validated :class:`~cluster_core.config.TrainConfig` of :func:`train` / :func:`train_series`
    (``k`` and ``algorithms`` may be one value)."""
    from cluster_core.usecases import train_config

    if isinstance(k, int):
        k = [k]
    if isinstance(algorithms, str):
        algorithms = [algorithms]
    return train_config(settings, k=k, algorithms=algorithms)


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
    from cluster_core.usecases import train_run

    config = _sweep_config(settings, k, algorithms)
    outcome = train_run(data, config, out=out, overwrite=overwrite, cluster=cluster or scheduler_address() or AUTO,
                        progress=_progress(progress))
    return Run(outcome.result, outcome.run_dir)


def load_model(path: str | os.PathLike) -> ClusteringModel:
    """A saved model: a model directory, or a run directory (its best model). Never unpickles."""
    from cluster_core.runs import load_model as _load

    return _load(path)


def _model_dir(path: str | os.PathLike, model: str | None) -> Path:
    """The model directory ``path`` stands for: a model directory, or a run's model ``model`` (default: its recommended)."""
    from cluster_core.errors import InvalidInputError
    from cluster_core.runs import LEADERBOARD_FILE, read_leaderboard, resolve_model_dir

    if model is None:
        return resolve_model_dir(path)
    if not (Path(path) / LEADERBOARD_FILE).is_file():
        raise InvalidInputError(f"model={model!r} selects a model of a run, but {str(path)!r} is not a run directory "
                                f"(no {LEADERBOARD_FILE})", field="model")
    known = [m["model_id"] for m in read_leaderboard(path)["models"] if m.get("status", "ok") == "ok"]
    if model not in known:
        raise InvalidInputError(f"model={model!r} is not a trained model of run {str(path)!r}; its models: {known}",
                                field="model")
    return Path(path) / "models" / model


def insights(path: str | os.PathLike, *, model: str | None = None) -> dict:
    """A saved model's insights: its ``insights.json`` (docs/insights.md).

    Parameters
    ----------
    path : path-like
        A model directory, or a run directory (its recommended model).
    model : str, optional
        With a run directory: this model of the run (e.g. ``"kmeans-k3"``).

    Returns
    -------
    dict
        ``profiles``, ``observations``, ``heatmap``, ``feature_impact``, ``associations``, ``clusters``, ...

    Raises
    ------
    cluster_core.errors.InvalidInputError
        ``path`` is neither a model nor a run directory, or ``model`` is not a model of the run.
    cluster_core.errors.ArtifactError
        The model has no ``insights.json`` (trained with ``insights=False``) or it is unreadable.
    """
    from cluster_core.insights import read_insights

    return read_insights(_model_dir(path, model))


def rename(path: str | os.PathLike, cluster: int, name: str, *, model: str | None = None) -> dict:
    """Name a cluster of a saved model, as ``clustra rename MODEL_DIR_OR_RUN --cluster ID --name TEXT``.

    The name is stored in the model's ``model.json`` and ``insights.json`` (``name_source:
    "user"``); applying the model writes it as ``cluster_name``. A published registry
    version never changes: rename the model directory and publish it again.

    Parameters
    ----------
    path : path-like
        A model directory, or a run directory (its recommended model).
    cluster : int
        The cluster id.
    name : str
        1 to 100 printable characters (whitespace runs collapse to one space).
    model : str, optional
        With a run directory: this model of the run.

    Returns
    -------
    dict
        The cluster's ``model.json`` entry (``cluster_id``, ``name``, ``name_source``, ...).

    Raises
    ------
    cluster_core.errors.InvalidInputError
        An unknown model or cluster, a bad name (``field`` names which), a registry version.
    """
    from cluster_core.insights import rename_cluster

    return rename_cluster(_model_dir(path, model), cluster, name)


def report(run: str | os.PathLike, out: str | os.PathLike, *, models: list[str] | str | None = None,
           overwrite: bool = False) -> Path:
    """Write a run's HTML report, as ``clustra report RUN_DIR [--model ID] --out FILE.html``.

    One self-contained file (plotly.js, styles and scripts inline; it requests nothing from
    any other host): the leaderboard and selection curves, then per model the embedding view,
    profiles, observations, heatmap, feature impact, associations, image gallery and map.

    Parameters
    ----------
    run : path-like
        A run directory.
    out : path-like
        The ``.html`` file to write (atomically).
    models : str or list of str, optional
        Only these models (default: every model, best first).
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from cluster_core.report import write_report

    if isinstance(models, str):
        models = [models]
    return write_report(run, out, model_ids=models, overwrite=overwrite)


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

    if isinstance(values, str):
        values = [values]
    fields = dict(series or {}, series_id=series_id, time=time, values=values, method=method)
    return train_series_run(data, fields, _sweep_config(settings, k, algorithms), out=out, overwrite=overwrite,
                            cluster=cluster or scheduler_address() or AUTO, progress=_progress(progress))


__all__ = ["Run", "insights", "load_model", "rename", "report", "train", "train_series"]
