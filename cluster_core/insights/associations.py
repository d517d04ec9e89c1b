"""Feature associations: normalized mutual information between the first 50 used columns.

Every column is discretized in its own way (quantile bins, top categories, k-means groups of
a text/image/geo block) so one statistic compares every pair of kinds; pairs above a
threshold are flagged redundant, and a hierarchical clustering orders related columns together.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._columns import ColumnView, boolean_values, clean, datetime_values, label_values, numeric_values

MAX_COLUMNS = 50
REDUNDANT = 0.8
QUANTILE_BINS = 10
TOP_VALUES = 20
BLOCK_GROUPS = 8


def _quantile_codes(values: np.ndarray) -> np.ndarray:
    codes = np.full(len(values), -1, np.int64)  # missing is its own value
    present = ~np.isnan(values)
    if present.any():
        edges = np.unique(np.quantile(values[present], np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]))
        codes[present] = np.searchsorted(edges, values[present], side="right")
    return codes


def _label_codes(labels: np.ndarray) -> np.ndarray:
    series = pd.Series(labels)
    top = series.value_counts().index[:TOP_VALUES]
    return pd.Index(top).get_indexer(series).astype(np.int64)  # others: -1


def _block_codes(block: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    distinct = len(np.unique(np.round(block, 6), axis=0))
    if distinct < 2:
        return np.zeros(len(block), np.int64)
    groups = min(BLOCK_GROUPS, distinct)
    return KMeans(groups, n_init=1, random_state=seed).fit_predict(block.astype(np.float64)).astype(np.int64)


def discretize(view: ColumnView, frame: pd.DataFrame, inputs: np.ndarray, seed: int = 0) -> np.ndarray:
    """Integer codes of one column on the rows of ``frame`` (``inputs``: their weighted blocks)."""
    if view.kind == "numeric":
        return _quantile_codes(numeric_values(frame, view.name))
    if view.kind == "boolean":
        values = boolean_values(frame, view.name)
        return np.where(np.isnan(values), -1, values).astype(np.int64)
    if view.kind == "datetime":
        stamps = datetime_values(frame, view.name)
        seconds = stamps.as_unit("s").asi8.astype(np.float64)
        seconds[np.asarray(stamps.isna())] = np.nan
        return _quantile_codes(seconds)
    if view.kind == "categorical":
        return _label_codes(label_values(frame, view.name))
    return _block_codes(inputs[:, view.block], seed)


class _Coded:
    """One column's codes as consecutive integers (``np.unique`` order) with their entropy."""

    def __init__(self, codes: np.ndarray):
        values, self.index = np.unique(np.asarray(codes), return_inverse=True)
        self.index = self.index.ravel()
        self.n_values = values.shape[0]
        self.entropy = _entropy(np.bincount(self.index, minlength=self.n_values))


def _entropy(counts: np.ndarray) -> float:
    """Entropy of a labelling from its value counts, computed as scikit-learn's ``_entropy`` does."""
    pi = counts.astype(np.float64)
    if pi.size == 1:
        return 0.0
    pi_sum = np.sum(pi)
    return float(-np.sum((pi / pi_sum) * (np.log(pi) - math.log(pi_sum))))


def _nmi(a: _Coded, b: _Coded) -> float:
    """``sklearn.metrics.normalized_mutual_info_score`` (arithmetic) of two columns with two or more values each.

    The same operations in the same order (a dense contingency table's non-zero cells come in
    the row-major order of scikit-learn's sparse one, and every count sum is exact), without
    the input validation and the per-call ``np.unique`` of both columns, which made the 1,225
    pairs of 50 columns take seconds.
    """
    table = np.bincount(a.index * b.n_values + b.index, minlength=a.n_values * b.n_values)
    contingency = table.reshape(a.n_values, b.n_values).astype(np.float64)
    nzx, nzy = np.nonzero(contingency)
    nz_val = contingency[nzx, nzy]
    contingency_sum = contingency.sum()
    pi, pj = contingency.sum(axis=1), contingency.sum(axis=0)
    log_contingency_nm = np.log(nz_val)
    contingency_nm = nz_val / contingency_sum
    outer = pi.take(nzx).astype(np.int64, copy=False) * pj.take(nzy).astype(np.int64, copy=False)
    log_outer = -np.log(outer) + math.log(pi.sum()) + math.log(pj.sum())
    mi = contingency_nm * (log_contingency_nm - math.log(contingency_sum)) + contingency_nm * log_outer
    mi = np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi)
    mi = float(np.clip(mi.sum(), 0.0, None))
    if mi == 0:
        return 0.0
    return float(mi / np.mean([a.entropy, b.entropy]))


def association_matrix(codes: list[np.ndarray]) -> np.ndarray:
    """Symmetric NMI matrix (arithmetic normalization, as scikit-learn's
    ``normalized_mutual_info_score``), 1 on the diagonal; 0 for a column with one value."""
    n = len(codes)
    matrix = np.eye(n)
    coded = [_Coded(c) for c in codes]
    for i in range(n):
        for j in range(i + 1, n):
            if coded[i].n_values < 2 or coded[j].n_values < 2:
                value = 0.0
            else:
                value = _nmi(coded[i], coded[j])
            matrix[i, j] = matrix[j, i] = value
    return matrix


def related_order(matrix: np.ndarray) -> list[int]:
    """Leaf order of an average-linkage clustering of ``1 - matrix`` (optimal leaf ordering)."""
    n = len(matrix)
    if n < 3:
        return list(range(n))
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    distance = np.clip(1.0 - matrix, 0.0, 1.0)
    np.fill_diagonal(distance, 0.0)
    condensed = squareform((distance + distance.T) / 2, checks=False)
    tree = linkage(condensed, method="average")
    return [int(i) for i in leaves_list(optimal_leaf_ordering(tree, condensed))]


def associations(views: list[ColumnView], frame: pd.DataFrame, inputs: np.ndarray, seed: int = 0) -> dict:
    """``{"columns", "order", "matrix", "method", "threshold", "redundant"}`` (docs/insights.md)."""
    views = views[:MAX_COLUMNS]
    codes = [discretize(v, frame, inputs, seed) for v in views]
    matrix = association_matrix(codes)
    names = [v.name for v in views]
    redundant = [
        {"a": names[i], "b": names[j], "value": clean(matrix[i, j], 4)}
        for i in range(len(names)) for j in range(i + 1, len(names)) if matrix[i, j] >= REDUNDANT
    ]
    return {
        "columns": names,
        "order": [names[i] for i in related_order(matrix)],
        "matrix": [[clean(v, 4) for v in row] for row in matrix],
        "method": "normalized mutual information",
        "threshold": REDUNDANT,
        "redundant": sorted(redundant, key=lambda r: -r["value"]),
    }
