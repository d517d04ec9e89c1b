"""A plugin algorithm for the tests: farthest-first k-centers, registered as ``kcenters``.

Put this directory on ``PYTHONPATH`` and name the module in ``CLUSTRA_PLUGINS``; Clustra
imports it on its first registry lookup, in the CLI, the jobs API, serving and the Dask
workers alike (tests/test_plugin_cli.py).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from cluster_core.algorithms import Assignment, ClusterEstimator, register_algorithm
from cluster_core.algorithms._base import seed_from


class KCenters(ClusterEstimator):
    """Gonzalez's farthest-first traversal: every new center is the row farthest from the
    centers chosen so far (a 2-approximation of the k-center problem); rows go to the nearest center.

    Parameters
    ----------
    n_clusters : int, default=8
    max_fit_samples : int, default=20,000
        Centers are chosen among a uniform sample of at most this many rows.
    random_state : int, optional
        Picks the sample and the first center.
    """

    algorithm = "kcenters"
    _fitted_attribute = "cluster_centers_"
    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "max_fit_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters=8, *, max_fit_samples=20_000, random_state=None):
        self.n_clusters = n_clusters
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state

    def fit(self, X, y=None):
        """Choose the centers on (a sample of) ``X``."""
        self._validate_params()
        blocks, array = self._fit_blocks(X)
        n_rows = blocks.count_rows()
        if n_rows < self.n_clusters:
            raise ValueError(f"n_samples={n_rows} should be >= n_clusters={self.n_clusters}.")
        seed = seed_from(self.random_state)
        sample = np.asarray(blocks.sample_rows(min(n_rows, self.max_fit_samples), seed), np.float64)
        chosen = [int(np.random.default_rng(seed).integers(sample.shape[0]))]
        nearest = ((sample - sample[chosen[0]]) ** 2).sum(axis=1)
        for _ in range(1, self.n_clusters):
            chosen.append(int(nearest.argmax()))
            nearest = np.minimum(nearest, ((sample - sample[chosen[-1]]) ** 2).sum(axis=1))
        self.cluster_centers_ = sample[chosen]
        self.n_clusters_ = int(self.n_clusters)
        if array is not None:
            self.labels_ = self.predict(array)
        return self

    def transform(self, X) -> np.ndarray:
        """Euclidean distance of every row to every center, shape (n_samples, n_clusters)."""
        array = self._check_input(X).astype(np.float64)
        return np.sqrt(((array[:, None, :] - self.cluster_centers_[None, :, :]) ** 2).sum(axis=2))

    def assign(self, X) -> Assignment:
        """Nearest center and the distance to it."""
        distances = self.transform(X)
        labels = distances.argmin(axis=1).astype(np.int64)
        return Assignment(labels, None, distances[np.arange(labels.shape[0]), labels])

    def _fitted_state(self) -> dict:
        return {"cluster_centers_": self.cluster_centers_}

    def _load_fitted_state(self, state: dict) -> None:
        self.cluster_centers_ = np.asarray(state["cluster_centers_"], np.float64)
        self.n_clusters_ = int(self.cluster_centers_.shape[0])


@register_algorithm("kcenters", estimator=KCenters, needs_k=True, distances=True, description="farthest-first k-centers (test plugin)")
def build_kcenters(config, n_clusters: int | None, device: str) -> KCenters:
    """The sweep's ``kcenters`` model with ``n_clusters`` centers."""
    return KCenters(n_clusters, random_state=config.seed)
