"""Choosing a model of the sweep: stability under resampling, its null, BIC, and the recommendation.

Stability
    A model's stability is the mean agreement (adjusted Rand index) between two refits of
    the same unfitted estimator on two random subsamples of a fixed sample of the train
    rows, measured on the rows the subsamples share (Ben-Hur et al. 2002; Lange et al.
    2004). Every model refits on the same sample, so the cost is bounded by
    ``stability_sample`` rows whatever the data size.
Null
    The same computation on unstructured data of the same shape: a Gaussian sample with
    the sample's mean and covariance (the reference distribution of the gap statistic,
    Tibshirani et al. 2001, aligned with the data's principal axes). k-means splits a
    long Gaussian stably at k = 2, so raw stability favours small k; the *excess*
    ``stability - null_stability`` measures structure beyond what a cloud without
    clusters gives.
Recommendation
    :func:`recommend` (the rule is documented there and in ``docs/selection.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_STABILITY = 0.8  # refits must agree at least this much (ARI) for a partition to be reproducible
MIN_EXCESS = 0.2  # and agree this much more than they do on structureless data of the same shape
MAX_NOISE = 0.5  # a model leaving more rows than this unassigned describes too little of the data
SUBSAMPLE_FRACTION = 0.75  # each refit sees this share of the stability sample (pairs share ~56%)


def _refit_labels(template: Any, sample: np.ndarray, rows: np.ndarray, shared: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.base import clone

    estimator = clone(template)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    estimator.fit(sample[rows])
    return np.asarray(estimator.predict(sample[shared]))


def pair_agreement(template: Any, sample: np.ndarray, seed: int, pairs: int) -> float | None:
    """Mean ARI between refits of ``template`` on pairs of subsamples of ``sample``, on their shared rows.

    None when ``sample`` is too small or every refit failed.
    """
    from sklearn.metrics import adjusted_rand_score

    n = sample.shape[0]
    size = int(round(SUBSAMPLE_FRACTION * n))
    if size < 10:
        return None
    scores = []
    rng = np.random.default_rng([seed, 7919])
    for pair in range(pairs):
        a = np.sort(rng.choice(n, size, replace=False))
        b = np.sort(rng.choice(n, size, replace=False))
        shared = np.intersect1d(a, b)
        try:
            la = _refit_labels(template, sample, a, shared, seed + 2 * pair + 1)
            lb = _refit_labels(template, sample, b, shared, seed + 2 * pair + 2)
        except (ValueError, np.linalg.LinAlgError, RuntimeError):
            continue
        scores.append(adjusted_rand_score(la, lb))
    return float(np.mean(scores)) if scores else None


def null_sample(sample: np.ndarray, seed: int) -> np.ndarray:
    """A Gaussian sample with the mean and covariance of ``sample`` and its shape."""
    rng = np.random.default_rng([seed, 104729])
    data = np.asarray(sample, np.float64)
    mean = data.mean(axis=0)
    centred = data - mean
    # principal axes via SVD: exact for singular covariances (one-hot blocks, constant columns)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    scale = singular / math.sqrt(max(data.shape[0] - 1, 1))
    z = rng.standard_normal((data.shape[0], scale.shape[0]))
    return np.ascontiguousarray(mean + (z * scale) @ vt, dtype=np.float32)


def measure_stability(template: Any, sample: np.ndarray, seed: int, pairs: int) -> dict:
    """``{"stability", "null_stability", "stability_excess"}`` of an unfitted estimator (None where undefined)."""
    stability = pair_agreement(template, sample, seed, pairs)
    null = pair_agreement(template, null_sample(sample, seed), seed, pairs)
    excess = None if stability is None or null is None else stability - null
    return {"stability": _round(stability), "null_stability": _round(null), "stability_excess": _round(excess)}


def mixture_criteria(estimator: Any, rows: np.ndarray) -> dict:
    """BIC and ICL (BIC plus twice the classification entropy; lower is better) for mixtures, else None."""
    if not hasattr(estimator, "bic") or rows.shape[0] == 0:
        return {"bic": None, "icl": None}
    bic = float(estimator.bic(rows))
    resp = np.clip(estimator.predict_proba(rows), 1e-300, 1.0)
    entropy = float(-(resp * np.log(resp)).sum())
    return {"bic": round(bic, 3), "icl": round(bic + 2 * entropy, 3)}


VALIDITY_ROWS = 2_000  # the nearest-neighbour validity indices are O(rows^2)


def validity_indices(rows: np.ndarray, labels: np.ndarray, neighbours: int = 25) -> dict:
    """Gagolewski's nearest-neighbour cluster validity indices of a labelling (higher is better).

    ``wcnn``: the share of each row's ``neighbours`` nearest neighbours in its own cluster
    (the worst cluster's share); ``dunn_owa``: the near-neighbour Dunn index DuNN-OWA
    (smallest of the 5 smallest between-cluster neighbour distances over the largest
    within-cluster spread). Computed on at most ``VALIDITY_ROWS`` rows, noise left out;
    None where undefined (a cluster with no more rows than ``neighbours``).
    """
    from genieclust import cluster_validity

    keep = labels >= 0
    rows, labels = np.asarray(rows[keep], np.float64), labels[keep]
    if rows.shape[0] > VALIDITY_ROWS:
        pick = np.random.default_rng(0).choice(rows.shape[0], VALIDITY_ROWS, replace=False)
        rows, labels = rows[pick], labels[pick]
    _, labels = np.unique(labels, return_inverse=True)
    out = {"wcnn": None, "dunn_owa": None}
    if labels.size == 0 or labels.max() < 1 or np.bincount(labels).min() <= neighbours:
        return out
    try:
        out["wcnn"] = _round(cluster_validity.wcnn_index(rows, labels, M=neighbours))
        out["dunn_owa"] = _round(cluster_validity.dunnowa_index(rows, labels, M=neighbours, owa_numerator="SMin:5",
                                                                owa_denominator="Max"))
    except (ValueError, RuntimeError):
        pass
    return out


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), digits)


def variant_of(entry: dict) -> str:
    """The curve a leaderboard entry belongs to: the model id without its ``-kN`` suffix."""
    model_id = entry["model_id"]
    k = entry.get("requested_clusters")
    suffix = f"-k{k}"
    return model_id[: -len(suffix)] if k is not None and model_id.endswith(suffix) else model_id


def eligible(entry: dict) -> bool:
    """A model the recommendation may pick: fitted, at least two clusters, most rows assigned."""
    return (
        entry.get("status") == "ok"
        and (entry.get("n_clusters_found") or 0) >= 2
        and (entry.get("noise_fraction") or 0.0) <= MAX_NOISE
        and entry.get("silhouette") is not None
    )


def reproducible(entry: dict) -> bool:
    """Refits agree (``MIN_STABILITY``) and agree clearly more than on structureless data (``MIN_EXCESS``)."""
    stability, excess = entry.get("stability"), entry.get("stability_excess")
    return stability is not None and excess is not None and stability >= MIN_STABILITY and excess >= MIN_EXCESS


def _clusters(entry: dict) -> str:
    found, requested = entry.get("n_clusters_found"), entry.get("requested_clusters")
    return f"{found} clusters" + (f" of k={requested} requested" if requested not in (None, found) else "")


def recommend(entries: list[dict]) -> tuple[str | None, str]:
    """The recommended model id and the reason, from leaderboard entries.

    The rule (pre-registered, the same for every dataset; see docs/selection.md):

    1. Eligible: fitted, at least two clusters, at most ``MAX_NOISE`` of the rows noise.
    2. Reproducible: stability >= ``MIN_STABILITY`` (refits on two subsamples agree, ARI on
       the rows they share) and stability exceeds the same algorithm's stability on a
       structureless Gaussian of the data's shape by >= ``MIN_EXCESS``.
    3. Among reproducible models the most stable one; ties (equally reproducible
       partitions, often several at 1.0) go to the higher silhouette: the better separated.
    4. When no model is reproducible: the highest silhouette, and the reason says so.

    Evaluation columns (``--evaluate-against``) are never read.
    """
    candidates = [e for e in entries if eligible(e)]
    if not candidates:
        return None, "no model has two or more clusters with most rows assigned"
    stable = [e for e in candidates if reproducible(e)]
    if not stable:
        best = max(candidates, key=lambda e: e["silhouette"])
        return best["model_id"], (
            f"no model is reproducible (stability >= {MIN_STABILITY} and >= {MIN_EXCESS} above its null); "
            f"highest silhouette {best['silhouette']:.3f}, {_clusters(best)}"
        )
    best = max(stable, key=lambda e: (e["stability"], e["silhouette"]))
    return best["model_id"], (
        f"most stable of {len(stable)} reproducible models: refits agree ARI {best['stability']:.2f} "
        f"vs {best['null_stability']:.2f} on structureless data of the same shape (excess {best['stability_excess']:.2f}); "
        f"{_clusters(best)}, silhouette {best['silhouette']:.3f}"
    )


def selection_rule() -> str:
    """One line on how the recommendation is chosen (printed by the demo)."""
    return (
        f"among models whose refits on two subsamples agree (stability >= {MIN_STABILITY}) and agree at least "
        f"{MIN_EXCESS} more than on a structureless Gaussian of the same shape, the most stable "
        "(ties: the higher silhouette); silhouette alone only when none qualifies"
    )


CURVE_KEYS = ("silhouette", "davies_bouldin", "calinski_harabasz", "stability", "null_stability", "stability_excess",
              "bic", "icl", "wcnn", "dunn_owa")


def selection_curves(leaderboard: dict) -> dict:
    """``selection.json``: ``{variant: [point per k, ascending]}`` (schema in docs/selection.md).

    A variant is an algorithm (``kmeans``, ``gmm``, ``hdbscan``) or an algorithm with one
    value of a swept parameter (``genie-g0.3``).
    """
    curves: dict[str, list[dict]] = {}
    for entry in leaderboard["models"]:
        if entry.get("status") != "ok":
            continue
        point = {"k": entry.get("requested_clusters"), "n_clusters_found": entry.get("n_clusters_found"),
                 "model_id": entry["model_id"], "algorithm": entry["algorithm"]}
        point.update({key: entry.get(key) for key in CURVE_KEYS})
        curves.setdefault(entry.get("variant") or variant_of(entry), []).append(point)
    for points in curves.values():
        points.sort(key=lambda p: (p["k"] is None, p["k"] or 0))
    return curves
