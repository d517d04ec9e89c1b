"""HDBSCAN fitted on a representative sample; every other row assigned by approximate prediction.

The condensed tree is built by cuML on a GPU, or by the ``hdbscan`` package on the CPU;
both hand over the same raw tree (parent, child, lambda_val, child_size) and labels.
From them :func:`state_from_tree` derives what prediction needs as plain arrays — the
fit sample, its core distances, the tree and the selected clusters — and
:func:`approximate_predict` re-implements ``hdbscan.approximate_predict`` on them
(vectorised, exact neighbours from faiss). A saved model needs no pickle, assigns new
points without refitting, and a tree built on a GPU serves on a CPU.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._compat import optional_import
from ..kernels.neighbors import NeighborIndex, knn
from ._base import Assignment, ClusterEstimator

DEFAULT_MAX_FIT_SAMPLES = 50_000


def default_min_cluster_size(n_rows: int) -> int:
    """Smallest cluster worth reporting as a segment: 0.5% of the fit sample, at least 5."""
    return max(5, int(round(0.005 * n_rows)))


class HDBSCAN(ClusterEstimator):
    """Density-based hierarchical clustering; noise is labelled -1.

    Parameters
    ----------
    min_cluster_size : int, optional
        Default: :func:`default_min_cluster_size` of the fit sample.
    min_samples : int, optional
        Neighbourhood size for core distances (default: ``min(min_cluster_size, 10)``).
    cluster_selection_method : {"eom", "leaf"}, default="eom"
    cluster_selection_epsilon : float, default=0.0
    max_fit_samples : int, default=50,000
        The tree is built on a uniform sample of at most this many rows; the rest are
        assigned with :func:`approximate_predict`.
    random_state : int, optional
    device : {"auto", "cpu", "cuda"}, default="auto"
        Used for the neighbour search at prediction time.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"``: rows are unit-normalized and clustered with the Euclidean (chord)
        distance between them, ``sqrt(2 * (1 - cos))``, monotone in the cosine distance:
        the mutual-reachability spanning tree is the one cosine gives, the condensed tree's
        stabilities are measured in chord length. (The hdbscan library's ``"cosine"`` is not
        among the metrics of its KD/ball trees, which its prediction data needs.)

    Attributes
    ----------
    n_clusters_ : int
        Clusters found (noise excluded).
    labels_, probabilities_ : ndarray
        For an in-memory ``X`` (exact for fitted rows, approximate for the others).
    """

    algorithm = "hdbscan"
    _fitted_attribute = "fit_data_"
    _parameter_constraints = {
        "min_cluster_size": [Interval(Integral, 2, None, closed="left"), None],
        "min_samples": [Interval(Integral, 1, None, closed="left"), None],
        "cluster_selection_method": [StrOptions({"eom", "leaf"})],
        "cluster_selection_epsilon": [Interval(Real, 0.0, None, closed="left")],
        "max_fit_samples": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "metric": [StrOptions({"euclidean", "cosine"})],
    }

    def __init__(
        self,
        min_cluster_size=None,
        *,
        min_samples=None,
        cluster_selection_method="eom",
        cluster_selection_epsilon=0.0,
        max_fit_samples=DEFAULT_MAX_FIT_SAMPLES,
        random_state=None,
        device="auto",
        metric="euclidean",
    ):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state
        self.device = device
        self.metric = metric

    def fit(self, X, y=None):
        """Build the cluster tree on (a sample of) ``X``."""
        self._validate_params()
        self._fit_on_sample(X, self._fit_tree)
        return self

    def _fit_tree(self, sample: np.ndarray) -> Assignment:
        """Build the condensed tree of the fit sample; the sample's labels and probabilities."""
        min_cluster_size = self.min_cluster_size or default_min_cluster_size(sample.shape[0])
        min_samples = self.min_samples or min(min_cluster_size, 10)
        if sample.shape[0] <= min_samples:
            raise ValueError(f"n_samples={sample.shape[0]} should be > min_samples={min_samples}.")
        params = {
            "min_cluster_size": min_cluster_size,
            "min_samples": min_samples,
            "cluster_selection_method": self.cluster_selection_method,
            "cluster_selection_epsilon": float(self.cluster_selection_epsilon),
        }
        device = self._torch_device()
        raw_tree, labels, probabilities = build_tree(sample, params, device)
        self._load_fitted_state(state_from_tree(raw_tree, labels, sample, min_samples, device))
        self.fit_labels_ = labels
        return Assignment(labels, probabilities, None)

    def assign(self, X) -> Assignment:
        """Approximate-predict labels (-1 = noise) and membership probabilities."""
        array = self._check_input(X)
        state = self._prediction_state()
        labels, probability = approximate_predict(state, array, self.neighbor_index_, tree=self._tree_index(state))
        return Assignment(labels, probability, None)

    def _tree_index(self, state: dict) -> _TreeIndex:
        """The dense lookups over the fitted tree, built once per model."""
        sources = tuple(state[name] for name in ("fit_data_", "tree_parent_", "tree_child_", "tree_lambda_",
                                                 "cluster_label_", "cluster_max_lambda_"))
        return self._prepared("tree", None, sources, lambda: _TreeIndex(state, state["fit_data_"].shape[0]))

    def _prediction_state(self) -> dict:
        return {name: getattr(self, name) for name in _STATE_KEYS}

    def _fitted_state(self) -> dict:
        return self._prediction_state()

    def _load_fitted_state(self, state: dict) -> None:
        for name in _STATE_KEYS:
            setattr(self, name, state[name])
        self.min_samples_ = int(self.min_samples_)
        self.n_clusters_ = int(self.n_clusters_)
        # derived from fit_data_, not saved: the search structure over the fit sample
        self.neighbor_index_ = NeighborIndex(self.fit_data_, self._torch_device())


_STATE_KEYS = (
    "fit_data_",
    "core_distances_",
    "min_samples_",
    "n_clusters_",
    "tree_parent_",
    "tree_child_",
    "tree_lambda_",
    "cluster_label_",
    "cluster_max_lambda_",
)


def build_tree(sample: np.ndarray, params: dict, device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(raw condensed tree, labels, probabilities)`` of the sample, from cuML on a GPU
    (when installed) or the ``hdbscan`` package on the CPU, with the same parameters."""
    if device == "cuda":
        cuml_hdbscan = optional_import("cuml.cluster.hdbscan")
        if cuml_hdbscan is not None:
            model = cuml_hdbscan.HDBSCAN(output_type="numpy", **params).fit(sample)
            return (
                model.condensed_tree_.to_numpy(),
                np.asarray(model.labels_, np.int64),
                np.asarray(model.probabilities_, np.float64),
            )
    import hdbscan

    model = hdbscan.HDBSCAN(core_dist_n_jobs=1, **params).fit(sample.astype(np.float64))
    return model.condensed_tree_.to_numpy(), model.labels_.astype(np.int64), model.probabilities_.astype(np.float64)


def state_from_tree(raw_tree: np.ndarray, labels: np.ndarray, sample: np.ndarray, min_samples: int, device: str = "cpu") -> dict:
    """The prediction state of a fitted tree, as dense arrays (what ``hdbscan.prediction.PredictionData`` holds).

    * the selected cluster of label ``L`` is the lowest tree segment that holds a point
      labelled ``L``;
    * every cluster below a selected one maps to its label and shares its largest lambda;
    * core distances are the distance to the ``min_samples``-th neighbour (self included).

    ``cluster_label_[c - n]`` / ``cluster_max_lambda_[c - n]`` hold, for tree node ``c``,
    the label of the selected cluster it belongs to (-1 if none) and that cluster's lambda.
    """
    n = sample.shape[0]
    parent, child = raw_tree["parent"].astype(np.int64), raw_tree["child"].astype(np.int64)
    lam = raw_tree["lambda_val"].astype(np.float64)
    n_nodes = int(max(parent.max(initial=n), child.max(initial=n)) - n + 1)
    is_point = child < n
    point_labels = labels[child[is_point]]
    selected = sorted(
        int(parent[is_point][point_labels == label].min()) for label in np.unique(point_labels[point_labels >= 0])
    )
    max_lambda_of = np.zeros(n_nodes)
    np.maximum.at(max_lambda_of, parent - n, lam)
    cluster_label = np.full(n_nodes, -1, np.int64)
    cluster_max_lambda = np.zeros(n_nodes)
    children_of: dict[int, list[int]] = {}
    for p, c in zip(parent[~is_point], child[~is_point]):
        children_of.setdefault(int(p), []).append(int(c))
    for label, cluster in enumerate(selected):
        stack = [cluster]
        while stack:
            node = stack.pop()
            cluster_label[node - n] = label
            cluster_max_lambda[node - n] = max_lambda_of[cluster - n]
            stack.extend(children_of.get(node, []))
    sqdist, _ = knn(sample, sample, min(min_samples, n), device)
    return {
        "fit_data_": sample,
        "core_distances_": np.sqrt(np.maximum(sqdist[:, -1].astype(np.float64), 0.0)),
        "min_samples_": int(min_samples),
        "n_clusters_": len(selected),
        "tree_parent_": parent,
        "tree_child_": child,
        "tree_lambda_": lam,
        "cluster_label_": cluster_label,
        "cluster_max_lambda_": cluster_max_lambda,
    }


def approximate_predict(state: dict, points: np.ndarray, index: NeighborIndex, block_rows: int = 65536,
                        tree: _TreeIndex | None = None):
    """Labels and probabilities of new points, as ``hdbscan.approximate_predict`` computes them.

    For each point: its ``2 * min_samples`` nearest fit rows; the one nearest in mutual
    reachability gives the point's lambda and its parent cluster in the condensed tree;
    the point climbs the tree while the parent cluster was born at a lambda above its
    own; the selected cluster reached (if any) is its label, and ``lambda / max_lambda``
    its probability. ``tree``: the state's :class:`_TreeIndex`, when the caller keeps one.
    """
    fit_data = state["fit_data_"]
    n = fit_data.shape[0]
    if int(state["n_clusters_"]) == 0:
        return np.full(points.shape[0], -1, np.int64), np.zeros(points.shape[0])
    tree = _TreeIndex(state, n) if tree is None else tree
    min_samples = int(state["min_samples_"])
    k = min(2 * min_samples, n)
    labels = np.empty(points.shape[0], np.int64)
    probability = np.empty(points.shape[0], np.float64)
    for start in range(0, points.shape[0], block_rows):
        chunk = points[start : start + block_rows]
        sqdist, neighbors = index.query(chunk, k)
        distances = np.sqrt(np.maximum(sqdist.astype(np.float64), 0.0))
        point_core = distances[:, min(min_samples, k - 1)][:, None]
        mutual = np.maximum(np.maximum(state["core_distances_"][neighbors], point_core), distances)
        best = mutual.argmin(axis=1)
        nearest = neighbors[np.arange(chunk.shape[0]), best]
        best_mutual = mutual[np.arange(chunk.shape[0]), best]
        with np.errstate(divide="ignore"):
            lam = np.where(best_mutual > 0.0, 1.0 / best_mutual, np.finfo(np.float64).max)
        node = tree.climb(tree.point_parent[nearest], tree.point_lambda[nearest], lam)
        label = tree.label[node - n]
        max_lambda = tree.max_lambda[node - n]
        prob = np.where(max_lambda > 0.0, np.minimum(max_lambda, lam) / np.where(max_lambda > 0, max_lambda, 1.0), 1.0)
        labels[start : start + chunk.shape[0]] = label
        probability[start : start + chunk.shape[0]] = np.where(label >= 0, prob, 0.0)
    return labels, probability


class _TreeIndex:
    """Dense lookups over the condensed tree: parent/lambda per point and per cluster node."""

    def __init__(self, state: dict, n: int):
        parent, child, lam = state["tree_parent_"], state["tree_child_"], state["tree_lambda_"]
        n_nodes = state["cluster_label_"].shape[0]
        self.root = n
        self.point_parent = np.full(n, n, np.int64)
        self.point_lambda = np.zeros(n, np.float64)
        is_point = child < n
        self.point_parent[child[is_point]] = parent[is_point]
        self.point_lambda[child[is_point]] = lam[is_point]
        self.node_parent = np.full(n_nodes, n, np.int64)
        self.node_birth = np.full(n_nodes, -np.inf)
        self.node_parent[child[~is_point] - n] = parent[~is_point]
        self.node_birth[child[~is_point] - n] = lam[~is_point]
        self.label = state["cluster_label_"]
        self.max_lambda = state["cluster_max_lambda_"]

    def climb(self, node: np.ndarray, point_lambda: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """Walk each point up while its cluster was born at a lambda >= the point's lambda."""
        node = node.copy()
        active = point_lambda > lam
        while active.any():
            idx = np.flatnonzero(active)
            current = node[idx]
            can_move = (current > self.root) & (self.node_birth[current - self.root] >= lam[idx])
            node[idx[can_move]] = self.node_parent[current[can_move] - self.root]
            active[idx[~can_move]] = False
        return node
