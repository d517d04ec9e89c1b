"""Hamerly bound kernels for exact Lloyd iterations on the CPU (compiled with numba).

Hamerly, "Making k-means even faster" (SDM 2010). Every row keeps an upper bound on the
distance to its center and one lower bound on the distance to every other center. When the
centers move by ``drift``, the upper bound grows by its center's drift and the lower bound
shrinks by the largest drift of the other centers. A row keeps its center without any
distance computation when its upper bound is at most ``max(lower bound, half the distance
from its center to the nearest other center)``; otherwise the exact distance to its center
tightens the upper bound and the test is repeated.

The rows that still fail (the *candidates*) are not scanned one by one: :func:`filter_rows`
copies them, shifted, into a buffer, a BLAS GEMM scores the buffer against all centers in
the (centers x rows) layout, and :func:`top_two` finds each column's nearest and second
nearest center with loops that vectorise across rows. A candidate's new bounds are those
two distances, exact. So a step costs a GEMM over the candidates only, plus a pass of a
few operations per row; the assignment is the one a full Lloyd pass gives (bounds only
skip work). Only rows that change center update the per-cluster sums.

The bounds are Euclidean distances (not squared): the triangle inequality applies to them.
"""

from __future__ import annotations

import numba
import numpy as np

FAR = np.float32(3.0e38)  # larger than any distance; finite, so fast-math comparisons stay exact
# fast-math without the no-NaN / no-Inf assumptions: lets numba vectorise the sums
FAST_MATH = {"reassoc", "contract", "arcp", "nsz", "afn"}


def _filter_rows_impl(
    x, shift, centers, labels, upper, lower, drift, other_drift, half_gap, everything, candidates, gathered, sqnorm
):  # pragma: no cover - compiled
    """Update the bounds of every row of ``x`` for the centers' ``drift`` and collect the
    rows whose center may have changed (all rows when ``everything``): their indices go to
    ``candidates``, the rows less ``shift`` to ``gathered`` and their squared norms to
    ``sqnorm``. ``other_drift[j]`` is the largest drift of the centers other than ``j``,
    ``half_gap[j]`` half the distance from center ``j`` to its nearest other center.
    Returns the number of candidates."""
    n, d = x.shape
    found = 0
    for i in range(n):
        if not everything:
            own = labels[i]
            bound = upper[i] + drift[own]
            low = lower[i] - other_drift[own]
            lower[i] = low
            limit = max(low, half_gap[own])
            if bound <= limit:
                upper[i] = bound
                continue
            total = np.float32(0.0)
            for q in range(d):
                diff = x[i, q] - centers[own, q]
                total += diff * diff
            bound = np.sqrt(total)
            upper[i] = bound
            if bound <= limit:
                continue
        candidates[found] = i
        total = np.float32(0.0)
        for q in range(d):
            value = x[i, q] - shift[q]
            gathered[found, q] = value
            total += value * value
        sqnorm[found] = total
        found += 1
    return found


def _top_two_impl(scores, bias, first, second, label):  # pragma: no cover - compiled
    """Smallest and second smallest of every column of ``scores + bias[:, None]`` ((centers x
    rows) scores, one bias per center) and the smallest one's row index (the first wins ties)."""
    k, m = scores.shape
    for i in range(m):
        first[i] = FAR
        second[i] = FAR
        label[i] = 0
    for j in range(k):
        offset = bias[j]
        for i in range(m):
            value = scores[j, i] + offset
            smaller = value < first[i]
            second[i] = first[i] if smaller else min(second[i], value)
            first[i] = value if smaller else first[i]
            label[i] = j if smaller else label[i]


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
filter_rows = _jit(_filter_rows_impl)
top_two = _jit(_top_two_impl)
apply_candidates = _jit(_apply_candidates_impl)
own_sqdist = _jit(_own_sqdist_impl)
