"""Series mode end to end: train a run on a long table, apply it to another (docs/series.md).

A series run directory holds, besides what its method writes:

* ``series.json`` — the series settings, the value columns, how series were resampled,
  counts, the dropped series and why, the method and the chosen model;
* ``series_assignments.parquet`` — one row per series: the series id column,
  ``cluster_id``, ``cluster_name`` and ``distance`` or ``cluster_probability``;
* ``series_segments.csv`` — ``SERIES_ID,segment``: the segment table a segmented
  forecasting project takes (the segment is the cluster name; ``noise`` for HDBSCAN noise);
* ``series_profiles.json`` — each cluster's typical shape and spread
  (:func:`~cluster_core.series.profiles.cluster_profiles`).

``method="features"`` also writes a regular run (leaderboard, models, insights) trained on
the per-series feature table; ``shape``/``kshape`` write ``shape_model.json/.npz`` and the
same centers as a publishable model directory ``models/MODEL_ID/`` (:mod:`.published`).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._state import check_output, read_state, staged_directory, write_json, write_state
from ..config import TrainConfig
from ..data import dataset_from_table
from ..engine import AUTO, open_engine
from ..errors import ArtifactError, DataError, InvalidInputError
from ..progress import Progress
from ..usecases import choose_engine, open_dataset, start_train, train_config
from ..validation import validated
from .features import feature_names
from .profiles import cluster_profiles
from .published import SERIES_FILE, segment_name, shape_model_from_run
from .resample import RESAMPLING
from .settings import SeriesSettings
from .shape import ShapeModel, fit_shapes, pairwise, silhouette
from .table import OK, dropped_report, resolve_columns, shape_array, summarize_frame

ASSIGNMENTS_FILE = "series_assignments.parquet"
SEGMENTS_FILE = "series_segments.csv"
PROFILES_FILE = "series_profiles.json"
SHAPE_MODEL = "shape_model"
SHAPE_SILHOUETTE_SAMPLE = 1000
SHAPE_DEFAULT_COUNTS = tuple(range(2, 9))


def series_settings(settings: SeriesSettings | dict[str, Any]) -> SeriesSettings:
    """Validated :class:`SeriesSettings`; a bad value is an InvalidInputError naming its field."""
    if isinstance(settings, SeriesSettings):
        return settings
    return validated(SeriesSettings, {k: v for k, v in dict(settings).items() if v is not None})


def is_series_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run directory written by :func:`train_series_run`."""
    return (Path(path) / SERIES_FILE).is_file()


@dataclass
class SeriesOutcome:
    """What :func:`train_series_run` produced."""

    settings: SeriesSettings
    assignments: pd.DataFrame  # one row per kept series
    report: list[dict]  # dropped series
    summary: dict  # series.json
    run_dir: Path | None = None
    result: Any = None  # the TrainResult of the features method
    sweep: list[dict] = field(default_factory=list)  # shape methods: one entry per k


def _summarize(dataset, series: SeriesSettings, carry: list[str], progress: Progress) -> tuple[pd.DataFrame, list[str], list[dict]]:
    values = resolve_columns(series, dataset.frame._meta, carry)
    progress.step(f"one row per series of {series.series_id!r} over {series.time!r}, values {values} "
                  f"(regular grid of each series' median step, gaps interpolated)")
    table = summarize_frame(dataset.frame, series, values, carry)
    report = dropped_report(table, series)
    kept = table[table["status"] == OK].reset_index(drop=True)
    if report:
        shown = ", ".join(f"{r['series_id']!r} ({r['reason'].removeprefix('dropped: ')})" for r in report[:5])
        more = f" and {len(report) - 5} more" if len(report) > 5 else ""
        progress.message(f"{len(report)} series dropped (listed in {SERIES_FILE}): {shown}{more}")
    progress.message(f"{len(kept):,} series kept of {len(table):,}; median length {int(kept['n_points'].median()) if len(kept) else 0} points")
    return kept, values, report


def train_series_run(
    data: Any,
    series: SeriesSettings | dict[str, Any],
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    cluster: Any = AUTO,
    progress: Progress | None = None,
) -> SeriesOutcome:
    """Cluster the series of a long table, one row per series, and (with ``out``) write the run.

    Parameters
    ----------
    data : str, path, pandas.DataFrame, pyarrow.Table or Dataset
        One row per observation: series id, timestamp, value column(s).
    series : SeriesSettings or dict
    config : TrainConfig or dict, optional
        The sweep (algorithms, k, seed, ...) of the features method; ``k``, ``seed``,
        ``kmeans_n_init`` and ``max_iter`` for the shape methods. ``evaluate_against`` may
        name a column of the long table that is constant within a series (a known segment).
    out, overwrite, cluster, progress
        As for :func:`cluster_core.usecases.train_run`.

    Raises
    ------
    InvalidInputError, DataError
        A missing or non-numeric column, a series over the length limit, fewer than two
        usable series; settings and columns are checked before an engine starts.
    """
    series = series_settings(series)
    config = train_config(config)
    if series.method != "features" and config.metric != "euclidean":
        raise InvalidInputError(f"metric={config.metric!r} applies to the features method; method={series.method!r} "
                                "uses its own distance (DTW or k-Shape's)", field="metric")
    start = start_train(data, config, out=out, overwrite=overwrite, progress=progress)
    target, dataset, progress = start.target, start.dataset, start.progress
    carry = [config.evaluate_against] if config.evaluate_against else []
    resolve_columns(series, dataset.frame._meta, carry)
    for name in carry:
        if name not in dataset.columns:
            raise InvalidInputError(f"column {name!r} is not in the data; its columns: {dataset.columns}",
                                    field="evaluate_against")
    engine = choose_engine(cluster, dataset, progress)
    with open_engine(engine, device=config.device) as client:
        kept, values, report = _summarize(dataset, series, carry, progress)
        if len(kept) < 2:
            raise DataError(f"{len(kept)} usable series; at least 2 are needed to cluster ({len(report)} dropped)")
        shapes = shape_array(kept, values, series.shape_length)
        summary = _summary(series, values, kept, report, dataset.path, config)
        if series.method == "features":
            outcome = _train_features(kept, values, series, config, client, progress, summary, report, shapes)
        else:
            outcome = _train_shapes(kept, series, config, progress, summary, report, shapes)
    outcome.summary["profiles"] = PROFILES_FILE
    if target is not None:
        progress.step(f"writing {target}")
        _write(outcome, target, overwrite, shapes, values)
        outcome.run_dir = target
    return outcome


def _summary(series: SeriesSettings, values: list[str], kept: pd.DataFrame, report: list[dict], data: str,
             config: TrainConfig) -> dict:
    return {
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "data": data,
        "settings": series.model_dump(),
        "values": values,
        "method": series.method,
        "resampling": RESAMPLING,
        "n_series": int(len(kept) + len(report)),
        "n_series_kept": int(len(kept)),
        "n_series_dropped": len(report),
        "dropped": report,
        "points": {"median": float(kept["n_points"].median()), "max": int(kept["n_points"].max()),
                   "series_with_gaps": int((kept["n_gaps"] > 0).sum())},
        "evaluate_against": config.evaluate_against,
    }


def _train_features(kept, values, series, config, client, progress, summary, report, shapes) -> SeriesOutcome:
    from ..training import train_models

    names = feature_names(values, series.profile_points)
    carry = [config.evaluate_against] if config.evaluate_against else []
    table = kept[[series.series_id, *carry, *names]].copy()
    for column in carry:  # a known segment, compared as text
        table[column] = table[column].astype("string")
    sweep_config = train_config(config, exclude=list(dict.fromkeys([*config.exclude, series.series_id])))
    result = train_models(dataset_from_table(table, name=f"series of {summary['data']}"), sweep_config, client=client,
                          progress=progress)
    board = result.leaderboard()
    for each in result.models():  # saved in model.json: a published model answers one series per record
        each.metadata["series"] = {"settings": series.model_dump(), "values": values}
    model = next(m for m in result.models() if m.model_id == board["recommended"])
    scored = model.transform(table)
    assignments = pd.concat([kept[[series.series_id]], scored.reset_index(drop=True)], axis=1)
    summary.update({"model_id": model.model_id, "n_clusters": int(model.n_clusters), "features": names})
    return SeriesOutcome(series, assignments, report, summary, result=result)


def _train_shapes(kept, series, config, progress, summary, report, shapes) -> SeriesOutcome:
    if config.k and max(config.k) >= len(kept):
        raise DataError(f"k={max(config.k)} needs more than {len(kept)} usable series", field="k")
    counts = [k for k in (config.k or SHAPE_DEFAULT_COUNTS) if k < len(kept)] or [2]
    rng = np.random.default_rng(config.seed)
    sample = rng.choice(len(kept), min(len(kept), SHAPE_SILHOUETTE_SAMPLE), replace=False)
    sweep, best = [], None
    for done, k in enumerate(counts, start=1):
        model = fit_shapes(shapes, k, series.method, series.dtw_radius(), n_init=min(config.kmeans_n_init, 3),
                           max_iter=min(config.max_iter, 50), seed=config.seed)
        labels, distance = model.assign(shapes)
        score = silhouette(pairwise(model, shapes[sample]), labels[sample]) if len(counts) > 1 else None
        entry = {"model_id": f"{model.algorithm}-k{k}", "k": k, "silhouette": score,
                 "mean_distance": float(distance.mean()), "cluster_sizes": np.bincount(labels, minlength=k).tolist()}
        sweep.append(entry)
        progress.advance(done, len(counts), f"{entry['model_id']}: silhouette {'n/a' if score is None else f'{score:.3f}'}")
        if best is None or (score is not None and (best[0] is None or score > best[0])):
            best = (score, model, labels, distance, entry)
    _, model, labels, distance, entry = best
    names = [segment_name(c) for c in range(model.n_clusters)]
    assignments = pd.DataFrame({series.series_id: kept[series.series_id].to_numpy(), "cluster_id": labels,
                                "distance": distance, "cluster_name": pd.array([names[c] for c in labels], dtype="string")})
    summary.update({"model_id": entry["model_id"], "n_clusters": model.n_clusters, "shape_model": SHAPE_MODEL,
                    "sweep": sweep, "dtw_radius": series.dtw_radius() if series.method == "shape" else None,
                    "ranked_by": "silhouette (sampled, in the model's distance)", "seed": config.seed})
    outcome = SeriesOutcome(series, assignments, report, summary, sweep=sweep)
    outcome.result = model
    return outcome


def _segments(assignments: pd.DataFrame, series_id: str) -> pd.DataFrame:
    names = assignments["cluster_name"].astype("object")
    segment = np.where(assignments["cluster_id"] < 0, "noise", names.where(names.notna(), assignments["cluster_id"].astype(str)))
    return pd.DataFrame({series_id: assignments[series_id].to_numpy(), "segment": segment})


def _write(outcome: SeriesOutcome, target: Path, overwrite: bool, shapes: np.ndarray, values: list[str]) -> None:
    series_id = outcome.settings.series_id
    labels = outcome.assignments["cluster_id"].to_numpy()
    names = dict(zip(outcome.assignments["cluster_id"].tolist(), outcome.assignments["cluster_name"].tolist()))
    profiles = cluster_profiles(shapes, labels, values, {int(k): v for k, v in names.items() if v is not None and v is not pd.NA})

    def series_files(directory: Path) -> None:
        outcome.assignments.to_parquet(directory / ASSIGNMENTS_FILE, index=False)
        _segments(outcome.assignments, series_id).to_csv(directory / SEGMENTS_FILE, index=False)
        write_json(directory / PROFILES_FILE, profiles)
        write_json(directory / SERIES_FILE, outcome.summary)

    if outcome.settings.method == "features":
        from ..runs import write_run

        write_run(outcome.result, target, overwrite=overwrite)
        series_files(target)  # series.json last: it marks the run as a series run
        return
    model_id = outcome.summary["model_id"]
    chosen = next(e for e in outcome.sweep if e["model_id"] == model_id)
    metrics = {"silhouette": chosen["silhouette"], "mean_distance": chosen["mean_distance"]}
    publishable = shape_model_from_run(outcome.result, outcome.settings, values, model_id, labels, metrics)
    with staged_directory(target, overwrite=overwrite) as staging:
        write_state(staging, SHAPE_MODEL, outcome.result.get_state())
        publishable.save(staging / "models" / model_id)  # what `clustra publish RUN NAME` publishes
        series_files(staging)


def apply_series_run(
    run: str | os.PathLike,
    data: Any,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    cluster: Any = AUTO,
    device: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Assign the series of a long table with a series run: ``OUT/series_assignments.parquet``
    (as in the run) and ``OUT/series_report.json`` (counts, dropped series).

    Returns
    -------
    dict
        ``out``, ``n_series``, ``n_series_dropped``, ``cluster_counts``, ``model_id``.
    """
    import json

    progress = progress or Progress()
    run = Path(run)
    target = check_output(out, overwrite=overwrite)
    try:
        summary = json.loads((run / SERIES_FILE).read_text())
        series = SeriesSettings(**summary["settings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{str(run / SERIES_FILE)!r} is not a readable series run description ({exc})") from None
    settings = series.model_copy(update={"values": summary["values"]})
    dataset = open_dataset(data, device=device)
    resolve_columns(settings, dataset.frame._meta)
    engine = choose_engine(cluster, dataset, progress)
    with open_engine(engine, device=device):
        kept, values, report = _summarize(dataset, settings, [], progress)
        if len(kept) == 0:
            raise DataError(f"no usable series to assign ({len(report)} dropped)")
        if series.method == "features":
            from ..runs import load_model

            model = load_model(run)
            table = kept[[series.series_id, *feature_names(values, series.profile_points)]]
            assignments = pd.concat([kept[[series.series_id]], model.transform(table).reset_index(drop=True)], axis=1)
        else:
            shape_model = ShapeModel.from_state(read_state(run, SHAPE_MODEL))
            labels, distance = shape_model.assign(shape_array(kept, values, series.shape_length))
            assignments = pd.DataFrame({series.series_id: kept[series.series_id].to_numpy(), "cluster_id": labels,
                                        "distance": distance,
                                        "cluster_name": pd.array([segment_name(c) for c in labels], dtype="string")})
    counts = assignments["cluster_id"].value_counts().sort_index()
    result = {"out": str(target), "n_series": int(len(kept)), "n_series_dropped": len(report),
              "cluster_counts": {str(k): int(v) for k, v in counts.items()}, "model_id": summary.get("model_id")}
    with staged_directory(target, overwrite=overwrite) as staging:
        assignments.to_parquet(staging / ASSIGNMENTS_FILE, index=False)
        write_json(staging / "series_report.json", dict(result, dropped=report))
    return result


__all__ = ["ASSIGNMENTS_FILE", "PROFILES_FILE", "SEGMENTS_FILE", "SERIES_FILE", "SeriesOutcome", "apply_series_run",
           "is_series_run", "series_settings", "train_series_run"]
