"""Clustering estimators (scikit-learn contract, Dask-capable, pickle-free state)."""

from ._base import Assignment, ClusterEstimator
from .gmm import GaussianMixture
from .hdbscan import HDBSCAN
from .kmeans import KMeans

ESTIMATORS: dict[str, type[ClusterEstimator]] = {
    KMeans.algorithm: KMeans,
    GaussianMixture.algorithm: GaussianMixture,
    HDBSCAN.algorithm: HDBSCAN,
}


def estimator_from_state(state: dict) -> ClusterEstimator:
    """Rebuild any fitted estimator from its ``get_state()`` output."""
    cls = ESTIMATORS.get(state.get("algorithm"))
    if cls is None:
        raise ValueError(f"unknown algorithm {state.get('algorithm')!r} in saved state; expected one of {sorted(ESTIMATORS)}")
    return cls.from_state(state)


__all__ = ["ESTIMATORS", "Assignment", "ClusterEstimator", "GaussianMixture", "HDBSCAN", "KMeans", "estimator_from_state"]
