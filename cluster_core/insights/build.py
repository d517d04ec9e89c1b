"""``insights.json`` for every model of a run, from one sample of raw rows on the driver.

The sample is featurized once (its weighted blocks kept, so permutations need no second
featurization); the associations are a property of the data and computed once per run;
every model then assigns the sample and gets its profiles, observations, heatmap, names and
feature impact.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._state import write_json
from ..blocks import single_threaded_when_small
from ..errors import ArtifactError, ClustraError
from ._columns import ColumnView, column_views, project, weighted_blocks
from .associations import associations
from .heatmap import heatmap, profile_features
from .impact import feature_impact
from .naming import generated_names
from .observations import cluster_observations, public
from .profiles import column_profiles

INSIGHTS_FILE = "insights.json"
FORMAT = "clustra-insights"
FORMAT_VERSION = 1


@dataclass
class InsightsSample:
    """The raw rows insights are computed on and what every model shares about them."""

    frame: pd.DataFrame
    views: list[ColumnView]
    inputs: np.ndarray  # weighted blocks (before any projection)
    features: np.ndarray  # what the models see
    associations: dict
    impact_rows: int
    seed: int
    profile_features: list | None = None  # the heatmap's features of ``frame`` (the same for every model)


def prepare_sample(pipeline, frame: pd.DataFrame, *, impact_rows: int, association_rows: int, seed: int = 0) -> InsightsSample:
    """Featurize ``frame`` once and compute the run's associations."""
    frame = frame.reset_index(drop=True)
    views = column_views(pipeline)
    inputs = weighted_blocks(pipeline, frame)
    rows = min(len(frame), association_rows)
    shared = associations(views, frame.iloc[:rows], inputs[:rows], seed)
    try:
        features = profile_features(views, frame)
    except (ValueError, TypeError, KeyError, ClustraError):  # then each model's insights report it (run_insights)
        features = None
    return InsightsSample(frame, views, inputs, project(pipeline, inputs), shared, impact_rows, seed, features)


def model_insights(model, sample: InsightsSample) -> dict:
    """The insights document of one model (docs/insights.md); also names its clusters.

    ``model.clusters`` entries get ``name`` (generated from the observations unless the user
    named them) and ``name_source``.
    """
    estimator = model.estimator
    assignment = estimator.assign(sample.features)
    labels = np.asarray(assignment.labels, np.int64)
    clusters = list(range(model.n_clusters))
    profiled = clusters + ([-1] if (labels < 0).any() else [])
    features = sample.profile_features if sample.profile_features is not None else profile_features(sample.views, sample.frame)
    observations = cluster_observations(sample.views, features, sample.frame, labels, clusters)
    names = generated_names(observations)
    n = len(labels)
    entries = []
    by_id = {int(c["cluster_id"]): c for c in model.clusters}
    for c in clusters:
        entry = by_id.setdefault(c, {"cluster_id": c})
        if entry.get("name_source") != "user":
            entry["name"], entry["name_source"] = names[c], "generated"
        size = int((labels == c).sum())
        entries.append({"cluster_id": c, "name": entry["name"], "name_source": entry["name_source"], "size": size,
                        "share": round(size / max(n, 1), 6)})
    model.clusters = [by_id[c] for c in sorted(by_id)]
    noise = int((labels < 0).sum())
    impact_rows = min(n, sample.impact_rows)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model.model_id,
        "n_rows": n,
        "columns": [{"name": v.name, "kind": v.kind} for v in sample.views],
        "clusters": entries,
        "noise": {"size": noise, "share": round(noise / max(n, 1), 6)} if noise or model.algorithm == "hdbscan" else None,
        "profiles": column_profiles(sample.views, sample.frame, labels, assignment, profiled, sample.seed),
        "observations": public(observations),
        "heatmap": heatmap(features, labels, clusters),
        "feature_impact": feature_impact(estimator, model.pipeline, sample.views, sample.inputs[:impact_rows], sample.seed),
        "associations": sample.associations,
    }


def run_insights(
    models: list, frame: pd.DataFrame, *, impact_rows: int, association_rows: int, seed: int = 0, progress=None
) -> tuple[dict, float]:
    """``({model_id: document}, seconds)`` for models that share one pipeline (a run's models).

    A model whose insights fail on a value of the sample (a plugin kind, a degenerate fit) gets
    none and a progress message naming the error; the run and the other models are kept.
    """
    started = time.perf_counter()
    if not models or frame is None or len(frame) == 0:
        return {}, 0.0
    sample = prepare_sample(models[0].pipeline, frame, impact_rows=impact_rows, association_rows=association_rows, seed=seed)
    documents = {}
    with single_threaded_when_small(sample.features):  # thousands of rows: thread teams cost more than they give
        for model in models:
            try:
                documents[model.model_id] = model_insights(model, sample)
            except (ValueError, TypeError, KeyError, ClustraError, np.linalg.LinAlgError) as exc:
                if progress is not None:
                    progress.message(f"insights of {model.model_id} skipped: {type(exc).__name__}: {exc}")
    return documents, time.perf_counter() - started


def write_insights(model_dir: str | os.PathLike, document: dict) -> Path:
    """Write ``insights.json`` into a model directory (compact: a profile per cluster and column, for
    the report, the UI and the API, not for reading by eye; 64 clusters x 32 columns took ~0.1 s
    through the indenting encoder)."""
    path = Path(model_dir) / INSIGHTS_FILE
    write_json(path, document, compact=True)
    return path


def read_insights(model_dir: str | os.PathLike) -> dict:
    """``insights.json`` of a model directory; ArtifactError when it has none."""
    path = Path(model_dir) / INSIGHTS_FILE
    if not path.is_file():
        raise ArtifactError(
            f"model {str(model_dir)!r} has no {INSIGHTS_FILE} (trained with --no-insights or by an older Clustra)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{str(path)!r} is not valid JSON: {exc}") from exc
