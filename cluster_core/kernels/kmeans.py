"""KMeans kernels: nearest-centroid assignment, Lloyd partial sums, k-means++ seeding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..blocks import threaded_blocks
from ._torch import chunk_rows, column_min, matmul, row_min, to_numpy, to_tensor

FAR_POINTS = 16  # candidates for re-seeding empty clusters
ROW_LAYOUT_MAX_K = 128  # up to this many centers the scores are (rows x k), else (k x rows)


class _Centers:
    """Centers prepared for the score GEMM, in coordinates shifted by their mean.

    Scores ``||c||^2 - 2 c.x`` cancel catastrophically in float32 when the data sit far
    from the origin (norms ~1e12 for coordinates ~1e6); shifting data and centers by the
    centers' mean (or a given ``shift`` near them) keeps them small without changing any distance.
    """

    def __init__(self, centers: Any, device: str, dtype=torch.float32, shift: Any = None):
        c = to_tensor(centers, device, dtype)
        self.shift = c.mean(dim=0) if shift is None else to_tensor(shift, device, dtype)
        shifted = c - self.shift
        self.k, self.d = c.shape
        self.sqnorms = (shifted * shifted).sum(dim=1)
        # Few centers: (rows x k) scores, the GEMM layout BLAS runs fastest. Many: (k x rows),
        # whose column-wise minimum vectorises (see kernels._cpu).
        self.rows_layout = self.k <= ROW_LAYOUT_MAX_K
        minus_two = -2.0 * shifted
        self.minus_two = (minus_two.T if self.rows_layout else minus_two).contiguous()

    def best(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(min score, label, shifted x)`` of every row: the score ``||c||^2 - 2 c.x`` is
        the squared distance less ``||x||^2``."""
        x = x - self.shift
        if self.rows_layout:
            best, labels = row_min(matmul(x, self.minus_two), self.sqnorms)
        else:
            scores = matmul(self.minus_two, x.T)
            scores += self.sqnorms.unsqueeze(1)
            best, labels = column_min(scores)
        return best, labels, x

    def nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and squared distances of ``x`` rows to their nearest center."""
        best, labels, shifted = self.best(x)
        return labels, (best + (shifted * shifted).sum(dim=1)).clamp_(min=0.0)


@threaded_blocks
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
    prepared = _Centers(centers, device)
    step = chunk_rows(x_all.shape[0], prepared.k)
    labels, sqdist = [], []
    for start in range(0, x_all.shape[0], step):
        lab, dist = prepared.nearest(x_all[start : start + step])
        labels.append(lab)
        sqdist.append(dist)
    if not labels:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return to_numpy(torch.cat(labels)).astype(np.int64), to_numpy(torch.cat(sqdist))


@threaded_blocks
def lloyd_partial_sums(block: Any, centers: np.ndarray, device: str = "cpu", shift: np.ndarray | None = None):
    """One block's share of a Lloyd iteration.

    ``shift`` (default: the centers' mean) is subtracted from rows and centers before the
    GEMM. Lloyd passes one fixed shift for the whole run, so an unchanged assignment gives
    bit-identical sums and the centers stop moving exactly (strict convergence).

    Returns
    -------
    tuple
        ``(counts[k] int64, sums[k, d] float64, inertia float)``. The inertia is
        ``sum(min score) + ||X - shift||^2`` (one dot product per chunk, no per-row norms).
    """
    x_all = to_tensor(block, device)
    prepared = _Centers(centers, device, shift=shift)
    k, d = prepared.k, prepared.d
    counts = torch.zeros(k, dtype=torch.int64, device=device)
    sums = torch.zeros(k, d, dtype=torch.float64, device=device)
    inertia = torch.zeros((), dtype=torch.float64, device=device)
    step = chunk_rows(x_all.shape[0], k)
    for start in range(0, x_all.shape[0], step):
        x = x_all[start : start + step]
        best, labels, shifted = prepared.best(x)
        counts += torch.bincount(labels, minlength=k)
        sums += torch.zeros(k, d, dtype=x.dtype, device=device).index_add_(0, labels, shifted).double()
        flat = shifted.reshape(-1)
        inertia += best.double().sum() + torch.dot(flat, flat).double()
    sums += counts.unsqueeze(1).double() * prepared.shift.double()  # back to data coordinates
    return to_numpy(counts), to_numpy(sums), float(inertia)


@threaded_blocks
def farthest_points(block: Any, centers: np.ndarray, device: str = "cpu"):
    """``(sqdist[m], rows[m, d])``: the block's ``m <= FAR_POINTS`` rows farthest from their centers."""
    _, sqdist = assign_nearest(block, centers, device)
    order = np.argsort(-sqdist, kind="stable")[:FAR_POINTS]
    return sqdist[order], np.asarray(block)[order]


def combine_far(a, b):
    """Keep the FAR_POINTS farthest of two :func:`farthest_points` results."""
    dist = np.concatenate([a[0], b[0]])
    rows = np.concatenate([a[1], b[1]])
    keep = np.argsort(-dist, kind="stable")[:FAR_POINTS]
    return dist[keep], rows[keep]


@threaded_blocks
def column_moments(block: Any, device: str = "cpu"):
    """``(n, sum[d], sum_sq[d])`` of a block, accumulated in float64 (for variances and tolerances)."""
    x_all = to_tensor(block, device)
    d = x_all.shape[1]
    sums = torch.zeros(d, dtype=torch.float64, device=device)
    squares = torch.zeros(d, dtype=torch.float64, device=device)
    step = chunk_rows(x_all.shape[0], d)
    for start in range(0, x_all.shape[0], step):
        x = x_all[start : start + step]
        sums += x.sum(dim=0).double()
        squares += (x * x).sum(dim=0).double()
    return int(x_all.shape[0]), to_numpy(sums), to_numpy(squares)


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
    raw = to_tensor(data, device)
    x = raw - raw.mean(dim=0)  # small norms: no cancellation in ||x||^2 - 2 x.c + ||c||^2
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
    return to_numpy(raw[chosen]).astype(np.float32)


def _sqdist_to(x: torch.Tensor, x_sq: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Squared distances from every row of ``x`` to the rows ``rows`` of ``x``: shape (len(rows), n)."""
    c = x[rows]
    dist = torch.addmm(x_sq.unsqueeze(0), c, x.T, beta=1.0, alpha=-2.0)
    dist += x_sq[rows].unsqueeze(1)
    return dist.clamp_(min=0.0)
