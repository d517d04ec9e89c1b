"""Feature impact: how much the assignments change when one original column is permuted.

A column's whole block of features is permuted across rows (a text, image or geo column
moves as a whole), the rows are re-assigned, and two changes are measured: the share of
rows whose cluster changes and the RMSE of the membership vector (probabilities of every
cluster, or distances to every centroid). See docs/insights.md (``feature_impact``).
"""

from __future__ import annotations

import numpy as np

from ._columns import ColumnView, clean, project


def membership(estimator, features: np.ndarray, assignment) -> np.ndarray:
    """Per-row membership vector: probabilities of every cluster, else distances to every centroid,
    else the assigned cluster's probability or distance."""
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(features), np.float64)
    if assignment.distance is not None and hasattr(estimator, "transform"):
        return np.asarray(estimator.transform(features), np.float64)
    single = assignment.probability if assignment.probability is not None else assignment.distance
    if single is None:
        return np.zeros((len(features), 1))
    return np.asarray(single, np.float64)[:, None]


def labels_and_membership(estimator, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids and :func:`membership` with one pass where the model allows it (the assigned
    cluster is the most probable component / the nearest centroid)."""
    if hasattr(estimator, "predict_proba"):
        probabilities = np.asarray(estimator.predict_proba(features), np.float64)
        return probabilities.argmax(axis=1), probabilities
    if hasattr(estimator, "cluster_centers_") and hasattr(estimator, "transform"):
        distances = np.asarray(estimator.transform(features), np.float64)
        return distances.argmin(axis=1), distances
    result = estimator.assign(features)
    return np.asarray(result.labels), membership(estimator, features, result)


def feature_impact(estimator, pipeline, views: list[ColumnView], inputs: np.ndarray, seed: int = 0) -> list[dict]:
    """``[{"column", "impact", "changed_share", "rmse"}]`` sorted by impact, largest first.

    Parameters
    ----------
    estimator : ClusterEstimator
    pipeline : FeaturePipeline
    views : list of ColumnView
    inputs : ndarray of shape (n_samples, n_input_features)
        Weighted blocks of the sample (:func:`~cluster_core.insights._columns.weighted_blocks`).
    """
    base_labels, base_membership = labels_and_membership(estimator, project(pipeline, inputs))
    rng = np.random.default_rng(seed)
    rows = []
    for view in views:
        permuted = inputs.copy()
        order = rng.permutation(len(inputs))
        permuted[:, view.block] = inputs[order][:, view.block]
        labels, shuffled_membership = labels_and_membership(estimator, project(pipeline, permuted))
        changed = float(np.mean(labels != base_labels)) if len(inputs) else 0.0
        diff = shuffled_membership - base_membership
        rmse = float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0
        rows.append({"column": view.name, "changed_share": changed, "rmse": rmse})
    return normalize_impact(rows)


def normalize_impact(rows: list[dict]) -> list[dict]:
    """Add ``impact``: mean of the two measures each normalized to its largest, renormalized to 1."""
    top_changed = max((r["changed_share"] for r in rows), default=0.0)
    top_rmse = max((r["rmse"] for r in rows), default=0.0)
    for r in rows:
        parts = [r["changed_share"] / top_changed if top_changed > 0 else 0.0, r["rmse"] / top_rmse if top_rmse > 0 else 0.0]
        r["impact"] = sum(parts) / 2
    top = max((r["impact"] for r in rows), default=0.0)
    out = [{"column": r["column"], "impact": clean(r["impact"] / top if top > 0 else 0.0, 4),
            "changed_share": clean(r["changed_share"], 4), "rmse": clean(r["rmse"], 4)} for r in rows]
    return sorted(out, key=lambda r: -r["impact"])
