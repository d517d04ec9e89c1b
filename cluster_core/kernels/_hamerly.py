"""Hamerly bound kernels for exact Lloyd iterations on the CPU (compiled with numba).

Hamerly, "Making k-means even faster" (SDM 2010). Every row keeps an upper bound on the
distance to its center and one lower bound on the distance to every other center. When the
centers move by ``drift``, the upper bound grows by its center's drift and the lower bound
shrinks by the largest drift of the other centers. A row keeps its center without any
distance computation when its upper bound is at most ``max(lower bound, half the distance
from its center to the nearest other center)``; otherwise the exact distance to its center
tightens the upper bound and the test is repeated.

The rows that still fail (the *candidates*) are not scanned one by one: :func:`filter_rows`
copies them, shifted, into a buffer of row tiles (``TILE_ROWS`` rows, stored dimension by
dimension), and :func:`nearest_two` scores whole tiles against all centers with explicit
SIMD vectors (:mod:`._simd`): a 4-center x ``TILE_ROWS``-row block of scores stays in
registers while it accumulates over the dimensions, then updates each row's nearest and
second nearest center, so no score matrix is written. A candidate's new bounds are those two
distances, exact. So a step costs a distance computation over the candidates only, plus a
pass of a few operations per row; the assignment is the one a full Lloyd pass gives (bounds
only skip work). Only rows that change center update the per-cluster sums.

The bounds are Euclidean distances (not squared): the triangle inequality applies to them.
"""

from __future__ import annotations

import numba
import numpy as np

from ._simd import LANES, fma, load, splat, store, store_strided, subtract, top_two_update

FAR = np.float32(3.0e38)  # larger than any distance; finite, so fast-math comparisons stay exact
# fast-math without the no-NaN / no-Inf assumptions: lets numba vectorise the sums
FAST_MATH = {"reassoc", "contract", "arcp", "nsz", "afn"}
TILE_ROWS = 4 * LANES  # rows per tile: four vectors
CENTER_BLOCK = 4  # centers scored together; the centers are padded to a multiple of it


def _filter_rows_impl(
    x, shift, centers, labels, upper, lower, drift, other_drift, half_gap, everything, candidates, gathered, sqnorm
):  # pragma: no cover - compiled
    """Update the bounds of every row of ``x`` for the centers' ``drift`` and collect the
    rows whose center may have changed (all rows when ``everything``): their indices go to
    ``candidates``, the rows less ``shift`` to the tiles of ``gathered`` (flat; candidate
    ``r``'s value ``q`` at ``(r // TILE_ROWS) * d * TILE_ROWS + q * TILE_ROWS + r % TILE_ROWS``,
    the last tile padded with zeros) and their squared norms to ``sqnorm`` (all three sized
    for ``len(x)`` rows). ``other_drift[j]`` is the largest drift of the centers other than
    ``j``, ``half_gap[j]`` half the distance from center ``j`` to its nearest other center.
    ``x`` and ``shift`` are C-contiguous. Returns the number of candidates."""
    n, d = x.shape
    found = 0
    for i in range(n):
        own = labels[i]
        bound = upper[i] + drift[own]
        low = lower[i] - other_drift[own]
        lower[i] = low
        limit = max(low, half_gap[own])
        if bound <= limit and not everything:
            upper[i] = bound
            continue
        # from here on without branches (whether the exact distance clears the row is a
        # coin flip on data without clusters): the row is written to the next free slot
        # and the slot is kept only if the row is a candidate
        row = x[i]
        total = np.float32(0.0)
        for q in range(d):
            diff = row[q] - centers[own, q]
            total += diff * diff
        bound = np.sqrt(total)
        upper[i] = bound
        candidates[found] = i
        start = (found // TILE_ROWS) * d * TILE_ROWS + found % TILE_ROWS
        total = np.float32(0.0)
        for q in range(d):
            value = row[q] - shift[q]
            total += value * value
        sqnorm[found] = total
        q = 0
        while q + LANES <= d:
            store_strided(gathered, start + q * TILE_ROWS, TILE_ROWS, subtract(load(row, q), load(shift, q)))
            q += LANES
        for rest in range(q, d):
            gathered[start + rest * TILE_ROWS] = row[rest] - shift[rest]
        found += 1 if everything or bound > limit else 0
    for pad in range(found, -(-found // TILE_ROWS) * TILE_ROWS):
        start = (pad // TILE_ROWS) * d * TILE_ROWS + pad % TILE_ROWS
        for q in range(d):
            gathered[start + q * TILE_ROWS] = np.float32(0.0)
    return found


def _top_two_rows_impl(v0, v1, v2, v3, first, second, label, j):  # pragma: no cover - compiled
    """:func:`._simd.top_two_update` of a tile's four row vectors with center ``j``'s scores
    ``v0..v3``; ``first``, ``second``, ``label``: four vectors each."""
    index = splat(j)
    f0, s0, l0 = top_two_update(v0, first[0], second[0], label[0], index)
    f1, s1, l1 = top_two_update(v1, first[1], second[1], label[1], index)
    f2, s2, l2 = top_two_update(v2, first[2], second[2], label[2], index)
    f3, s3, l3 = top_two_update(v3, first[3], second[3], label[3], index)
    return (f0, f1, f2, f3), (s0, s1, s2, s3), (l0, l1, l2, l3)


def _store_rows_impl(array, row, vectors):  # pragma: no cover - compiled
    """Write a tile's four row vectors to ``array[row:row + TILE_ROWS]``."""
    for part in numba.literal_unroll(range(4)):
        store(array, row + part * LANES, vectors[part])


def _nearest_two_impl(tiles, n_tiles, minus_two, bias, first, second, label):  # pragma: no cover - compiled
    """For every row of the first ``n_tiles`` tiles of ``tiles`` (laid out as
    :func:`filter_rows` writes them), the smallest and second smallest score
    ``bias[j] + minus_two[j] . row`` over the centers ``j`` (``-2 c . x + ||c||^2``: the
    squared distance less ``||x||^2``) and the smallest one's index (the first wins ties).
    ``minus_two`` has a multiple of ``CENTER_BLOCK`` rows (padding rows: zeros, bias ``FAR``)."""
    k, d = minus_two.shape
    for t in range(n_tiles):
        base = t * d * TILE_ROWS
        far, zero = splat(FAR), splat(0)
        # each row's nearest and second-nearest score and nearest index, four vectors each
        first_four, second_four, label_four = (far, far, far, far), (far, far, far, far), (zero, zero, zero, zero)
        for j in range(0, k, CENTER_BLOCK):
            # a<center><vector>: 16 accumulators, registers for the whole dimension loop
            a00 = splat(bias[j])
            a01, a02, a03 = a00, a00, a00
            a10 = splat(bias[j + 1])
            a11, a12, a13 = a10, a10, a10
            a20 = splat(bias[j + 2])
            a21, a22, a23 = a20, a20, a20
            a30 = splat(bias[j + 3])
            a31, a32, a33 = a30, a30, a30
            for q in range(d):
                at = base + q * TILE_ROWS
                x0 = load(tiles, at)
                x1 = load(tiles, at + LANES)
                x2 = load(tiles, at + 2 * LANES)
                x3 = load(tiles, at + 3 * LANES)
                c = splat(minus_two[j, q])
                a00, a01, a02, a03 = fma(c, x0, a00), fma(c, x1, a01), fma(c, x2, a02), fma(c, x3, a03)
                c = splat(minus_two[j + 1, q])
                a10, a11, a12, a13 = fma(c, x0, a10), fma(c, x1, a11), fma(c, x2, a12), fma(c, x3, a13)
                c = splat(minus_two[j + 2, q])
                a20, a21, a22, a23 = fma(c, x0, a20), fma(c, x1, a21), fma(c, x2, a22), fma(c, x3, a23)
                c = splat(minus_two[j + 3, q])
                a30, a31, a32, a33 = fma(c, x0, a30), fma(c, x1, a31), fma(c, x2, a32), fma(c, x3, a33)
            first_four, second_four, label_four = _top_two_rows(a00, a01, a02, a03, first_four, second_four, label_four, j)
            first_four, second_four, label_four = _top_two_rows(a10, a11, a12, a13, first_four, second_four, label_four, j + 1)
            first_four, second_four, label_four = _top_two_rows(a20, a21, a22, a23, first_four, second_four, label_four, j + 2)
            first_four, second_four, label_four = _top_two_rows(a30, a31, a32, a33, first_four, second_four, label_four, j + 3)
        row = t * TILE_ROWS
        _store_rows(first, row, first_four)
        _store_rows(second, row, second_four)
        _store_rows(label, row, label_four)


def _apply_candidates_impl(
    x, candidates, first, second, label, sqnorm, labels, upper, lower, counts, sums, initial
):  # pragma: no cover - compiled
    """Give each candidate (``candidates[r]`` is a row of ``x``) its nearest center
    ``label[r]`` and exact bounds from the two smallest scores (squared distance less
    ``sqnorm[r] = ||x - shift||^2``). Rows that change center move from one cluster's
    ``counts`` and ``sums`` to the other's; with ``initial`` every candidate is added (its
    previous label is meaningless)."""
    d = x.shape[1]
    for r in range(candidates.shape[0]):
        i = candidates[r]
        new = label[r]
        upper[i] = np.sqrt(max(first[r] + sqnorm[r], np.float32(0.0)))
        lower[i] = np.sqrt(max(second[r] + sqnorm[r], np.float32(0.0))) if second[r] < FAR else FAR
        old = labels[i]
        if initial:
            counts[new] += 1
            for q in range(d):
                sums[new, q] += x[i, q]
            labels[i] = new
        elif new != old:
            counts[old] -= 1
            counts[new] += 1
            for q in range(d):
                value = np.float64(x[i, q])
                sums[old, q] -= value
                sums[new, q] += value
            labels[i] = new


def _own_sqdist_impl(x, centers, labels):  # pragma: no cover - compiled
    """Sum over rows of the squared distance to the assigned center, computed in float64."""
    n, d = x.shape
    total = 0.0
    for i in range(n):
        own = labels[i]
        for q in range(d):
            diff = np.float64(x[i, q]) - np.float64(centers[own, q])
            total += diff * diff
    return total


_jit = numba.njit(nogil=True, cache=True, fastmath=FAST_MATH)
_inline = numba.njit(inline="always", cache=True)
_top_two_rows = _inline(_top_two_rows_impl)
_store_rows = _inline(_store_rows_impl)
filter_rows = _jit(_filter_rows_impl)
nearest_two = _jit(_nearest_two_impl)
apply_candidates = _jit(_apply_candidates_impl)
own_sqdist = _jit(_own_sqdist_impl)
