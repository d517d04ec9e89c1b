"""Exact nearest neighbours and pairwise distances.

Pairwise distances come from faiss (GPU when faiss-gpu sees one). k-nearest-neighbour
search on the CPU uses scikit-learn's ``NearestNeighbors(algorithm="auto")``: a KD-tree
or ball tree in low dimensions (brute force spends its time selecting the k best of every
row), brute force in high ones; on a GPU, faiss's brute force.

Answers are remembered (:class:`_AnswerCache`, bounded in bytes): the Genie models of one
sweep all assign from the same fit sample, so their validation rows and every permuted
column of the feature impact are the same queries against the same base; each is searched
once, not once per model. A hit returns exactly what the search would (it is keyed on the
bytes of both arrays).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np


def _faiss():
    import faiss

    return faiss


def _gpu_resources():
    faiss = _faiss()
    if not hasattr(_gpu_resources, "cache"):
        _gpu_resources.cache = faiss.StandardGpuResources()
    return _gpu_resources.cache


def array_digest(array: np.ndarray) -> bytes:
    """A key for an array's exact contents, shape and dtype (BLAKE2b of its bytes)."""
    return hashlib.blake2b(memoryview(np.ascontiguousarray(array)).cast("B"), digest_size=16).digest() + repr(
        (array.shape, array.dtype.str)).encode()


class _AnswerCache:
    """The most recent neighbour answers, at most ``max_bytes`` of them (least recently used out first)."""

    def __init__(self, max_bytes: int = 64 * 2**20):
        self.max_bytes = max_bytes
        self._answers: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
            return answer

    def put(self, key: tuple, answer: tuple[np.ndarray, np.ndarray]) -> None:
        size = sum(a.nbytes for a in answer)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._answers:
                return
            self._answers[key] = answer
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._answers.popitem(last=False)
                self._bytes -= sum(a.nbytes for a in dropped)


_ANSWERS = _AnswerCache()


class NeighborIndex:
    """Exact k-nearest-neighbour search over fixed ``base`` rows (built once, queried often)."""

    def __init__(self, base: np.ndarray, device: str = "cpu"):
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.device = device
        self._sklearn = None
        self._base_digest: bytes | None = None

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(squared_distances, indices)`` of the ``k`` nearest base rows, each (n_queries, k)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self._base_digest is None:
            self._base_digest = array_digest(self.base)
        key = (self._base_digest, array_digest(queries), int(k))
        answer = _ANSWERS.get(key)
        if answer is None:
            answer = self._search(queries, k)
            for array in answer:
                array.flags.writeable = False  # shared between callers
            _ANSWERS.put(key, answer)
        return answer

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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


def pairwise_sqdist_into(queries: np.ndarray, base: np.ndarray, out: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Squared Euclidean distances between every query and every base row (faiss; on the GPU when
    faiss-gpu sees one), written into ``out`` (float32, C-contiguous, (n_q, n_b)) and not clamped:
    rounding may leave a distance slightly below 0. A caller tiling a large product reuses one
    buffer instead of a new (page-faulting) array per tile and clamps in its own pass."""
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    base = np.ascontiguousarray(base, dtype=np.float32)
    (n_q, d), n_b = queries.shape, base.shape[0]
    if out.shape != (n_q, n_b) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {(n_q, n_b)}, got {out.dtype} {out.shape}")
    if device == "cuda" and faiss.get_num_gpus() > 0:
        out[...] = faiss.pairwise_distance_gpu(_gpu_resources(), queries, base)
    elif n_q and n_b and d:
        faiss.pairwise_L2sqr(d, n_q, faiss.swig_ptr(queries), n_b, faiss.swig_ptr(base), faiss.swig_ptr(out))
    else:
        out[...] = 0.0
    return out
