"""Exact nearest neighbours and pairwise distances.

Pairwise distances come from faiss (GPU when faiss-gpu sees one). k-nearest-neighbour
search on the CPU uses scikit-learn's ``NearestNeighbors(algorithm="auto")``: a KD-tree
or ball tree in low dimensions (brute force spends its time selecting the k best of every
row), brute force in high ones; on a GPU, faiss's brute force.
"""

from __future__ import annotations

import numpy as np


def _faiss():
    import faiss

    return faiss


def _gpu_resources():
    faiss = _faiss()
    if not hasattr(_gpu_resources, "cache"):
        _gpu_resources.cache = faiss.StandardGpuResources()
    return _gpu_resources.cache


class NeighborIndex:
    """Exact k-nearest-neighbour search over fixed ``base`` rows (built once, queried often)."""

    def __init__(self, base: np.ndarray, device: str = "cpu"):
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.device = device
        self._sklearn = None

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(squared_distances, indices)`` of the ``k`` nearest base rows, each (n_queries, k)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        faiss = _faiss()
        if self.device == "cuda" and faiss.get_num_gpus() > 0:
            return faiss.knn_gpu(_gpu_resources(), queries, self.base, k)
        if self._sklearn is None:
            from sklearn.neighbors import NearestNeighbors

            self._sklearn = NearestNeighbors(algorithm="auto").fit(self.base)
        distances, indices = self._sklearn.kneighbors(queries, n_neighbors=k)
        return (distances.astype(np.float64) ** 2), indices


def knn(queries: np.ndarray, base: np.ndarray, k: int, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for every query (exact); ``(squared_distances, indices)``."""
    return NeighborIndex(base, device).query(queries, k)


def pairwise_sqdist(queries: np.ndarray, base: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Squared Euclidean distances between every query and every base row, float32 (n_q, n_b)."""
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    base = np.ascontiguousarray(base, dtype=np.float32)
    if device == "cuda" and faiss.get_num_gpus() > 0:
        distances = faiss.pairwise_distance_gpu(_gpu_resources(), queries, base)
    else:
        distances = faiss.pairwise_distances(queries, base)
    return np.maximum(distances, 0.0, out=distances)
