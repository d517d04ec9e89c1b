"""CPU-only helpers compiled with numba (used only where torch's CPU kernels are slow).

The nearest-center search computes a (rows x k) matrix of scores ``-2 x.c`` with one
GEMM in the layout BLAS runs fastest (long dimension = rows, output row-major: about twice
the rate of the (k x rows) layout for the small inner dimensions of feature matrices); the
assignment is the minimum of each row after adding the centers' squared norms. A compiled
loop adds the norms and finds the minimum in one pass. The row scan does not vectorise,
so for many centers the (k x rows) layout wins despite its slower GEMM: scanning its k
rows one after another keeps the inner loop over contiguous columns, which vectorises
(:func:`column_argmin`). Without numba both fall back to numpy.

The silhouette's per-cluster distance sums (:func:`add_segment_sums`) take a tile of squared
distances whose columns are rows in label order and add each run of one label's columns up,
after the square root (or the cosine distance's affine map), in one pass over the tile.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a runtime dependency; the fallback keeps a broken install usable
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None


def _row_argmin_impl(scores, bias, best, labels):  # pragma: no cover - compiled
    n, k = scores.shape
    for i in range(n):
        low = scores[i, 0] + bias[0]
        label = 0
        for j in range(1, k):
            value = scores[i, j] + bias[j]
            if value < low:
                low = value
                label = j
        best[i] = low
        labels[i] = label


def _column_argmin_impl(scores, best, labels):  # pragma: no cover - compiled
    k, n = scores.shape
    for i in range(n):
        best[i] = scores[0, i]
        labels[i] = 0
    for j in range(1, k):
        for i in range(n):
            value = scores[j, i]
            smaller = value < best[i]
            best[i] = value if smaller else best[i]
            labels[i] = j if smaller else labels[i]


def _segment_sums_impl(squared, starts, clusters, out, half_queries, half_rows, cosine):  # pragma: no cover - compiled
    zero, one, two, half = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(0.5)
    for i in range(squared.shape[0]):
        row = squared[i]
        for s in range(clusters.shape[0]):
            total = zero
            if cosine:
                offset = one - half_queries[i]
                for j in range(starts[s], starts[s + 1]):
                    total += min(max(half * row[j] + offset - half_rows[j], zero), two)
            else:
                for j in range(starts[s], starts[s + 1]):
                    total += np.sqrt(max(row[j], zero))
            out[i, clusters[s]] += total


# fast-math without the no-NaN / no-Inf assumptions (as the Hamerly kernels): lets the sums vectorise
_SUM_MATH = {"reassoc", "contract", "arcp", "nsz", "afn"}
_compiled = numba.njit(nogil=True, cache=True)(_row_argmin_impl) if numba is not None else None
_compiled_segments = numba.njit(nogil=True, cache=True, fastmath=_SUM_MATH)(_segment_sums_impl) if numba is not None else None
_compiled_columns = numba.njit(nogil=True, cache=True)(_column_argmin_impl) if numba is not None else None


def row_argmin(scores: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(min, argmin)`` of every row of ``scores + bias`` (C-contiguous 2-D ``scores``,
    ``bias`` of one value per column; the first index wins ties)."""
    n, k = scores.shape
    if _compiled is None or k == 0:
        shifted = scores + bias
        labels = shifted.argmin(axis=1) if k else np.zeros(n, np.int64)
        return (shifted[np.arange(n), labels] if k else np.zeros(n, scores.dtype)), labels
    best = np.empty(n, dtype=scores.dtype)
    labels = np.empty(n, dtype=np.int64)
    _compiled(np.ascontiguousarray(scores), np.ascontiguousarray(bias, dtype=scores.dtype), best, labels)
    return best, labels


def column_argmin(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(min, argmin)`` of every column of a C-contiguous 2-D array (first index wins ties)."""
    n = scores.shape[1]
    if _compiled_columns is None or scores.shape[0] == 0:
        labels = scores.argmin(axis=0)
        return scores[labels, np.arange(n)], labels
    best = np.empty(n, dtype=scores.dtype)
    labels = np.empty(n, dtype=np.int64)
    _compiled_columns(np.ascontiguousarray(scores), best, labels)
    return best, labels


def add_segment_sums(squared: np.ndarray, starts: np.ndarray, clusters: np.ndarray, out: np.ndarray,
                     half_queries: np.ndarray | None = None, half_rows: np.ndarray | None = None) -> None:
    """``out[i, clusters[s]] += sum of f(squared[i, j])`` over ``starts[s] <= j < starts[s + 1]``, in place.

    ``squared`` (float32, C-contiguous): squared Euclidean distances of queries (rows) to rows in
    label order (columns), rounding may leave them slightly negative; ``starts``: the
    boundaries of each run of one label, ``clusters`` its label. ``f`` is the distance,
    ``sqrt(max(v, 0))``; with ``half_queries`` and ``half_rows`` (half the squared norms of the
    queries and the rows, unit rows or zeros) it is the cosine distance ``1 - x.y`` =
    ``v / 2 + 1 - |x|^2 / 2 - |y|^2 / 2``, clipped to [0, 2]. Each run is summed in float32
    (vectorised lanes), added to ``out`` (float64).
    """
    cosine = half_queries is not None
    if _compiled_segments is not None:
        empty = np.zeros(0, np.float32)
        _compiled_segments(np.ascontiguousarray(squared, np.float32), np.asarray(starts, np.int64),
                           np.asarray(clusters, np.int64), out,
                           half_queries if cosine else empty, half_rows if cosine else empty, cosine)
        return
    values = (np.clip(0.5 * squared + 1.0 - half_queries[:, None] - half_rows[None, :], 0.0, 2.0) if cosine
              else np.sqrt(np.maximum(squared, 0.0)))
    if len(clusters):
        out[:, clusters] += np.add.reduceat(values, starts[:-1], axis=1)
