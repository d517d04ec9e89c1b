"""Genie (Gagolewski's Gini-index-bounded single linkage) on a sample; other rows by nearest neighbour.

The minimum spanning tree and the cut come from the ``genieclust`` package, fitted on a
uniform sample of at most ``max_fit_samples`` rows. Every row, fitted or new, takes the
cluster of its nearest sample row (exact neighbours from faiss), as HDBSCAN here assigns
rows outside its fit sample. The saved state is the sample and its labels (arrays, no
pickle), so a model assigns new points without refitting on any device.

One tree per sample: the spanning tree depends only on the rows, not on ``n_clusters`` or
``gini_threshold``, and every Genie model of a sweep fits the same sample (and refits the
same stability subsamples), so the tree of each distinct sample is built once
(:func:`_tree_for`, keyed on the sample's bytes) and each model only cuts it
(``genieclust`` reuses a fitted tree when ``fit`` sees the same array again).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..kernels.neighbors import NeighborIndex, array_digest
from ._base import Assignment, ClusterEstimator

DEFAULT_MAX_FIT_SAMPLES = 20_000
SINGLE_THREAD_ROWS = 5_000  # below this, OpenMP threads cost more than the tree (100x on a busy machine)


def _openmp_threads(n_rows: int):
    """One OpenMP thread for small trees (refits of the stability sample), the default otherwise."""
    from contextlib import nullcontext

    if n_rows > SINGLE_THREAD_ROWS:
        return nullcontext()
    from .._threads import limit_threads  # finding the loaded libraries costs ~15 ms: cached

    return limit_threads(1, "openmp")


class _Tree:
    """One sample's rows (kept alive: genieclust recognises them by identity) and its fitted tree."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.model = None
        self.lock = threading.Lock()


_TREES: OrderedDict[bytes, _Tree] = OrderedDict()
_TREES_LOCK = threading.Lock()
MAX_TREES = 12  # a sweep's fit sample and its 8 stability subsamples (data and null), with room


def _tree_for(sample: np.ndarray) -> _Tree:
    """The shared tree holder of ``sample``'s exact rows (the most recent ``MAX_TREES`` are kept)."""
    key = array_digest(sample)
    with _TREES_LOCK:
        tree = _TREES.get(key)
        if tree is None:
            tree = _TREES[key] = _Tree(np.array(sample, dtype=np.float64, order="C"))
            while len(_TREES) > MAX_TREES:
                _TREES.popitem(last=False)
        else:
            _TREES.move_to_end(key)
        return tree


class Genie(ClusterEstimator):
    """Genie hierarchical clustering with a Gini-index bound on cluster-size inequality.

    Parameters
    ----------
    n_clusters : int, default=2
    gini_threshold : float, default=0.3
        In [0, 1]; 1.0 is single linkage, lower values keep cluster sizes more even.
    max_fit_samples : int, default=20,000
        The tree is built on a uniform sample of at most this many rows; every row is
        assigned the cluster of its nearest sample row.
    random_state : int, optional
    device : {"auto", "cpu", "cuda"}, default="auto"
        Used for the neighbour search at assignment time.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"``: rows are unit-normalized and the tree is built with Euclidean
        distances between them, which are monotone in the cosine distance. Genie's merges
        depend only on the order of the minimum spanning tree's edges and on cluster
        sizes, so the partition is the one of ``genieclust.Genie(metric="cosine")``;
        the nearest-sample assignment is the most-similar sample row.

    Attributes
    ----------
    fit_data_ : ndarray of shape (n_fit, n_features)
    fit_labels_ : ndarray of shape (n_fit,)
    n_clusters_ : int
        Clusters found (fewer than ``n_clusters`` only when the sample has too few distinct rows).
    labels_ : ndarray
        For an in-memory ``X``.
    """

    algorithm = "genie"
    _fitted_attribute = "fit_data_"
    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "gini_threshold": [Interval(Real, 0.0, 1.0, closed="both")],
        "max_fit_samples": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "metric": [StrOptions({"euclidean", "cosine"})],
    }

    def __init__(self, n_clusters=2, *, gini_threshold=0.3, max_fit_samples=DEFAULT_MAX_FIT_SAMPLES,
                 random_state=None, device="auto", metric="euclidean"):
        self.n_clusters = n_clusters
        self.gini_threshold = gini_threshold
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state
        self.device = device
        self.metric = metric

    def fit(self, X, y=None):
        """Build the Genie partition of (a sample of) ``X``."""
        self._validate_params()
        self._fit_on_sample(X, self._fit_tree)
        return self

    def _fit_tree(self, sample: np.ndarray) -> Assignment:
        """Cut the Genie tree of the fit sample; the sample's labels."""
        import genieclust

        if sample.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={sample.shape[0]} should be >= n_clusters={self.n_clusters}.")
        tree = _tree_for(sample)
        with tree.lock:
            if tree.model is None:
                tree.model = genieclust.Genie(n_clusters=self.n_clusters, gini_threshold=float(self.gini_threshold))
            else:
                tree.model.set_params(n_clusters=self.n_clusters, gini_threshold=float(self.gini_threshold))
            with _openmp_threads(sample.shape[0]):
                labels = np.array(tree.model.fit(tree.rows).labels_, np.int64)  # the same array: the tree is reused
        # genieclust numbers clusters 0..k-1 (noise -1 only with M > 1, not used here)
        _, labels = np.unique(labels, return_inverse=True)
        labels = labels.astype(np.int64)
        self._load_fitted_state({"fit_data_": sample, "fit_labels_": labels,
                                 "n_clusters_": int(labels.max()) + 1 if labels.size else 0})
        return Assignment(labels, None, None)

    def assign(self, X) -> Assignment:
        """The cluster of each row's nearest fit-sample row."""
        array = self._check_input(X)
        labels = np.empty(array.shape[0], np.int64)
        for start in range(0, array.shape[0], 65536):
            _, neighbors = self.neighbor_index_.query(array[start : start + 65536], 1)
            labels[start : start + 65536] = self.fit_labels_[neighbors[:, 0]]
        return Assignment(labels, None, None)

    def _fitted_state(self) -> dict:
        return {"fit_data_": self.fit_data_, "fit_labels_": self.fit_labels_, "n_clusters_": int(self.n_clusters_)}

    def _load_fitted_state(self, state: dict) -> None:
        self.fit_data_ = np.ascontiguousarray(state["fit_data_"], dtype=np.float32)
        self.fit_labels_ = np.asarray(state["fit_labels_"], np.int64)
        self.n_clusters_ = int(state["n_clusters_"])
        # derived from fit_data_, not saved: the search structure over the fit sample
        self.neighbor_index_ = NeighborIndex(self.fit_data_, self._torch_device())
