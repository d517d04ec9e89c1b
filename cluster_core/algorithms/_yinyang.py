"""Exact Lloyd iterations with Yinyang bounds, for in-memory data on the CPU.

The same iterations as :func:`cluster_core.algorithms.kmeans.lloyd` (same assignments, same
centers), with most distance computations skipped once the centers move little: see
:mod:`cluster_core.kernels._bounds`. The per-row bounds (one upper bound, one lower bound
per center group) stay with their block between iterations, which is why this path is for
in-memory blocks; Dask partitions and GPUs run the plain blocked GEMM iterations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..blocks import ArrayBlocks, run_threaded, sum_partials
from ..kernels import _bounds
from ..kernels._torch import chunk_rows, matmul
from ..kernels.kmeans import kmeans_plusplus

MIN_CLUSTERS = 128  # below this the filtered steps rarely beat a GEMM pass on structureless data (measured at k = 64)
WIDTH = _bounds.GROUP_WIDTH


BOUNDS_MIN_BYTES = 256 << 20  # the bounds may always take this much memory, else at most twice the data


def available(blocks, device: str, n_clusters: int) -> bool:
    """Whether :func:`yinyang_lloyd` applies: in-memory blocks on the CPU, at least
    MIN_CLUSTERS clusters, and (rows x groups) float32 bounds that take no more than twice
    the data's size or BOUNDS_MIN_BYTES."""
    if not (device == "cpu" and isinstance(blocks, ArrayBlocks) and n_clusters >= MIN_CLUSTERS):
        return False
    n_rows = blocks.count_rows()
    bounds_bytes = n_rows * 4 * (2 + -(-n_clusters // WIDTH))  # + upper bound and ||x||^2
    return bounds_bytes <= max(2 * n_rows * blocks.n_features * 4, BOUNDS_MIN_BYTES)


def center_columns(centers: np.ndarray, seed: int = 0) -> np.ndarray:
    """Column of every center in the padded group layout: ``ceil(k / WIDTH)`` groups of at most
    WIDTH nearby centers (a k-means clustering of the initial centers, as in the paper, filled
    greedily nearest-first so that no group outgrows its WIDTH columns); group ``g`` owns the
    columns ``g * WIDTH`` to ``(g + 1) * WIDTH``."""
    k = centers.shape[0]
    n_groups = -(-k // WIDTH)
    if n_groups == 1:
        return np.arange(k)
    from .kmeans import lloyd  # the plain iterations, on the k centers themselves

    rng = np.random.default_rng(seed)
    seeds = kmeans_plusplus(centers, n_groups, rng, "cpu")
    group_centers = lloyd(ArrayBlocks(centers), seeds, 5, 0.0, "cpu", final_inertia=False)[0]
    sqdist = (centers**2).sum(axis=1)[:, None] - 2.0 * centers @ group_centers.T + (group_centers**2).sum(axis=1)
    filled = np.zeros(n_groups, np.int64)
    columns = np.full(k, -1, np.int64)
    unplaced = k
    for flat in np.argsort(sqdist, axis=None, kind="stable"):
        center, group = divmod(int(flat), n_groups)
        if columns[center] < 0 and filled[group] < WIDTH:
            columns[center] = group * WIDTH + filled[group]
            filled[group] += 1
            unplaced -= 1
            if unplaced == 0:
                break
    return columns


@dataclass
class _BlockBounds:
    """One block's rows: assigned column, upper bound, lower bound per group."""

    block: np.ndarray
    shift: np.ndarray  # fixed for the run: the initial centers' mean
    x_sqnorm: np.ndarray = field(init=False)
    labels: np.ndarray = field(init=False)
    upper: np.ndarray = field(init=False)
    lower: np.ndarray = field(init=False)

    def first_assignment(self, layout: "_Layout"):
        """Full assignment (blocked GEMM) that sets every bound; returns ``(counts, sums)``."""
        n, width = self.block.shape[0], layout.centers.shape[0]
        self.labels = np.empty(n, np.int64)
        self.upper = np.empty(n, np.float32)
        self.lower = np.empty((n, width // WIDTH), np.float32)
        self.x_sqnorm = np.empty(n, np.float32)
        shift = torch.from_numpy(self.shift)
        minus_two = torch.from_numpy(layout.minus_two).T
        step = chunk_rows(n, width)
        for start in range(0, n, step):
            rows = slice(start, start + step)
            x = torch.from_numpy(self.block[rows]) - shift
            scores = matmul(x, minus_two).numpy()
            self.x_sqnorm[rows] = (x * x).sum(dim=1).numpy()
            _bounds.bounds_from_scores(
                scores, layout.sqnorm, self.x_sqnorm[rows], self.labels[rows], self.upper[rows], self.lower[rows]
            )
        counts = np.zeros(width, np.int64)
        sums = np.zeros((width, self.block.shape[1]), np.float64)
        _bounds.accumulate(self.block, self.labels, counts, sums)
        return counts, sums

    def step(self, layout: "_Layout", drift: np.ndarray, group_drift: np.ndarray):
        """One filtered assignment; returns the changes ``(counts_delta, sums_delta)`` and
        how many center groups were scanned."""
        counts = np.zeros(layout.centers.shape[0], np.int64)
        sums = np.zeros(layout.centers.shape, np.float64)
        scans = _bounds.bounded_step(
            self.block, self.x_sqnorm, self.shift, layout.centers, layout.minus_two, layout.sqnorm,
            drift, group_drift, self.labels, self.upper, self.lower, counts, sums,
        )
        return counts, sums, int(scans)


@dataclass
class _Layout:
    """Centers in the padded group layout (padding: zero coordinates, FAR squared norm)."""

    centers: np.ndarray  # (columns, features), data coordinates
    minus_two: np.ndarray  # (columns, features): -2 (centers - shift)
    sqnorm: np.ndarray  # (columns,): ||centers - shift||^2

    @classmethod
    def build(cls, centers: np.ndarray, columns: np.ndarray, shift: np.ndarray) -> "_Layout":
        width = -(-(int(columns.max()) + 1) // WIDTH) * WIDTH
        padded = np.zeros((width, centers.shape[1]), np.float32)
        padded[columns] = centers
        shifted = np.zeros_like(padded)
        shifted[columns] = centers - shift
        sqnorm = np.full(width, _bounds.FAR, np.float32)
        sqnorm[columns] = np.einsum("ij,ij->i", shifted[columns], shifted[columns])
        return cls(padded, np.ascontiguousarray(-2.0 * shifted, np.float32), sqnorm)


UpdateCenters = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def pays_off(scanned_fraction: float, n_clusters: int) -> bool:
    """Whether filtered steps that scan this fraction of the centers beat plain passes.

    Calibrated on 1M x 32 float32 rows (AMD EPYC, bench/kmeans_peers.py and blobs): per row
    a plain pass costs about 1.8 ns per center (BLAS GEMM + argmin scan), a filtered step
    roughly 60 ns of bookkeeping plus 4 ns per scanned center (dot products in numba), which
    puts the break-even near ``f = 0.45 - 16 / k``.
    """
    return scanned_fraction < 0.45 - 16.0 / n_clusters


SETTLING_STEPS = 4  # the first steps scan much while the centers still move a lot: not judged
GIVE_UP_AFTER = 2  # consecutive steps that do not pay off before switching to plain passes


def yinyang_lloyd(
    blocks: ArrayBlocks, centers: np.ndarray, max_iter: int, tol: float, update_centers: UpdateCenters
) -> tuple[np.ndarray, int, bool]:
    """Lloyd iterations from ``centers`` with Yinyang filtering; returns ``(centers, n_iter, done)``.

    ``update_centers(centers, counts, sums)`` computes the next centers (and re-seeds empty
    clusters), as for :func:`~cluster_core.algorithms.kmeans.lloyd`. ``done`` is False when
    the bounds stopped paying off (structureless data: the nearest centers stay close
    together, see :func:`pays_off`) and the caller should go on with plain passes from the
    returned centers for the remaining ``max_iter - n_iter`` iterations.
    """
    current = np.ascontiguousarray(centers, np.float32)
    columns = center_columns(current)
    shift = current.mean(axis=0)
    layout = _Layout.build(current, columns, shift)
    states = [_BlockBounds(np.ascontiguousarray(view, np.float32), shift) for view in blocks.threaded_views()]
    counts, sums = _combine(run_threaded([lambda s=s: s.first_assignment(layout) for s in states]))
    n_iter, n_rows, unprofitable = 1, blocks.count_rows(), 0
    while True:
        updated = update_centers(current, counts[columns], sums[columns])
        moved = updated.astype(np.float64) - current
        shift_sq = float((moved**2).sum())
        current = updated
        if shift_sq <= tol or n_iter >= max_iter:
            return current, n_iter, True
        if unprofitable >= GIVE_UP_AFTER:
            return current, n_iter, False
        layout = _Layout.build(current, columns, shift)
        drift = np.zeros(layout.centers.shape[0], np.float32)
        drift[columns] = np.sqrt((moved**2).sum(axis=1))
        group_drift = drift.reshape(-1, WIDTH).max(axis=1)
        partials = run_threaded([lambda s=s: s.step(layout, drift, group_drift) for s in states])
        counts_delta, sums_delta, scans = _combine(partials)
        counts, sums = counts + counts_delta, sums + sums_delta
        n_iter += 1
        scanned = scans * WIDTH / (n_rows * layout.centers.shape[0])
        if n_iter > SETTLING_STEPS:
            unprofitable = 0 if pays_off(scanned, current.shape[0]) else unprofitable + 1


def _combine(partials: list) -> tuple:
    """Element-wise sum of the blocks' partial results."""
    return functools.reduce(sum_partials, partials)
