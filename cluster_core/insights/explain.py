"""Why this cluster: each original column's share of the margin between a record's cluster and
the runner-up. See docs/insights.md ("Why this cluster") for the three decompositions.

Everything is written in the pipeline's *input* feature space ``z`` (weighted blocks): with a
projection ``x = (z - m) Vᵀ`` (orthonormal rows ``V``) a model-space point ``μ`` lifts to
``m + μ V`` and a model-space direction ``d`` to ``d V``, so the decompositions stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._columns import column_views, weighted_blocks

PRIOR = "(cluster prior)"
TOP_CONTRIBUTIONS = 5


@dataclass
class Explanation:
    """Per row: its cluster, the runner-up (-1: none), the margin and per-column contributions."""

    labels: np.ndarray  # (n,)
    runner_up: np.ndarray  # (n,), -1 when the model has a single cluster
    margin: np.ndarray  # (n,), sum of contributions (+ prior)
    columns: list[str]
    contributions: np.ndarray  # (n, n_columns)
    prior: np.ndarray | None  # (n,) GMM only
    kind: str  # "distance" | "log_posterior" | "nearest_member"


class _Space:
    """Lifting between the model's feature space and the input feature space."""

    def __init__(self, pipeline):
        projection = pipeline.projection_
        self.mean = None if projection is None else np.asarray(projection["mean"], np.float64)
        self.components = None if projection is None else np.asarray(projection["components"], np.float64)

    def to_model(self, z: np.ndarray) -> np.ndarray:
        return z if self.components is None else (z - self.mean) @ self.components.T

    def direction(self, d: np.ndarray) -> np.ndarray:
        return d if self.components is None else d @ self.components

    def point(self, mu: np.ndarray) -> np.ndarray:
        return mu if self.components is None else self.mean + mu @ self.components


def _group(per_feature: np.ndarray, views) -> np.ndarray:
    return np.stack([per_feature[:, v.block].sum(axis=1) for v in views], axis=1) if views else np.zeros((len(per_feature), 0))


def _linear_margin(space: _Space, z: np.ndarray, a_points: np.ndarray, r_points: np.ndarray) -> np.ndarray:
    """Per input feature: ``‖x−r‖² − ‖x−a‖² = Σ (a−r)(2x−a−r)``, lifted to ``z``."""
    direction = space.direction(a_points - r_points)
    middle = space.point((a_points + r_points) / 2)
    return 2.0 * direction * (z - middle)


def _runner_up(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The best-scoring cluster other than the assigned one (-1 with a single cluster)."""
    if scores.shape[1] < 2:
        return np.full(len(scores), -1)
    others = scores.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return others.argmax(axis=1)


def _explain_kmeans(estimator, space, z, x, labels):
    centers = np.asarray(estimator.cluster_centers_, np.float64)
    sq = (x**2).sum(axis=1)[:, None] - 2 * x @ centers.T + (centers**2).sum(axis=1)[None]
    runner = _runner_up(-sq, labels)
    if centers.shape[0] < 2:
        return labels, runner, np.zeros_like(z), None, "distance"
    return labels, runner, _linear_margin(space, z, centers[labels], centers[runner]), None, "distance"


def _precision(estimator) -> tuple[list[np.ndarray], np.ndarray]:
    """Per component: the precision matrix Λ and log|Λ|."""
    chol = np.asarray(estimator.precisions_cholesky_, np.float64)
    if estimator.covariance_type == "diag":
        return [np.diag(c**2) for c in chol], 2.0 * np.log(chol).sum(axis=1)
    return [c @ c.T for c in chol], np.array([2.0 * np.log(np.diag(c)).sum() for c in chol])


def _bernoulli_terms(estimator, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, column and component: the discrete columns' log-likelihood terms (n, m, k)
    (Bernoulli, or a one-hot block's categorical; :class:`~cluster_core.kernels.gmm.TwoValued`), and the columns."""
    from ..kernels.gmm import emission_logs, unit_two_valued

    columns = np.asarray(getattr(estimator, "discrete_features_", np.zeros(0)), np.int64)
    if not len(columns):
        return np.zeros((len(x), 0, len(estimator.weights_))), columns
    u = unit_two_valued(x, columns, estimator.discrete_low_, estimator.discrete_scale_)
    log_one, log_zero = emission_logs(estimator.bernoulli_, estimator.discrete_groups_)  # (k, m) each
    return u[:, :, None] * log_one.T[None] + (1 - u)[:, :, None] * log_zero.T[None], columns


def _explain_gmm(estimator, space, z, x, labels):
    bernoulli, discrete = _bernoulli_terms(estimator, x)
    if len(discrete) and space.components is not None:
        raise ValueError("a mixture with two-valued columns was fitted on projected features")
    continuous = np.setdiff1d(np.arange(x.shape[1]), discrete)
    means = np.asarray(estimator.means_, np.float64)[:, continuous]
    xc = x[:, continuous]
    log_weights = np.log(np.asarray(estimator.weights_, np.float64))
    precisions, log_det = _precision(estimator)
    k = means.shape[0]
    quadratic = np.empty((len(x), k))
    for c in range(k):
        y = xc - means[c]
        quadratic[:, c] = np.einsum("ij,jk,ik->i", y, precisions[c], y)
    log_post = log_weights + 0.5 * log_det - 0.5 * quadratic + bernoulli.sum(axis=1)
    runner = _runner_up(log_post, labels)
    if k < 2:
        return labels, runner, np.zeros_like(z), np.zeros(len(z)), "log_posterior"

    def split(cluster_of_row: np.ndarray) -> np.ndarray:
        out = np.zeros_like(z)
        for c in np.unique(cluster_of_row):
            rows = cluster_of_row == c
            y = xc[rows] - means[c]
            if len(discrete):  # the identity space (checked above): continuous columns only
                out[np.ix_(rows, continuous)] = y * (y @ precisions[c])
            else:
                out[rows] = (z[rows] - space.point(means[c])) * space.direction(y @ precisions[c])
        return out

    contributions = 0.5 * (split(runner) - split(labels))
    if len(discrete):
        rows = np.arange(len(x))
        contributions[:, discrete] = bernoulli[rows, :, labels] - bernoulli[rows, :, runner]
    prior = log_weights[labels] - log_weights[runner] + 0.5 * (log_det[labels] - log_det[runner])
    return labels, runner, contributions, prior, "log_posterior"


def _fit_labels(estimator) -> np.ndarray:
    cached = getattr(estimator, "_explain_fit_labels", None)
    if cached is None:
        cached = np.asarray(estimator.assign(estimator.fit_data_).labels, np.int64)
        estimator._explain_fit_labels = cached
    return cached


def _explain_nearest_member(estimator, space, z, x, labels):
    points = np.asarray(estimator.fit_data_, np.float64)
    point_labels = _fit_labels(estimator)
    clustered = point_labels >= 0
    runner = np.full(len(x), -1)
    per_feature = np.zeros_like(z)
    if not clustered.any():
        return runner, per_feature
    pool, pool_labels = points[clustered], point_labels[clustered]
    pool_sq = (pool**2).sum(axis=1)
    for start in range(0, len(x), 1024):
        rows = slice(start, start + 1024)
        sq = (x[rows] ** 2).sum(axis=1)[:, None] - 2 * x[rows] @ pool.T + pool_sq[None]
        own = labels[rows]
        same = pool_labels[None, :] == own[:, None]
        nearest_own = np.where(same, sq, np.inf).argmin(axis=1)
        nearest_other = np.where(~same, sq, np.inf).argmin(axis=1)
        has_other = np.isfinite(np.where(~same, sq, np.inf).min(axis=1))
        runner[rows] = np.where(has_other, pool_labels[nearest_other], -1)
        member = own >= 0
        a = pool[nearest_own]
        r = pool[nearest_other]
        block = np.where(member[:, None] & has_other[:, None], _linear_margin(space, z[rows], a, r), 0.0)
        noise = ~member
        if noise.any():  # against the nearest cluster member: each column's share of the distance, negated
            y = x[rows][noise] - r[noise]
            block[noise] = -(z[rows][noise] - space.point(r[noise])) * space.direction(y)
        per_feature[rows] = block
    return runner, per_feature


def explain_frame(model, frame: pd.DataFrame) -> Explanation:
    """Per-column contributions to every row's assignment (docs/insights.md, "Why this cluster").

    Labels are the model's own (:meth:`ClusteringModel.assign`); the contributions of a row
    sum to its ``margin`` (with ``prior`` for mixtures).
    """
    pipeline, estimator = model.pipeline, model.estimator
    views = column_views(pipeline)
    space = _Space(pipeline)
    z = weighted_blocks(pipeline, frame)
    x = space.to_model(z)
    labels = np.asarray(model.assign(frame).labels, np.int64)
    prior = None
    if hasattr(estimator, "cluster_centers_"):
        _, runner, per_feature, prior, kind = _explain_kmeans(estimator, space, z, x, labels)
    elif hasattr(estimator, "means_") and hasattr(estimator, "precisions_cholesky_"):
        _, runner, per_feature, prior, kind = _explain_gmm(estimator, space, z, x, labels)
    elif hasattr(estimator, "fit_data_"):
        runner, per_feature = _explain_nearest_member(estimator, space, z, x, labels)
        kind = "nearest_member"
    else:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"algorithm {model.algorithm!r} has no explanation (kmeans, gmm and hdbscan do)", field="explain")
    contributions = _group(per_feature, views)
    margin = contributions.sum(axis=1) + (prior if prior is not None else 0.0)
    return Explanation(labels, np.asarray(runner, np.int64), margin, [v.name for v in views], contributions, prior, kind)


def explanation_records(explanation: Explanation, top: int = TOP_CONTRIBUTIONS) -> list[dict]:
    """Per row ``{"runner_up", "margin", "explanation": [{"column", "contribution"}, ...]}`` (largest |value| first)."""
    out = []
    names = explanation.columns + ([PRIOR] if explanation.prior is not None else [])
    for i in range(len(explanation.labels)):
        values = list(explanation.contributions[i])
        if explanation.prior is not None:
            values.append(explanation.prior[i])
        order = sorted(range(len(values)), key=lambda j: -abs(values[j]))[:top]
        runner = int(explanation.runner_up[i])
        out.append({
            "runner_up": runner if runner >= 0 else None,
            "margin": round(float(explanation.margin[i]), 6),
            "explanation": [{"column": names[j], "contribution": round(float(values[j]), 6)} for j in order],
        })
    return out
