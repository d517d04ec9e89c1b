"""Gagolewski's nearest-neighbour cluster validity indices from one neighbour graph per sample.

WCNN and DuNN-OWA (Gagolewski, Bartoszuk, Cena, "Are cluster validity measures (in)valid?",
Information Sciences 581, 2021) read only the ``M`` nearest neighbours of every row: which
rows (WCNN) and how far (DuNN-OWA). The graph depends on the rows, not on the labelling, and
every model of a sweep is scored on the same stability sample, so it is built once
(:func:`neighbour_graph`, remembered by the rows' contents) instead of twice per model, as
genieclust's ``wcnn_index`` and ``dunnowa_index`` each do.

The values equal genieclust's bit for bit (``tests/test_validity.py`` compares them on
continuous data and on data full of ties): Euclidean distances are summed feature by
feature in float64 and square-rooted, and a row's neighbours are the ``M`` closest with
ties going to the lower row index; DuNN-OWA orders all graph edges by distance, ties in
row-major order.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numba
import numpy as np

from .kernels.neighbors import array_digest

# 1 / sqrt(2 pi), as the published index defines its Gaussian weights
_REC_SQRT_2_PI = 0.3989422804014326779399460599343818684758586311649346576659258296


def _graph_impl(x, m):  # pragma: no cover - compiled
    n, d = x.shape
    dist = np.full((n, m), np.inf)
    ind = np.full((n, m), n, np.int64)
    for i in range(n - 1):
        for j in range(i + 1, n):
            total = 0.0
            for t in range(d):
                diff = x[i, t] - x[j, t]
                total += diff * diff
            dij = math.sqrt(total)
            for side in range(2):
                row, other = (i, j) if side == 0 else (j, i)
                if dij < dist[row, m - 1]:  # strictly closer: among equals the lower index stays
                    slot = m - 1
                    while slot > 0 and dij < dist[row, slot - 1]:
                        dist[row, slot] = dist[row, slot - 1]
                        ind[row, slot] = ind[row, slot - 1]
                        slot -= 1
                    dist[row, slot] = dij
                    ind[row, slot] = other
    return dist, ind


# no fast-math: the sums must run in the order written (the values are compared bit for bit)
_graph = numba.njit(nogil=True, cache=True)(_graph_impl)

_GRAPHS: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_GRAPHS_LOCK = threading.Lock()
_GRAPHS_KEPT = 4


def neighbour_graph(rows: np.ndarray, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, indices)``, each of shape (n_rows, neighbours): every row's nearest other rows,
    closest first (Euclidean; ties to the lower index).

    Remembered by the rows' contents (the last few samples), so the models of a sweep share
    one graph; built under a lock, so two models starting together build it once.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    if not 0 < neighbours < rows.shape[0]:
        raise ValueError(f"neighbours={neighbours} should be >= 1 and < the {rows.shape[0]} rows")
    key = array_digest(rows) + repr(neighbours).encode()
    with _GRAPHS_LOCK:
        graph = _GRAPHS.get(key)
        if graph is None:
            graph = _graph(rows, neighbours)
            _GRAPHS[key] = graph
            while len(_GRAPHS) > _GRAPHS_KEPT:
                _GRAPHS.popitem(last=False)
        return graph


def wcnn(graph: tuple[np.ndarray, np.ndarray], labels: np.ndarray) -> float:
    """Within-cluster near neighbours: the share of all rows' graph neighbours in the row's own cluster."""
    _, indices = graph
    same = labels[indices] == labels[:, None]
    return int(same.sum()) / float(indices.size)


def dunn_owa(graph: tuple[np.ndarray, np.ndarray], labels: np.ndarray, smallest: int = 5) -> float:
    """DuNN-OWA with the ``SMin:smallest`` numerator and the ``Max`` denominator.

    Numerator: a Gaussian-weighted mean (weights ``N(u; 1, smallest)`` for the u-th) of the
    ``3 * smallest`` shortest graph edges between clusters; denominator: the longest edge
    within a cluster. ``inf`` without an edge between clusters, ``-inf`` without one within.
    """
    distances, indices = graph
    same = (labels[indices] == labels[:, None]).ravel()
    order = np.argsort(distances.ravel(), kind="stable")
    ordered, within = distances.ravel()[order], same[order]
    between = ordered[~within][: 3 * smallest].tolist()
    if not between:
        return math.inf
    weights = weighted = 0.0
    for u, value in enumerate(between):  # summed in this order, as the index is defined
        step = (u + 1.0 - 1.0) / smallest
        weight = _REC_SQRT_2_PI * math.exp(-0.5 * (step * step)) / smallest
        weights += weight
        weighted += weight * value
    inside = ordered[within]
    if inside.size == 0:
        return -math.inf
    with np.errstate(divide="ignore", invalid="ignore"):  # every within-cluster edge of length 0: inf (or nan), as in C
        return float(np.float64(weighted / weights) / inside[-1])


__all__ = ["dunn_owa", "neighbour_graph", "wcnn"]
