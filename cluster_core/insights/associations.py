"""Feature associations: normalized mutual information between the first 50 used columns.

Every column is discretized in its own way (quantile bins, top categories, k-means groups of
a text/image/geo block) so one statistic compares every pair of kinds; pairs above a
threshold are flagged redundant, and a hierarchical clustering orders related columns together.
"""

from __future__ import annotations

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


def association_matrix(codes: list[np.ndarray]) -> np.ndarray:
    """Symmetric NMI matrix (arithmetic normalization), 1 on the diagonal."""
    from sklearn.metrics import normalized_mutual_info_score

    n = len(codes)
    matrix = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            if len(np.unique(codes[i])) < 2 or len(np.unique(codes[j])) < 2:
                value = 0.0
            else:
                value = float(normalized_mutual_info_score(codes[i], codes[j]))
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
