"""Drift of segments: a scored batch against the training sample kept with the model.

At training time :func:`build_reference` summarises a uniform sample of the training rows
(up to :data:`SAMPLE_ROWS`) for every model: the share of each cluster the model assigns,
and a reference histogram per used column — quantile bins for numbers and datetimes (edges
from the sample), the most frequent categories for categories and flags, a missing-value bin
for both. It is saved in the model directory as ``drift.json`` + ``drift.npz`` (no pickle).

:func:`compare` scores a batch with the model and measures, against that reference:

- cluster shares: the population stability index (PSI) over clusters and the largest absolute
  change of one cluster's share;
- per feature: the PSI of the batch's histogram over the reference bins.

PSI = sum((a - e) * ln(a / e)) over bins, with e and a the reference and batch proportions
(floored at :data:`PSI_FLOOR`). Rule of thumb: below 0.1 stable, 0.1-0.2 moderate, 0.2 and
above a shift.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._state import read_state, write_state
from .errors import ArtifactError, InvalidInputError
from .kinds import BOOLEAN, CATEGORICAL, DATETIME, NUMERIC

STATE_NAME = "drift"  # drift.json + drift.npz in a model directory
FORMAT_VERSION = 1
SAMPLE_ROWS = 5000
NUMERIC_BINS = 10
MAX_CATEGORIES = 30
PSI_FLOOR = 1e-4
DEFAULT_PSI_THRESHOLD = 0.2
DEFAULT_SHARE_THRESHOLD = 0.1
DEFAULT_BATCH_ROWS = 100_000  # rows of a batch compared by default (clustra drift --sample-rows, a drift job's sample_rows)
_NUMBER_KINDS = (NUMERIC, DATETIME)
_CATEGORY_KINDS = (CATEGORICAL, BOOLEAN)


def _as_numbers(values: pd.Series, kind: str) -> np.ndarray:
    """Float values (NaN = missing); datetimes as seconds since the epoch."""
    if kind == DATETIME:
        stamps = pd.to_datetime(values, errors="coerce", utc=True)
        seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _as_labels(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """String labels and a missing mask."""
    missing = values.isna().to_numpy()
    return values.astype(str).to_numpy(), missing


def numeric_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (``len(edges) + 1`` bins split at ``edges``) then missing values."""
    present = values[~np.isnan(values)]
    bins = np.searchsorted(edges, present, side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return np.append(counts, np.isnan(values).sum()).astype(np.int64)


def category_counts(labels: np.ndarray, missing: np.ndarray, categories: list[str]) -> np.ndarray:
    """Counts per category, then every other category, then missing values."""
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 2, np.int64)
    for label, is_missing in zip(labels, missing):
        counts[-1 if is_missing else index.get(label, len(categories))] += 1
    return counts


def _feature_reference(name: str, kind: str, values: pd.Series, bins: int) -> dict[str, Any]:
    if kind in _NUMBER_KINDS:
        numbers = _as_numbers(values, kind)
        present = numbers[~np.isnan(numbers)]
        edges = np.unique(np.quantile(present, np.arange(1, bins) / bins)) if present.size else np.empty(0)
        return {"name": name, "kind": kind, "edges": edges.astype(np.float64), "counts": numeric_counts(numbers, edges)}
    labels, missing = _as_labels(values)
    frequent = pd.Series(labels[~missing]).value_counts(sort=True)
    categories = [str(c) for c in frequent.index[:MAX_CATEGORIES]]
    return {"name": name, "kind": kind, "categories": categories, "counts": category_counts(labels, missing, categories)}


def column_references(pipeline: Any, sample: pd.DataFrame, bins: int = NUMERIC_BINS) -> tuple[list[dict], list[dict]]:
    """``(features, skipped)`` of a drift reference: per used column of ``pipeline``'s schema, its
    bins or categories and counts in ``sample``. They depend on the rows, not on the model: the
    models of a sweep share them (:func:`build_reference`'s ``columns``)."""
    features, skipped = [], []
    for column in pipeline.schema.used:
        if column.kind in _NUMBER_KINDS or column.kind in _CATEGORY_KINDS:
            features.append(_feature_reference(column.name, column.kind, sample[column.name], bins))
        else:
            skipped.append({"name": column.name, "kind": column.kind})
    return features, skipped


def build_reference(model: Any, sample: pd.DataFrame, *, labels: np.ndarray | None = None,
                    bins: int = NUMERIC_BINS, columns: tuple[list[dict], list[dict]] | None = None) -> dict[str, Any]:
    """The drift reference of ``model`` from ``sample`` (raw training rows).

    Parameters
    ----------
    model : ClusteringModel
    sample : pandas.DataFrame of shape (n_samples, n_columns)
        A uniform sample of the training rows, with the model's input columns.
    labels : ndarray of shape (n_samples,), optional
        The model's cluster ids of ``sample`` when already known (models of one sweep share
        their features: featurize once, then ``estimator.predict``); computed otherwise.
    bins : int
        Quantile bins per numeric column.
    columns : tuple, optional
        :func:`column_references` of ``sample`` for ``model``'s pipeline when already computed
        (read only, shared by the references built from them); computed otherwise.

    Returns
    -------
    dict
        A state for :func:`cluster_core._state.write_state` (JSON values and numeric arrays).
    """
    if len(sample) == 0:
        raise ValueError("sample has 0 rows; expected the training sample")
    labels = model.predict(sample) if labels is None else np.asarray(labels)
    if labels.shape != (len(sample),):
        raise ValueError(f"labels of shape {labels.shape}; expected ({len(sample)},), one per sample row")
    ids, counts = np.unique(labels, return_counts=True)
    features, skipped = columns if columns is not None else column_references(model.pipeline, sample, bins)
    return {
        "format_version": FORMAT_VERSION,
        "n_rows": int(len(sample)),
        "cluster_ids": ids.astype(np.int64),
        "cluster_counts": counts.astype(np.int64),
        "features": features,
        "skipped": skipped,
    }


def write_reference(model_dir: str | os.PathLike, reference: dict[str, Any]) -> None:
    """Save ``reference`` as ``drift.json`` + ``drift.npz`` in ``model_dir``."""
    write_state(Path(model_dir), STATE_NAME, reference)


def has_reference(model_dir: str | os.PathLike) -> bool:
    return (Path(model_dir) / f"{STATE_NAME}.json").is_file()


def read_reference(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The drift reference saved in ``model_dir``.

    Raises
    ------
    ArtifactError
        The model has none (trained before references were kept) or a newer format.
    """
    if not has_reference(model_dir):
        raise ArtifactError(
            f"model {str(model_dir)!r} has no drift reference ({STATE_NAME}.json): it was trained before Clustra "
            "kept a training sample with each model; train it again to monitor drift"
        )
    reference = read_state(Path(model_dir), STATE_NAME)
    if reference.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(
            f"drift reference of {str(model_dir)!r} has format_version={reference.get('format_version')}, "
            f"newer than this Clustra reads ({FORMAT_VERSION})"
        )
    return reference


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of ``actual`` counts against ``expected`` counts (same bins)."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ValueError(f"expected counts of shape {expected.shape}, got {actual.shape}")
    e = np.maximum(expected / max(expected.sum(), 1.0), PSI_FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1.0), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _cluster_drift(model: Any, reference: dict[str, Any], labels: np.ndarray) -> dict[str, Any]:
    ref_ids = [int(i) for i in reference["cluster_ids"]]
    batch_ids, batch_counts = np.unique(labels, return_counts=True)
    ids = sorted(set(ref_ids) | {int(i) for i in batch_ids})
    expected = np.array([dict(zip(ref_ids, reference["cluster_counts"])).get(i, 0) for i in ids], np.float64)
    actual = np.array([dict(zip(batch_ids.tolist(), batch_counts)).get(i, 0) for i in ids], np.float64)
    names = model.cluster_names()
    e_share, a_share = expected / max(expected.sum(), 1.0), actual / max(actual.sum(), 1.0)
    rows = [
        {"cluster_id": i, "name": names.get(i), "reference_share": round(float(e), 6), "batch_share": round(float(a), 6),
         "change": round(float(a - e), 6)}
        for i, e, a in zip(ids, e_share, a_share)
    ]
    return {"psi": round(psi(expected, actual), 6), "max_share_change": round(float(np.max(np.abs(a_share - e_share))), 6),
            "clusters": rows}


def _feature_drift(feature: dict[str, Any], values: pd.Series) -> dict[str, Any]:
    if feature["kind"] in _NUMBER_KINDS:
        counts = numeric_counts(_as_numbers(values, feature["kind"]), np.asarray(feature["edges"], np.float64))
    else:
        counts = category_counts(*_as_labels(values), list(feature["categories"]))
    expected = np.asarray(feature["counts"], np.float64)
    missing_change = counts[-1] / max(counts.sum(), 1) - expected[-1] / max(expected.sum(), 1.0)
    return {"name": feature["name"], "kind": feature["kind"], "psi": round(psi(expected, counts), 6),
            "missing_change": round(float(missing_change), 6)}


def compare(
    model: Any,
    reference: dict[str, Any],
    batch: pd.DataFrame,
    *,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    share_threshold: float = DEFAULT_SHARE_THRESHOLD,
) -> dict[str, Any]:
    """Drift of ``batch`` against the model's training reference.

    Parameters
    ----------
    model : ClusteringModel
    reference : dict
        From :func:`read_reference`.
    batch : pandas.DataFrame of shape (n_samples, n_columns)
        Rows to score, with the model's input columns.
    psi_threshold : float
        A feature, or the cluster shares as a whole, drifted when its PSI is at least this.
    share_threshold : float
        The cluster shares drifted when one cluster's share moved by at least this (absolute).

    Returns
    -------
    dict
        ``drift`` (bool), ``reasons``, ``clusters`` (PSI, largest share change, per cluster
        shares) and ``features`` (PSI per column), with the thresholds and row counts.

    Raises
    ------
    InvalidInputError
        Bad thresholds, an empty batch, or columns of the reference missing from it.
    """
    if not (psi_threshold > 0 and math.isfinite(psi_threshold)):
        raise InvalidInputError(f"threshold={psi_threshold} should be a positive number (PSI; 0.2 is usual)", field="threshold")
    if not 0 < share_threshold <= 1:
        raise InvalidInputError(f"share_threshold={share_threshold} should be in (0, 1]", field="share_threshold")
    if len(batch) == 0:
        raise InvalidInputError("the data has 0 rows; expected a batch to compare with the training sample", field="data")
    needed = [c.name for c in model.pipeline.schema.used]
    missing = [name for name in needed if name not in batch.columns]
    if missing:
        raise InvalidInputError(
            f"the data lacks column(s) {missing} that the model uses; it has {list(batch.columns)}", field="data"
        )
    clusters = _cluster_drift(model, reference, model.predict(batch))
    features = [_feature_drift(f, batch[f["name"]]) for f in reference["features"]]
    reasons = []
    if clusters["psi"] >= psi_threshold:
        reasons.append(f"cluster shares: PSI {clusters['psi']:.3f} >= {psi_threshold:g}")
    if clusters["max_share_change"] >= share_threshold:
        worst = max(clusters["clusters"], key=lambda r: abs(r["change"]))
        reasons.append(
            f"cluster {worst['cluster_id']} share {worst['reference_share']:.1%} -> {worst['batch_share']:.1%} "
            f"(change {abs(worst['change']):.3f} >= {share_threshold:g})"
        )
    for feature in sorted(features, key=lambda f: -f["psi"]):
        if feature["psi"] >= psi_threshold:
            reasons.append(f"feature {feature['name']}: PSI {feature['psi']:.3f} >= {psi_threshold:g}")
    return {
        "drift": bool(reasons),
        "reasons": reasons,
        "model_id": model.model_id,
        "reference_rows": int(reference["n_rows"]),
        "batch_rows": int(len(batch)),
        "psi_threshold": psi_threshold,
        "share_threshold": share_threshold,
        "clusters": clusters,
        "features": features,
        "not_checked": list(reference.get("skipped", [])),
    }


def verdict_line(report: dict[str, Any]) -> str:
    """The one line a scheduled job's log shows (``drift: DETECTED - ...`` or ``drift: none - ...``)."""
    if report["drift"]:
        return "drift: DETECTED - " + "; ".join(report["reasons"])
    worst = max((f["psi"] for f in report["features"]), default=0.0)
    return (f"drift: none - cluster shares PSI {report['clusters']['psi']:.3f}, largest share change "
            f"{report['clusters']['max_share_change']:.3f} < {report['share_threshold']:g}, largest feature PSI "
            f"{worst:.3f} < {report['psi_threshold']:g}")


__all__ = [
    "DEFAULT_BATCH_ROWS", "DEFAULT_PSI_THRESHOLD", "DEFAULT_SHARE_THRESHOLD", "SAMPLE_ROWS", "build_reference", "compare", "has_reference",
    "psi", "read_reference", "verdict_line", "write_reference",
]
