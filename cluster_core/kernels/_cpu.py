"""CPU-only helpers compiled with numba (used only where torch's CPU kernels are slow).

The nearest-center search computes a (rows x k) matrix of scores ``-2 x.c`` with one
GEMM in the layout BLAS runs fastest (long dimension = rows, output row-major: about twice
the rate of the (k x rows) layout for the small inner dimensions of feature matrices); the
assignment is the minimum of each row after adding the centers' squared norms. A compiled
loop adds the norms and finds the minimum in one pass. The row scan does not vectorise,
so for many centers the (k x rows) layout wins despite its slower GEMM: scanning its k
rows one after another keeps the inner loop over contiguous columns, which vectorises
(:func:`column_argmin`). Without numba both fall back to numpy.
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


_compiled = numba.njit(nogil=True, cache=True)(_row_argmin_impl) if numba is not None else None
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
