"""Exact Lloyd iterations with Hamerly bounds, for in-memory data on the CPU.

The same iterations as :func:`cluster_core.algorithms.kmeans.lloyd` (same assignments, same
centers), with the rows whose bounds prove they keep their center skipped and the others
scored by a fused distance + top-two kernel: see :mod:`cluster_core.kernels._hamerly`. The per-row bounds (an upper
and a lower bound, 12 bytes per row with the label) stay with their block between
iterations, which is why this path is for in-memory blocks; Dask partitions and GPUs run
the plain blocked GEMM iterations.

Measured on 1M x 32 float32 rows (bench/kmeans_peers.py): on one structureless Gaussian
about half of the rows are candidates after ten iterations (a Yinyang variant with group
bounds, tried before, skipped barely more rows and scanned the rest one dot product at a
time, slower than scoring the candidates together); on data with clusters almost none are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ..blocks import ArrayBlocks, block_thread_rounds, sum_partials
from ..kernels import _hamerly

CHUNK_ROWS = 8192  # rows filtered per call; their gathered candidates (8192 x d float32) stay in cache
GAP_BLOCK = 1024  # centers per block when computing the distance to the nearest other center

UpdateCenters = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def available(blocks, device: str) -> bool:
    """Whether :func:`hamerly_lloyd` applies: in-memory blocks on the CPU."""
    return device == "cpu" and isinstance(blocks, ArrayBlocks)


class _Centers:
    """One iteration's centers as the kernels use them (shared, read-only, by the block threads)."""

    def __init__(self, centers: np.ndarray, shift: np.ndarray, moved: np.ndarray | None):
        self.centers = np.ascontiguousarray(centers, np.float32)
        shifted = self.centers - shift
        k, d = shifted.shape
        # scores -2 c.x + ||c||^2 for nearest_two, padded to whole center blocks with
        # centers that never win (zero weights, bias FAR)
        padded = -(-k // _hamerly.CENTER_BLOCK) * _hamerly.CENTER_BLOCK
        self.minus_two = np.zeros((padded, d), np.float32)
        self.minus_two[:k] = -2.0 * shifted
        self.bias = np.full(padded, _hamerly.FAR, np.float32)
        self.bias[:k] = np.einsum("ij,ij->i", shifted, shifted)
        drift = np.zeros(k) if moved is None else np.sqrt((moved**2).sum(axis=1))
        self.drift = drift.astype(np.float32)
        self.other_drift = _largest_other(drift).astype(np.float32)
        self.half_gap = (0.5 * _nearest_other_distance(self.centers)).astype(np.float32)


def _largest_other(values: np.ndarray) -> np.ndarray:
    """For every index, the largest value at any other index (0 when there is none)."""
    if values.size < 2:
        return np.zeros_like(values)
    top_two = np.argsort(-values, kind="stable")[:2]
    largest = np.full_like(values, values[top_two[0]])
    largest[top_two[0]] = values[top_two[1]]
    return largest


def _nearest_other_distance(centers: np.ndarray) -> np.ndarray:
    """Distance from every center to its nearest other center (float64, blocked; 0 for k = 1
    — a zero bound never lets a row skip on its account)."""
    k = centers.shape[0]
    if k < 2:
        return np.zeros(k)
    c = centers.astype(np.float64)
    sqnorm = (c * c).sum(axis=1)
    nearest = np.empty(k)
    for start in range(0, k, GAP_BLOCK):
        stop = min(k, start + GAP_BLOCK)
        sq = sqnorm[start:stop, None] - 2.0 * c[start:stop] @ c.T + sqnorm[None, :]
        sq[np.arange(stop - start), np.arange(start, stop)] = np.inf
        nearest[start:stop] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return nearest


class _BlockState:
    """One block's rows (label, upper and lower bound) and its reusable buffers."""

    def __init__(self, block: np.ndarray, n_clusters: int, shift: np.ndarray):
        self.block = np.ascontiguousarray(block, np.float32)
        self.shift = np.ascontiguousarray(shift, np.float32)  # the kernels load it as float32 vectors
        n, d = self.block.shape
        self.labels = np.zeros(n, np.int32)
        self.upper = np.zeros(n, np.float32)
        self.lower = np.zeros(n, np.float32)
        tiled = -(-CHUNK_ROWS // _hamerly.TILE_ROWS) * _hamerly.TILE_ROWS
        self._candidates = np.empty(CHUNK_ROWS, np.int64)
        self._gathered = np.empty(tiled * d, np.float32)
        self._sqnorm = np.empty(CHUNK_ROWS, np.float32)
        self._first = np.empty(tiled, np.float32)
        self._second = np.empty(tiled, np.float32)
        self._label = np.empty(tiled, np.int32)

    def step(self, prepared: _Centers, initial: bool = False):
        """One assignment; returns ``(counts, sums, candidates)``: with ``initial`` the
        block's counts and sums, else their changes, and how many rows were scored."""
        k, d = prepared.centers.shape
        counts = np.zeros(k, np.int64)
        sums = np.zeros((k, d), np.float64)
        n_candidates = 0
        n = self.block.shape[0]
        for start in range(0, n, CHUNK_ROWS):
            rows = slice(start, min(n, start + CHUNK_ROWS))
            x, labels, upper, lower = self.block[rows], self.labels[rows], self.upper[rows], self.lower[rows]
            found = _hamerly.filter_rows(
                x, self.shift, prepared.centers, labels, upper, lower, prepared.drift, prepared.other_drift,
                prepared.half_gap, initial, self._candidates, self._gathered, self._sqnorm,
            )
            n_candidates += found
            n_tiles = -(-found // _hamerly.TILE_ROWS)
            _hamerly.nearest_two(
                self._gathered, n_tiles, prepared.minus_two, prepared.bias, self._first, self._second, self._label
            )
            _hamerly.apply_candidates(
                x, self._candidates[:found], self._first, self._second, self._label, self._sqnorm,
                labels, upper, lower, counts, sums, initial,
            )
        return counts, sums, n_candidates

    def inertia(self, centers: np.ndarray) -> float:
        """Sum of squared distances of the block's rows to their assigned centers."""
        return float(_hamerly.own_sqdist(self.block, centers, self.labels))


def hamerly_lloyd(
    blocks: ArrayBlocks, centers: np.ndarray, max_iter: int, tol: float, update_centers: UpdateCenters
) -> tuple[np.ndarray, float, int, np.ndarray]:
    """Lloyd iterations from ``centers`` with Hamerly bounds; returns ``(centers, inertia,
    n_iter, labels)``, the labels and inertia measured against the returned centers.

    ``update_centers(centers, counts, sums)`` computes the next centers (and re-seeds empty
    clusters), as for :func:`~cluster_core.algorithms.kmeans.lloyd`; a re-seeded center's jump
    is a drift like any other, so the bounds stay valid. Stops after ``max_iter`` iterations
    or when the squared center shift is at most ``tol`` (with ``tol=0``: when no row changes
    center, the sums, and so the centers, stay bit for bit the same).
    """
    with block_thread_rounds() as run_rounds:
        return _iterate(blocks, np.ascontiguousarray(centers, np.float32), max_iter, tol, update_centers, run_rounds)


def _iterate(blocks, current, max_iter, tol, update_centers, run_rounds):
    """:func:`hamerly_lloyd`'s loop, with ``run_rounds`` running the blocks' calls."""
    shift = current.mean(axis=0)
    states = [_BlockState(view, current.shape[0], shift) for view in blocks.threaded_views()]
    prepared = _Centers(current, shift, None)
    counts, sums, _ = _combine(run_rounds([lambda s=s: s.step(prepared, initial=True) for s in states]))
    n_iter = 0
    while True:
        n_iter += 1
        updated = update_centers(current, counts, sums)
        moved = updated.astype(np.float64) - current
        shift_sq = float((moved**2).sum())
        current = updated
        prepared = _Centers(current, shift, moved)
        # the assignment to the new centers: the next iteration's, or the final labels
        counts_delta, sums_delta, _ = _combine(run_rounds([lambda s=s: s.step(prepared) for s in states]))
        counts, sums = counts + counts_delta, sums + sums_delta
        if shift_sq <= tol or n_iter >= max_iter:
            break
    inertia = sum(run_rounds([lambda s=s: s.inertia(prepared.centers) for s in states]))
    labels = np.concatenate([s.labels for s in states]).astype(np.int64)
    return current, float(inertia), n_iter, labels


def _combine(partials: list) -> tuple:
    """Element-wise sum of the blocks' partial results."""
    return functools.reduce(sum_partials, partials)
