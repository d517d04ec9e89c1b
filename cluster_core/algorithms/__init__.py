"""Clustering estimators (scikit-learn contract, Dask-capable, pickle-free state) and their registry.

Importing this package is cheap: it loads the registry (:mod:`._registry`, no torch, no
scikit-learn) and registers the built-ins, so :mod:`cluster_core.config` can check
algorithm names before anything heavy is imported (the CLI parses its arguments first).
The estimator classes are imported on first access (a module ``__getattr__``, PEP 562):
``from cluster_core.algorithms import KMeans`` works as always and only then imports
:mod:`.kmeans` with torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _builtins  # noqa: F401  (registers kmeans, gmm, gmm-diag, hdbscan, genie)
from ._registry import (
    AlgorithmSpec,
    algorithm_names,
    algorithms_with_metric,
    check_algorithms,
    check_metric_support,
    estimator_from_state,
    get_algorithm,
    load_plugins,
    register_algorithm,
)

_LAZY = {
    "Assignment": "._base",
    "ClusterEstimator": "._base",
    "GaussianMixture": ".gmm",
    "Genie": ".genie",
    "HDBSCAN": ".hdbscan",
    "KMeans": ".kmeans",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AlgorithmSpec",
    "Assignment",
    "ClusterEstimator",
    "GaussianMixture",
    "Genie",
    "HDBSCAN",
    "KMeans",
    "algorithm_names",
    "algorithms_with_metric",
    "check_algorithms",
    "check_metric_support",
    "estimator_from_state",
    "get_algorithm",
    "load_plugins",
    "register_algorithm",
]
