"""The built-in algorithms, registered like any plugin (see :mod:`._registry`).

Each factory imports its estimator module when called, so registering costs nothing.
``config`` is a :class:`cluster_core.config.TrainConfig` (typed Any: config imports this
package to check algorithm names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._registry import register_algorithm

if TYPE_CHECKING:
    from ._base import ClusterEstimator


@register_algorithm(
    "kmeans", estimator="cluster_core.algorithms.kmeans:KMeans", needs_k=True, distances=True, distributed=True,
    gpu_engine="torch", metrics=("euclidean", "cosine"), description="k-means: k-means++ seeding, Lloyd/Hamerly iterations (cuML for in-memory GPU data)",
)
def build_kmeans(config: Any, n_clusters: int | None, device: str) -> ClusterEstimator:
    """:class:`~cluster_core.algorithms.KMeans` with the sweep's cluster count and restarts."""
    from .kmeans import KMeans

    return KMeans(n_clusters, n_init=config.kmeans_n_init, max_iter=config.max_iter, random_state=config.seed, device=device,
                  metric=config.metric)


def _gaussian_mixture(config: Any, n_clusters: int | None, device: str, covariance_type: str) -> ClusterEstimator:
    from .gmm import GaussianMixture

    return GaussianMixture(
        n_clusters,
        covariance_type=covariance_type,
        n_init=config.gmm_n_init,
        reg_covar=config.gmm_reg_covar,
        max_iter=config.max_iter,
        random_state=config.seed,
        device=device,
    )


@register_algorithm(
    "gmm", estimator="cluster_core.algorithms.gmm:GaussianMixture", needs_k=True, probabilities=True, distributed=True,
    gpu_engine="torch", description="Gaussian mixture with full covariances, fitted by EM",
)
def build_gmm(config: Any, n_clusters: int | None, device: str) -> ClusterEstimator:
    """:class:`~cluster_core.algorithms.GaussianMixture` with full covariances."""
    return _gaussian_mixture(config, n_clusters, device, "full")


@register_algorithm(
    "gmm-diag", estimator="cluster_core.algorithms.gmm:GaussianMixture", needs_k=True, probabilities=True,
    distributed=True, gpu_engine="torch", description="Gaussian mixture with diagonal covariances, fitted by EM",
)
def build_gmm_diag(config: Any, n_clusters: int | None, device: str) -> ClusterEstimator:
    """:class:`~cluster_core.algorithms.GaussianMixture` with diagonal covariances (saved as ``gmm``)."""
    return _gaussian_mixture(config, n_clusters, device, "diag")


@register_algorithm(
    "hdbscan", estimator="cluster_core.algorithms.hdbscan:HDBSCAN", needs_k=False, probabilities=True,
    distributed=False, gpu_engine="cuml", metrics=("euclidean", "cosine"), description="HDBSCAN on a sample, other rows by approximate prediction; noise is -1",
)
def build_hdbscan(config: Any, n_clusters: int | None, device: str) -> ClusterEstimator:
    """:class:`~cluster_core.algorithms.HDBSCAN`; it finds its own number of clusters."""
    from .hdbscan import HDBSCAN

    return HDBSCAN(
        config.hdbscan_min_cluster_size,
        min_samples=config.hdbscan_min_samples,
        max_fit_samples=config.hdbscan_max_fit_samples,
        random_state=config.seed,
        device=device,
        metric=config.metric,
    )


def _gini_variants(config: Any) -> list[tuple[str, dict]]:
    """One Genie variant per swept Gini threshold (``genie_gini_thresholds``)."""
    return [(f"g{g:g}", {"genie_gini_threshold": float(g)}) for g in config.genie_gini_thresholds]


@register_algorithm(
    "genie", estimator="cluster_core.algorithms.genie:Genie", needs_k=True, distributed=False, sweep=_gini_variants,
    metrics=("euclidean", "cosine"),
    description="Genie (genieclust): Gini-bounded single linkage on a sample, other rows by nearest sample row",
)
def build_genie(config: Any, n_clusters: int | None, device: str) -> ClusterEstimator:
    """:class:`~cluster_core.algorithms.Genie` with the sweep's cluster count and Gini threshold."""
    from .genie import Genie

    return Genie(
        n_clusters, gini_threshold=config.genie_gini_threshold, max_fit_samples=config.genie_max_fit_samples,
        random_state=config.seed, device=device, metric=config.metric,
    )
