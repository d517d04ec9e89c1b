"""Shape clustering of z-normalized series: DTW k-means or k-Shape, from tslearn.

Why tslearn (docs/series.md): it is maintained, BSD-licensed, installs from PyPI with only
numpy, scipy, scikit-learn, numba and joblib below it (aeon 1.6 and sktime 1.2 pin pandas
below 3.1 and older numba/numpy than Clustra runs with), and it has both methods:
``TimeSeriesKMeans(metric="dtw")`` with a Sakoe-Chiba band (DBA barycenters) and
``KShape`` (Paparrizos & Gravano). Fitting uses tslearn; the fitted centers are kept as
arrays (JSON + ``.npz``, no pickle) and assignment is computed here: DTW within the same
band (tslearn's ``cdist_dtw``) or the shape-based distance ``1 - max NCC`` (FFT
cross-correlation, as k-Shape assigns).

Cost: DTW of two series of length L within a band of radius r is O(L * r); series are
resampled to ``shape_length`` points and the band is ``dtw_window * shape_length``, so
one distance costs at most ``shape_length * (2 r + 1)`` cells whatever the raw lengths.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._compat import require

ALGORITHMS = {"shape": "dtw-kmeans", "kshape": "kshape"}


def _tslearn_clustering():
    with warnings.catch_warnings():  # tslearn warns about h5py (an extra we do not use) on import
        warnings.simplefilter("ignore", UserWarning)
        require("tslearn", "series mode --series-method shape/kshape")
        import tslearn.clustering
        import tslearn.metrics

    return tslearn.clustering, tslearn.metrics


@dataclass
class ShapeModel:
    """Fitted shape centers: ``centers`` (k, length, n_dims), ``algorithm`` (dtw-kmeans or kshape), ``radius``."""

    algorithm: str
    centers: np.ndarray
    radius: int

    @property
    def n_clusters(self) -> int:
        """Number of centers."""
        return int(self.centers.shape[0])

    def distances(self, shapes: np.ndarray) -> np.ndarray:
        """(n, k) distances of z-normalized ``shapes`` (n, length, n_dims) to every center."""
        if self.algorithm == "kshape":
            return shape_based_distance(shapes, self.centers)
        _, metrics = _tslearn_clustering()
        return np.asarray(metrics.cdist_dtw(shapes, self.centers, sakoe_chiba_radius=self.radius), np.float64)

    def assign(self, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, distance to the assigned center) of ``shapes``."""
        distances = self.distances(shapes)
        labels = distances.argmin(axis=1)
        return labels.astype(np.int64), distances[np.arange(len(labels)), labels]

    def get_state(self) -> dict:
        """JSON values and arrays for :func:`cluster_core._state.write_state`."""
        return {"algorithm": self.algorithm, "radius": int(self.radius), "centers": np.asarray(self.centers, np.float64)}

    @classmethod
    def from_state(cls, state: dict) -> ShapeModel:
        """Inverse of :meth:`get_state`."""
        return cls(str(state["algorithm"]), np.asarray(state["centers"], np.float64), int(state["radius"]))


def shape_based_distance(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """k-Shape's distance ``1 - max_shift NCC(x, c)`` of every row of ``x`` (n, L, d) to every center (k, L, d)."""
    length = x.shape[1]
    size = 1 << int(np.ceil(np.log2(2 * length - 1)))
    fx = np.fft.rfft(x, size, axis=1)  # (n, f, d)
    fc = np.fft.rfft(centers, size, axis=1)  # (k, f, d)
    norms = np.sqrt((x**2).sum(axis=(1, 2)))[:, None] * np.sqrt((centers**2).sum(axis=(1, 2)))[None, :]
    out = np.empty((x.shape[0], centers.shape[0]))
    for j in range(centers.shape[0]):
        cc = np.fft.irfft(fx * np.conj(fc[j])[None], size, axis=1).sum(axis=2)  # (n, size), all shifts
        with np.errstate(invalid="ignore", divide="ignore"):
            ncc = np.where(norms[:, j] > 0, cc.max(axis=1) / norms[:, j], 0.0)
        out[:, j] = 1.0 - ncc
    return out


def fit_shapes(shapes: np.ndarray, n_clusters: int, method: str, radius: int, *, n_init: int, max_iter: int,
               seed: int) -> ShapeModel:
    """Fit DTW k-means (``method="shape"``) or k-Shape (``"kshape"``) on ``shapes`` (n, L, d)."""
    clustering, _ = _tslearn_clustering()
    if shapes.shape[0] < n_clusters:
        raise ValueError(f"n_series={shapes.shape[0]} should be >= n_clusters={n_clusters}.")
    if method == "kshape":
        model = clustering.KShape(n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, random_state=seed)
    else:
        model = clustering.TimeSeriesKMeans(
            n_clusters=n_clusters, metric="dtw", metric_params={"sakoe_chiba_radius": radius}, n_init=n_init,
            max_iter=max_iter, max_iter_barycenter=20, random_state=seed,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tslearn's "empty cluster" notices: the centers are still valid
        model.fit(shapes)
    return ShapeModel(ALGORITHMS[method], np.asarray(model.cluster_centers_, np.float64), radius)


def silhouette(distances_to_all: np.ndarray, labels: np.ndarray) -> float | None:
    """Silhouette from a precomputed (n, n) distance matrix; None with fewer than two clusters."""
    from sklearn.metrics import silhouette_score

    if np.unique(labels).size < 2 or np.unique(labels).size >= labels.size:
        return None
    return float(silhouette_score(distances_to_all, labels, metric="precomputed"))


def pairwise(model: ShapeModel, shapes: np.ndarray) -> np.ndarray:
    """(n, n) distances among ``shapes`` in the model's distance."""
    if model.algorithm == "kshape":
        return np.maximum(shape_based_distance(shapes, shapes), 0.0)
    _, metrics = _tslearn_clustering()
    return np.asarray(metrics.cdist_dtw(shapes, sakoe_chiba_radius=model.radius), np.float64)


__all__ = ["ALGORITHMS", "ShapeModel", "fit_shapes", "pairwise", "shape_based_distance", "silhouette"]
