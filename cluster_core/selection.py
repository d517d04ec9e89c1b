"""Choosing a model of the sweep: stability under resampling, its null, BIC, and the recommendation.

Stability
    A model's stability is the mean agreement (adjusted Rand index) between two refits of
    the same unfitted estimator on two random subsamples of a fixed sample of the train
    rows, measured on the rows the subsamples share (Ben-Hur et al. 2002; Lange et al.
    2004). Every model refits on the same sample, so the cost is bounded by
    ``stability_sample`` rows whatever the data size.
Null
    The same computation on unstructured data of the same shape: continuous columns drawn
    from a Gaussian with the sample's mean and covariance (the reference distribution of
    the gap statistic, Tibshirani et al. 2001, aligned with the data's principal axes),
    discrete column groups (one-hot categories, flags) shuffled as whole blocks, so they
    keep their categories and shares but lose their association with the rest. k-means
    splits a long Gaussian, or a table on its flags, stably at k = 2, so raw stability
    favours small k; the *excess* ``stability - null_stability`` measures structure beyond
    what data without clusters gives.
Recommendation
    :func:`recommend` (the rule is documented there and in ``docs/selection.md``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
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


def _refit_or_none(template: Any, sample: np.ndarray, rows: np.ndarray, shared: np.ndarray, seed: int) -> np.ndarray | None:
    """:func:`_refit_labels`, or None when the refit fails (the pair is then left out)."""
    try:
        return _refit_labels(template, sample, rows, shared, seed)
    except (ValueError, np.linalg.LinAlgError, RuntimeError):
        return None


def _subsample_pairs(n: int, seed: int, pairs: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """``pairs`` pairs of subsamples ``(a, b, shared rows)`` of ``n`` rows, None when they would be too
    small; the same draws for every model and for the null (one seeded generator)."""
    size = int(round(SUBSAMPLE_FRACTION * n))
    if size < 10:
        return None
    rng = np.random.default_rng([seed, 7919])
    out = []
    for _ in range(pairs):
        a = np.sort(rng.choice(n, size, replace=False))
        b = np.sort(rng.choice(n, size, replace=False))
        out.append((a, b, np.intersect1d(a, b)))
    return out


def _pair_labels(template: Any, sample: np.ndarray, draws: list, seed: int) -> list[tuple]:
    """Per pair of ``draws``: the two refits' labels of the shared rows of ``sample`` (None for a
    failed refit); refit ``2 * pair + 1`` and ``2 * pair + 2`` are seeded ``seed`` plus that."""
    return [tuple(_refit_or_none(template, sample, rows, shared, seed + 2 * pair + side) for side, rows in ((1, a), (2, b)))
            for pair, (a, b, shared) in enumerate(draws)]


def _agreement(pairs: list[tuple]) -> float | None:
    from .agreement import adjusted_rand

    scores = [adjusted_rand(la, lb) for la, lb in pairs if la is not None and lb is not None]
    return float(np.mean(scores)) if scores else None


def pair_agreement(template: Any, sample: np.ndarray, seed: int, pairs: int) -> float | None:
    """Mean ARI between refits of ``template`` on pairs of subsamples of ``sample``, on their shared rows.

    None when ``sample`` is too small or every refit failed.
    """
    draws = _subsample_pairs(sample.shape[0], seed, pairs)
    return None if draws is None else _agreement(_pair_labels(template, sample, draws, seed))


def discrete_blocks(sample: np.ndarray, feature_names: list[str] | None = None) -> list[np.ndarray]:
    """Groups of ``sample``'s columns that are discrete, one group per original column.

    A feature is discrete when it takes at most two values in the sample (one-hot
    categories, booleans, missing-value indicators); features named ``COLUMN=VALUE`` or
    ``COLUMN__SUFFIX`` belong to the group of ``COLUMN``, so a one-hot block stays one
    block. Without names every discrete feature is its own group.
    """
    data = np.asarray(sample)
    groups: dict[str, list[int]] = {}
    for j in range(data.shape[1]):
        if np.unique(data[:, j]).size > 2:
            continue
        name = feature_names[j] if feature_names is not None and j < len(feature_names) else f"#{j}"
        groups.setdefault(name.split("=", 1)[0].split("__", 1)[0], []).append(j)
    return [np.asarray(columns) for columns in groups.values()]


def null_sample(sample: np.ndarray, seed: int, blocks: list[np.ndarray] | tuple = ()) -> np.ndarray:
    """Data of ``sample``'s shape without clusters: the null the stability is compared with.

    Continuous columns: a Gaussian with their mean and covariance (the gap statistic's
    principal-axes reference). Discrete ``blocks`` (:func:`discrete_blocks`): each keeps
    its own rows, shuffled independently of everything else, so a categorical column's
    categories and shares survive (a Gaussian cannot stand for them) while their
    association with the other columns, the thing a segment is, is gone.
    """
    rng = np.random.default_rng([seed, 104729])
    data = np.asarray(sample, np.float64)
    discrete = np.zeros(data.shape[1], bool)
    for block in blocks:
        discrete[block] = True
    out = np.empty_like(data)
    continuous = data[:, ~discrete]
    if continuous.shape[1]:
        mean = continuous.mean(axis=0)
        # principal axes via SVD: exact for singular covariances (constant columns, collinear ones)
        _, singular, vt = np.linalg.svd(continuous - mean, full_matrices=False)
        scale = singular / math.sqrt(max(data.shape[0] - 1, 1))
        z = rng.standard_normal((data.shape[0], scale.shape[0]))
        out[:, ~discrete] = mean + (z * scale) @ vt
    for block in blocks:
        out[:, block] = data[rng.permutation(data.shape[0])][:, block]
    return np.ascontiguousarray(out, dtype=np.float32)


_NULLS: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_NULLS_LOCK = threading.Lock()


def _shared_null_sample(sample: np.ndarray, seed: int, blocks) -> np.ndarray:
    """:func:`null_sample`, computed once for the models of a sweep (they share the sample object)."""
    key = (id(sample), sample.shape, seed, tuple(tuple(np.asarray(b).tolist()) for b in blocks))
    with _NULLS_LOCK:
        cached = _NULLS.get(key)
    if cached is not None and cached[0] is sample:  # the entry holds the sample: its id is not reused
        return cached[1]
    null = null_sample(sample, seed, blocks)
    with _NULLS_LOCK:
        _NULLS[key] = (sample, null)
        while len(_NULLS) > 2:
            _NULLS.popitem(last=False)
    return null


def null_skip_reason(stability: float | None, below: float = MIN_STABILITY) -> str | None:
    """Why the null's refits need not run for a model of this ``stability``, None when they must.

    :func:`reproducible` requires ``stability >= MIN_STABILITY`` (the value as the leaderboard
    stores it, rounded) whatever the null gives, so below it, or with no stability at all,
    the null cannot change the recommendation.
    """
    if stability is None:
        return "no refit on the data succeeded: not reproducible whatever the null gives, so its refits were not run"
    if _round(stability) < below:
        return f"stability {_round(stability)} < {below}: not reproducible whatever the null gives, so its refits were not run"
    return None


def measure_stability(template: Any, sample: np.ndarray, seed: int, pairs: int,
                      blocks: list[np.ndarray] | tuple = (), skip_null_below: float | None = MIN_STABILITY) -> dict:
    """``{"stability", "null_stability", "stability_excess", "null_stability_skipped"}`` of an unfitted
    estimator (None where undefined).

    ``blocks``: the sample's discrete column groups, kept discrete in the null (:func:`null_sample`).
    ``skip_null_below``: the null's refits run only when the stability reaches it; below it the
    model is not reproducible whatever the null gives (:func:`reproducible`), so
    ``null_stability`` and ``stability_excess`` are left missing and ``null_stability_skipped``
    says why (:func:`null_skip_reason`). None: the null is always measured. The values
    measured are the same either way (the data's refits come first, each refit has its own seed).
    """
    draws = _subsample_pairs(sample.shape[0], seed, pairs)
    stability = null = skipped = None
    if draws is not None:
        stability = _agreement(_pair_labels(template, sample, draws, seed))
        skipped = None if skip_null_below is None else null_skip_reason(stability, skip_null_below)
        if skipped is None:
            null = _agreement(_pair_labels(template, _shared_null_sample(sample, seed, blocks), draws, seed))
    excess = None if stability is None or null is None else stability - null
    return {"stability": _round(stability), "null_stability": _round(null), "stability_excess": _round(excess),
            "null_stability_skipped": skipped}


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

    ``wcnn``: the share of the rows' ``neighbours`` nearest neighbours that are in the row's
    own cluster; ``dunn_owa``: the near-neighbour Dunn index DuNN-OWA (a weighted mean of the
    shortest between-cluster neighbour distances, ``SMin:5``, over the longest within-cluster
    one, ``Max``). Computed on at most ``VALIDITY_ROWS`` rows, noise left out; None where
    undefined (a cluster with no more rows than ``neighbours``). The values are genieclust's
    ``wcnn_index`` and ``dunnowa_index``, from one neighbour graph that the models scored on
    the same rows share (:mod:`cluster_core.validity`).
    """
    from .validity import dunn_owa, neighbour_graph, wcnn

    keep = labels >= 0
    rows, labels = np.asarray(rows[keep], np.float64), labels[keep]
    if rows.shape[0] > VALIDITY_ROWS:
        pick = np.random.default_rng(0).choice(rows.shape[0], VALIDITY_ROWS, replace=False)
        rows, labels = rows[pick], labels[pick]
    _, labels = np.unique(labels, return_inverse=True)
    if labels.size == 0 or labels.max() < 1 or np.bincount(labels).min() <= neighbours:
        return {"wcnn": None, "dunn_owa": None}
    graph = neighbour_graph(rows, neighbours)
    return {"wcnn": _round(wcnn(graph, labels)), "dunn_owa": _round(dunn_owa(graph, labels))}


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


def own_choice(models: list[dict]) -> dict:
    """One algorithm variant's own choice among its reproducible models: the lowest BIC for
    mixtures (the likelihood criterion made for choosing their number of components), the
    highest silhouette otherwise."""
    if all(e.get("bic") is not None for e in models):
        return min(models, key=lambda e: e["bic"])
    return max(models, key=lambda e: e["silhouette"])


def _criterion(entry: dict) -> str:
    return f"BIC {entry['bic']:.1f}" if entry.get("bic") is not None else f"silhouette {entry['silhouette']:.3f}"


def recommend(entries: list[dict]) -> tuple[str | None, str]:
    """The recommended model id and the reason, from leaderboard entries.

    The rule (pre-registered, the same for every dataset; see docs/selection.md):

    1. Eligible: fitted, at least two clusters, at most ``MAX_NOISE`` of the rows noise.
    2. Reproducible: stability >= ``MIN_STABILITY`` (refits on two subsamples agree, ARI on
       the rows they share) and stability exceeds the same algorithm's stability on
       structureless data of the data's shape (:func:`null_sample`) by >= ``MIN_EXCESS``.
    3. Each algorithm variant chooses its k among its reproducible models by its own
       criterion (:func:`own_choice`: BIC for mixtures, silhouette otherwise).
    4. The variants' choices compete on stability: the most reproducible wins. Ties
       (stability saturates: often several choices at 1.0) go to the finer partition,
       more clusters found: equally reproducible, it holds the coarser split's
       structure and more (three planted behaviours were merged into two when the
       tie went to silhouette, which favours coarse splits); then the higher silhouette.
    5. When no model is reproducible: the highest silhouette, and the reason says so (and says
       when stability was not measured at all: ``stability: false``, ``--no-stability``).

    Evaluation columns (``--evaluate-against``) are never read.
    """
    candidates = [e for e in entries if eligible(e)]
    if not candidates:
        return None, "no model has two or more clusters with most rows assigned"
    stable = [e for e in candidates if reproducible(e)]
    if not stable:
        best = max(candidates, key=lambda e: e["silhouette"])
        if all(e.get("stability") is None and not e.get("null_stability_skipped") for e in candidates):
            return best["model_id"], (
                f"stability was not measured (no refits: turned off, or too few rows); highest silhouette "
                f"{best['silhouette']:.3f}, {_clusters(best)}"
            )
        return best["model_id"], (
            f"no model is reproducible (stability >= {MIN_STABILITY} and >= {MIN_EXCESS} above its null); "
            f"highest silhouette {best['silhouette']:.3f}, {_clusters(best)}"
        )
    by_variant: dict[str, list[dict]] = {}
    for entry in stable:
        by_variant.setdefault(entry.get("variant") or variant_of(entry), []).append(entry)
    choices = [own_choice(models) for models in by_variant.values()]
    best = max(choices, key=lambda e: (e["stability"], e["n_clusters_found"], e["silhouette"]))
    return best["model_id"], (
        f"the most stable of {len(choices)} algorithms' choices ({len(stable)} reproducible models): refits agree "
        f"ARI {best['stability']:.2f} vs {best['null_stability']:.2f} on structureless data of the same shape "
        f"(excess {best['stability_excess']:.2f}); {_clusters(best)}, chosen among its algorithm's reproducible "
        f"models by {_criterion(best)}"
    )


def selection_rule() -> str:
    """One line on how the recommendation is chosen (printed by the demo)."""
    return (
        f"models are reproducible when refits on two subsamples agree (stability >= {MIN_STABILITY}) at least "
        f"{MIN_EXCESS} more than on structureless data of the same shape; each algorithm picks its k among its "
        "reproducible models (BIC for mixtures, silhouette otherwise) and the most stable pick wins "
        "(ties: more clusters, then the higher silhouette); silhouette alone only when no model is reproducible"
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
