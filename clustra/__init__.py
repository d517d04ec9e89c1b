"""Clustra: find the natural segments of a table.

The Python API::

    import clustra

    run = clustra.train(frame, k=[2, 3, 4], seed=0)     # a DataFrame, a pyarrow Table or a Parquet path
    run.leaderboard                                      # pandas DataFrame, best first
    run.best.predict(frame)                              # numpy array of cluster ids
    run.save("runs/customers")
    model = clustra.load_model("runs/customers")         # a model or run directory
    model.transform(frame)                               # the columns `clustra apply` adds
    clustra.insights("runs/customers")                   # insights.json: profiles, observations, ...
    clustra.rename("runs/customers", cluster=0, name="FR visitors")
    clustra.report("runs/customers", "report.html")      # the self-contained HTML report
    clustra.train_series(sales, series_id="store", time="date", k=3)   # one row per series (docs/series.md)

and the scikit-learn estimators :class:`KMeans`, :class:`GaussianMixture`, :class:`HDBSCAN`.
Names load on first use, so ``import clustra`` (and the ``clustra`` command) start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from cluster_core import __version__

_EXPORTS = {
    "GaussianMixture": "cluster_core.algorithms",
    "HDBSCAN": "cluster_core.algorithms",
    "KMeans": "cluster_core.algorithms",
    "Model": "cluster_core.model",
    "Run": "clustra._api",
    "insights": "clustra._api",
    "load_model": "clustra._api",
    "rename": "clustra._api",
    "report": "clustra._api",
    "train": "clustra._api",
    "train_series": "clustra._api",
}
_RENAMED = {"Model": "ClusteringModel"}

__all__ = [
    "GaussianMixture", "HDBSCAN", "KMeans", "Model", "Run", "__version__", "insights", "load_model", "rename", "report",
    "train", "train_series",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), _RENAMED.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clustra' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
