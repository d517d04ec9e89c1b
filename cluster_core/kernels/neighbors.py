"""Exact nearest neighbours and pairwise distances, faiss-backed (GPU when faiss-gpu sees one)."""

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


def knn(queries: np.ndarray, base: np.ndarray, k: int, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for every query (brute force, exact).

    Returns ``(squared_distances, indices)``, each of shape (n_queries, k). faiss's L2
    distances are squared: take the square root for Euclidean distances.
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    base = np.ascontiguousarray(base, dtype=np.float32)
    if device == "cuda" and faiss.get_num_gpus() > 0:
        return faiss.knn_gpu(_gpu_resources(), queries, base, k)
    return faiss.knn(queries, base, k)


def pairwise_sqdist(queries: np.ndarray, base: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Squared Euclidean distances between every query and every base row, float32 (n_q, n_b)."""
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    base = np.ascontiguousarray(base, dtype=np.float32)
    if device == "cuda" and faiss.get_num_gpus() > 0:
        return faiss.pairwise_distance_gpu(_gpu_resources(), queries, base)
    return np.maximum(faiss.pairwise_distances(queries, base), 0.0)
