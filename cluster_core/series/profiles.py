"""Per-cluster typical shape and spread of its series (``series_profiles.json``, docs/series.md)."""

from __future__ import annotations

import numpy as np


def cluster_profiles(shapes: np.ndarray, labels: np.ndarray, value_columns: list[str], names: dict[int, str] | None = None,
                     ) -> dict:
    """The mean z-normalized shape of each cluster and its spread, per value column.

    Parameters
    ----------
    shapes : ndarray of shape (n_series, length, n_values)
        Every series z-normalized and resampled to ``length`` points (position 0 = its first
        timestamp, ``length - 1`` = its last).
    labels : ndarray of shape (n_series,)
        Cluster ids (-1 = noise, profiled as its own group).
    value_columns : list of str
    names : dict, optional
        Cluster id -> name.

    Returns
    -------
    dict
        ``{"length", "position": "fraction of each series' span", "clusters": [{"cluster_id",
        "cluster_name", "n_series", "values": {COLUMN: {"mean", "std", "p10", "p50", "p90"}}}]}``,
        each statistic a list of ``length`` numbers (data for a line with a band).
    """
    clusters = []
    for cluster in np.unique(labels):
        members = shapes[labels == cluster]
        values = {}
        for c, column in enumerate(value_columns):
            block = members[:, :, c]
            p10, p50, p90 = np.percentile(block, [10, 50, 90], axis=0)
            values[column] = {"mean": _rounded(block.mean(axis=0)), "std": _rounded(block.std(axis=0)),
                              "p10": _rounded(p10), "p50": _rounded(p50), "p90": _rounded(p90)}
        clusters.append({
            "cluster_id": int(cluster),
            "cluster_name": (names or {}).get(int(cluster)) if cluster >= 0 else None,
            "n_series": int(members.shape[0]),
            "values": values,
        })
    return {"length": int(shapes.shape[1]), "position": "fraction of each series' span, 0 = first timestamp, 1 = last",
            "scale": "z-normalized (each series minus its mean, over its standard deviation)", "clusters": clusters}


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]


__all__ = ["cluster_profiles"]
