"""KMeans kernels: nearest-centroid assignment, Lloyd partial sums, k-means++ seeding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._torch import chunk_rows, to_numpy, to_tensor

FAR_POINTS = 16  # candidates per block for re-seeding empty clusters


def _nearest(x: torch.Tensor, centers: torch.Tensor, center_sqnorms: torch.Tensor):
    """Labels and squared distances of ``x`` rows to their nearest center."""
    # argmin over ||c||^2 - 2 x.c ; the ||x||^2 term is added back for the distance only.
    partial = torch.addmm(center_sqnorms.unsqueeze(0), x, centers.T, beta=1.0, alpha=-2.0)
    best, labels = partial.min(dim=1)
    sqdist = (best + (x * x).sum(dim=1)).clamp_(min=0.0)
    return labels, sqdist


def assign_nearest(block: Any, centers: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Nearest center of every row.

    Parameters
    ----------
    block : array of shape (n_samples, n_features)
    centers : ndarray of shape (n_clusters, n_features)
    device : {"cpu", "cuda"}

    Returns
    -------
    labels : ndarray of shape (n_samples,), int64
    sqdist : ndarray of shape (n_samples,), float32 — squared Euclidean distance.
    """
    x_all = to_tensor(block, device)
    c = to_tensor(centers, device)
    c_sq = (c * c).sum(dim=1)
    step = chunk_rows(x_all.shape[0], c.shape[0])
    labels, sqdist = [], []
    for start in range(0, x_all.shape[0], step):
        lab, dist = _nearest(x_all[start : start + step], c, c_sq)
        labels.append(lab)
        sqdist.append(dist)
    if not labels:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return to_numpy(torch.cat(labels)).astype(np.int64), to_numpy(torch.cat(sqdist))


def lloyd_partial_sums(block: Any, centers: np.ndarray, device: str = "cpu"):
    """One block's share of a Lloyd iteration.

    Returns
    -------
    tuple
        ``(counts[k] int64, sums[k, d] float64, inertia float, far)`` where ``far`` is
        ``(sqdist[m], rows[m, d])``, the block's ``m <= FAR_POINTS`` rows farthest from
        their centers (used to re-seed empty clusters).
    """
    x_all = to_tensor(block, device)
    c = to_tensor(centers, device)
    k, d = c.shape
    c_sq = (c * c).sum(dim=1)
    counts = torch.zeros(k, dtype=torch.int64, device=device)
    sums = torch.zeros(k, d, dtype=torch.float64, device=device)
    inertia = torch.zeros((), dtype=torch.float64, device=device)
    far_d, far_x = [], []
    step = chunk_rows(x_all.shape[0], k)
    for start in range(0, x_all.shape[0], step):
        x = x_all[start : start + step]
        labels, sqdist = _nearest(x, c, c_sq)
        counts += torch.bincount(labels, minlength=k)
        sums += torch.zeros(k, d, dtype=x.dtype, device=device).index_add_(0, labels, x).double()
        inertia += sqdist.double().sum()
        top = torch.topk(sqdist, min(FAR_POINTS, sqdist.shape[0]))
        far_d.append(top.values)
        far_x.append(x[top.indices])
    far = _top_far(far_d, far_x, d)
    return to_numpy(counts), to_numpy(sums), float(inertia), far


def _top_far(dists: list, rows: list, d: int):
    if not dists:
        return np.empty(0, np.float32), np.empty((0, d), np.float32)
    dist = torch.cat(dists)
    top = torch.topk(dist, min(FAR_POINTS, dist.shape[0]))
    return to_numpy(top.values), to_numpy(torch.cat(rows)[top.indices])


def combine_lloyd(a, b):
    """Combine two :func:`lloyd_partial_sums` results (sums add, far points keep the top)."""
    far_d = np.concatenate([a[3][0], b[3][0]])
    far_x = np.concatenate([a[3][1], b[3][1]])
    keep = np.argsort(-far_d, kind="stable")[:FAR_POINTS]
    return a[0] + b[0], a[1] + b[1], a[2] + b[2], (far_d[keep], far_x[keep])


def column_moments(block: Any, device: str = "cpu"):
    """``(n, sum[d], sum_sq[d])`` of a block in float64 (for variances and tolerances)."""
    x = to_tensor(block, device, dtype=torch.float64)
    return int(x.shape[0]), to_numpy(x.sum(dim=0)), to_numpy((x * x).sum(dim=0))


def kmeans_plusplus(
    data: Any, n_clusters: int, rng: np.random.Generator, device: str = "cpu", n_local_trials: int | None = None
) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; the variant scikit-learn uses).

    Each new center is the best of ``2 + log(k)`` candidates drawn with probability
    proportional to the squared distance to the nearest chosen center.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float32
    """
    x = to_tensor(data, device)
    n = x.shape[0]
    if n_clusters > n:
        raise ValueError(f"n_samples={n} should be >= n_clusters={n_clusters}.")
    trials = n_local_trials or 2 + int(math.log(n_clusters))
    x_sq = (x * x).sum(dim=1)
    chosen = [int(rng.integers(n))]
    closest = _sqdist_to(x, x_sq, chosen)[0]
    potential = float(closest.double().sum())
    for _ in range(1, n_clusters):
        if potential <= 0.0:  # every point coincides with a center: pick any unused row
            candidates = [int(rng.integers(n))]
        else:
            cumulative = torch.cumsum(closest.double(), 0)
            draws = torch.as_tensor(rng.random(trials) * potential, dtype=torch.float64, device=device)
            candidates = torch.searchsorted(cumulative, draws).clamp_(max=n - 1).tolist()
        candidate_dist = torch.minimum(closest.unsqueeze(0), _sqdist_to(x, x_sq, candidates))
        potentials = candidate_dist.double().sum(dim=1)
        best = int(torch.argmin(potentials))
        chosen.append(candidates[best])
        closest = candidate_dist[best]
        potential = float(potentials[best])
    return to_numpy(x[chosen]).astype(np.float32)


def _sqdist_to(x: torch.Tensor, x_sq: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Squared distances from every row of ``x`` to the rows ``rows`` of ``x``: shape (len(rows), n)."""
    c = x[rows]
    dist = torch.addmm(x_sq.unsqueeze(0), c, x.T, beta=1.0, alpha=-2.0)
    dist += x_sq[rows].unsqueeze(1)
    return dist.clamp_(min=0.0)
