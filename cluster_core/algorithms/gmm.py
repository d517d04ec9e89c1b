"""Gaussian mixture fitted by EM over blocks (full or diagonal covariance)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.linalg import solve_triangular
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..blocks import Blocks, single_threaded_when_small
from ..kernels.gmm import PreparedMixture, TwoValued, em_statistics, em_statistics_blockwise, hard_statistics
from ..kernels.kmeans import kmeans_plusplus
from ._base import Assignment, ClusterEstimator, seed_from
from .kmeans import KMeans

ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, or increase reg_covar."
)


class GaussianMixture(ClusterEstimator):
    """Gaussian mixture model whose E-step runs per block and whose M-step runs on the driver.

    Parameters mirror :class:`sklearn.mixture.GaussianMixture` (same names, defaults and
    initialisation from k-means hard assignments), so results agree with scikit-learn
    for the same initial parameters. One default differs: ``n_components``.

    Parameters
    ----------
    n_components : int, default=8
        Number of mixture components, i.e. clusters. scikit-learn's density estimator
        defaults to 1; this estimator is a clusterer, for which one component puts every
        row in cluster 0, so it defaults to :class:`~cluster_core.algorithms.KMeans`'s
        ``n_clusters=8`` (as scikit-learn's KMeans). ``clustra train`` always passes the
        swept cluster count.
    covariance_type : {"full", "diag"}, default="full"
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
    n_init : int, default=1
    init_params : {"kmeans", "k-means++", "random_from_data"}, default="kmeans"
    weights_init, means_init, precisions_init : array-like, optional
        User-provided initial parameters (as in scikit-learn).
    random_state : int, optional
    device : {"auto", "cpu", "cuda"}, default="auto"
    discrete_features : "auto", None or array-like, default="auto"
        Columns modelled as discrete instead of Gaussian within each component (a mixed
        mixture, as latent class models do): "auto" takes every column with at most two
        distinct values in the fit data (one-hot categories, flags, missing-value
        indicators); None models every column as Gaussian (scikit-learn's model); or
        column indices / a boolean mask. Adjacent discrete columns that are mutually
        exclusive and together cover every row (a one-hot block) form one categorical
        variable; every other discrete column is a Bernoulli. A Gaussian on a two-valued column is degenerate:
        a component holding only zeros there gets variance ``reg_covar`` and a likelihood
        that no continuous column outweighs, so EM and BIC chase the flags. Data without
        such columns fits exactly as with None.
    discrete_prior : float, default=1.0
        Beta(a, a) / Dirichlet(a, ..., a) prior of the discrete probabilities (their MAP
        estimate is ``(ones + a) / (n_k + m a)`` for m outcomes, never 0 or 1).

    Attributes
    ----------
    weights_ : ndarray (k,)
    means_ : ndarray (k, n_features)
        Component means of every column (for a two-valued column: its expected value).
    covariances_, precisions_cholesky_ : ndarray
        Of the continuous columns only (all columns without discrete ones).
    discrete_features_ : ndarray of int
        The Bernoulli columns (empty when none).
    discrete_low_, discrete_scale_ : ndarray
        Each discrete column's values are ``low`` and ``low + scale``.
    discrete_groups_ : ndarray of int
        Per discrete column: its categorical variable (one-hot block) id, or -1 for a Bernoulli.
    bernoulli_ : ndarray (k, n_discrete)
        P(value = low + scale | component); a one-hot block's entries sum to 1.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood of the training data at the last E-step.
    labels_ : ndarray
        Only when fitted on an in-memory array.
    """

    algorithm = "gmm"
    _fitted_attribute = "means_"
    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "diag"})],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "k-means++", "random_from_data"})],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "discrete_features": [StrOptions({"auto"}), "array-like", None],
        "discrete_prior": [Interval(Real, 0.0, None, closed="neither")],
    }

    def __init__(
        self,
        n_components=8,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        device="auto",
        discrete_features="auto",
        discrete_prior=1.0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.device = device
        self.discrete_features = discrete_features
        self.discrete_prior = discrete_prior

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Run EM ``n_init`` times and keep the parameters with the best likelihood (the first of those
        within ``tol`` of it: the same optimum reached twice keeps its first labelling)."""
        self._validate_params()
        blocks, array = self._fit_blocks(X)
        with single_threaded_when_small(blocks):
            return self._fit_em(blocks, array)

    def _fit_em(self, blocks: Blocks, array: np.ndarray | None) -> GaussianMixture:
        """EM restarts on the blocks; the best likelihood wins."""
        n_rows = blocks.count_rows()
        if n_rows < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {self.n_components}, n_samples = {n_rows}")
        device = self._torch_device()
        rng = np.random.default_rng(seed_from(self.random_state))
        self._set_discrete_columns(blocks)
        best = None
        for _ in range(self.n_init):
            result = self._em(blocks, rng, device)
            # a restart replaces the kept one only when better by more than the convergence threshold:
            # runs that reach the same optimum (often with the components in another order) differ in
            # the last bits between processes and thread counts, and must not swap the labels
            if best is None or result["lower_bound_"] > best["lower_bound_"] + self.tol:
                best = result
        continuous_means, bernoulli = best.pop("_continuous_means"), best.pop("bernoulli_")
        for name, value in best.items():
            setattr(self, name, value)
        self._set_means(continuous_means, bernoulli)
        self.n_clusters_ = int(self.n_components)
        if array is not None:
            self.labels_ = self.predict(array)
        return self

    def _em(self, blocks: Blocks, rng: np.random.Generator, device: str) -> dict:
        weights, means, covariances, bernoulli = self._initial_parameters(blocks, rng, device)
        prec_chol = precision_cholesky(covariances, self.covariance_type)
        lower_bound, converged, n_iter = -np.inf, False, 0
        statistics = em_statistics_blockwise if self.covariance_type == "full" else em_statistics
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            extra = () if bernoulli is None else (self._two_valued(bernoulli),)
            nk, sum_x, scatter, loglik, n, *ones = blocks.map_reduce(
                statistics, weights, means, prec_chol, self.covariance_type, device, *extra
            )
            lower_bound = loglik / n
            weights, means, covariances = m_step(nk, sum_x, scatter, means, self.covariance_type, self.reg_covar)
            bernoulli = None if bernoulli is None else discrete_step(nk, ones[0], self.discrete_groups_, self.discrete_prior)
            prec_chol = precision_cholesky(covariances, self.covariance_type)
            if abs(lower_bound - previous) < self.tol:
                converged = True
                break
        return {
            "weights_": weights,
            "_continuous_means": means,
            "covariances_": covariances,
            "precisions_cholesky_": prec_chol,
            "bernoulli_": bernoulli,
            "lower_bound_": float(lower_bound),
            "converged_": converged,
            "n_iter_": n_iter,
        }

    # -- two-valued columns ----------------------------------------------------------------
    def _set_discrete_columns(self, blocks: Blocks) -> None:
        """``discrete_features_``, ``discrete_low_``, ``discrete_scale_`` from the parameter and the data."""
        d = blocks.n_features
        columns = np.empty(0, np.int64)
        if self.discrete_features is not None:
            low_all, high_all, two_valued = blocks.map_reduce(value_range, combine=combine_value_ranges)
            if isinstance(self.discrete_features, str):  # "auto"
                columns = np.flatnonzero(two_valued)
            else:
                columns = self._given_discrete_columns(d, two_valued)
        self.discrete_features_ = columns
        scale = high_all[columns] - low_all[columns] if columns.size else np.zeros(0)
        self.discrete_low_ = low_all[columns].astype(np.float64) if columns.size else np.zeros(0)
        self.discrete_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float64)
        self.discrete_groups_ = np.zeros(0, np.int64)
        if columns.size:
            layout = TwoValued(columns, self.discrete_low_, self.discrete_scale_, np.full(columns.size, -1))
            counts, n_rows = blocks.map_reduce(co_occurrence, layout)
            self.discrete_groups_ = one_hot_groups(columns, counts, n_rows)

    def _given_discrete_columns(self, d: int, two_valued: np.ndarray) -> np.ndarray:
        """The columns ``discrete_features`` names (indices or a mask), checked against the data."""
        given = np.asarray(self.discrete_features)
        if given.dtype == bool and given.shape != (d,):
            raise ValueError(f"discrete_features mask has shape {given.shape}, expected ({d},)")
        columns = np.flatnonzero(given) if given.dtype == bool else np.unique(given.astype(np.int64))
        if columns.size and (columns.min() < 0 or columns.max() >= d):
            raise ValueError(f"discrete_features index {int(columns.max() if columns.max() >= d else columns.min())} is outside 0..{d - 1}")
        if not two_valued[columns].all():
            bad = int(columns[~two_valued[columns]][0])
            raise ValueError(f"discrete_features column {bad} has more than two distinct values; a Bernoulli column takes two")
        return columns

    def _two_valued(self, bernoulli: np.ndarray | None) -> TwoValued | None:
        if not len(getattr(self, "discrete_features_", ())):
            return None
        return TwoValued(self.discrete_features_, self.discrete_low_, self.discrete_scale_, self.discrete_groups_, bernoulli)

    def _set_means(self, continuous_means: np.ndarray, bernoulli: np.ndarray | None) -> None:
        """``means_`` over every column and ``bernoulli_`` from the two parts of the fit."""
        k = continuous_means.shape[0]
        self.bernoulli_ = np.zeros((k, 0)) if bernoulli is None else np.asarray(bernoulli, np.float64)
        if not len(self.discrete_features_):
            self.means_ = continuous_means
            return
        means = np.empty((k, self.n_features_in_))
        means[:, self._continuous_columns()] = continuous_means
        means[:, self.discrete_features_] = self.discrete_low_ + self.bernoulli_ * self.discrete_scale_
        self.means_ = means

    def _continuous_columns(self) -> np.ndarray:
        keep = np.ones(self.n_features_in_, bool)
        keep[self.discrete_features_] = False
        return np.flatnonzero(keep)

    def _initial_parameters(self, blocks: Blocks, rng: np.random.Generator, device: str):
        k = self.n_components
        if self.means_init is not None:
            centers = np.asarray(self.means_init, dtype=np.float64)
            if centers.shape != (k, blocks.n_features):
                raise ValueError(f"means_init has shape {centers.shape}, expected ({k}, {blocks.n_features})")
        elif self.init_params == "kmeans":
            seed = int(rng.integers(2**31))
            km = KMeans(k, n_init=1, random_state=seed, device=self.device).fit(blocks)
            centers = km.cluster_centers_
        else:
            sample = blocks.sample_rows(min(blocks.count_rows(), 200_000), int(rng.integers(2**31)))
            if self.init_params == "k-means++":
                centers = kmeans_plusplus(sample, k, rng, device)
            else:
                centers = sample[rng.choice(sample.shape[0], k, replace=False)]
        two_valued = self._two_valued(None)
        extra = () if two_valued is None else (two_valued,)
        nk, sum_x, scatter, _, _, *ones = blocks.map_reduce(hard_statistics, centers, self.covariance_type, device, *extra)
        continuous = centers if two_valued is None else centers[:, self._continuous_columns()]
        weights, means, covariances = m_step(nk, sum_x, scatter, continuous, self.covariance_type, self.reg_covar)
        bernoulli = None if two_valued is None else discrete_step(nk, ones[0], self.discrete_groups_, self.discrete_prior)
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
            if two_valued is not None:
                means = means[:, self._continuous_columns()]
        if self.precisions_init is not None:
            covariances = covariances_from_precisions(np.asarray(self.precisions_init, np.float64), self.covariance_type)
        return weights, means, covariances, bernoulli

    # -- inference ------------------------------------------------------------------------
    def _log_resp(self, X):
        array = self._check_input(X)
        return self._prepared_mixture().log_responsibilities(array)

    def _prepared_mixture(self) -> PreparedMixture:
        """The fitted parameters as tensors on this model's device, kept per model."""
        device = self._torch_device()
        sources = (self.weights_, self.means_, self.precisions_cholesky_, self.bernoulli_, self.discrete_features_,
                   self.discrete_low_, self.discrete_scale_, self.discrete_groups_)

        def build() -> PreparedMixture:
            two_valued = self._two_valued(self.bernoulli_)
            means = self.means_ if two_valued is None else self.means_[:, self._continuous_columns()]
            return PreparedMixture(self.weights_, means, self.precisions_cholesky_, self.covariance_type, device, two_valued)

        return self._prepared("mixture", (device, self.covariance_type), sources, build)

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of each component for every row, shape (n_samples, n_components)."""
        return np.exp(self._log_resp(X)[0])

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood of every row under the mixture."""
        return self._log_resp(X)[1]

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of ``X``."""
        return float(self.score_samples(X).mean())

    def assign(self, X) -> Assignment:
        """Most probable component and its posterior probability."""
        return _most_probable(self._log_resp(X)[0])

    def assign_detail(self, X) -> tuple[Assignment, np.ndarray]:
        """``(assign(X), predict_proba(X))`` from one pass: what serving answers per record."""
        log_resp = self._log_resp(X)[0]
        return _most_probable(log_resp), np.exp(log_resp)

    def n_parameters(self) -> int:
        """Number of free parameters of the fitted model."""
        check_is_fitted(self, "means_")
        k, d = self.means_.shape
        groups = self.discrete_groups_
        m = len(groups)
        c = d - m
        cov = k * c * (c + 1) / 2 if self.covariance_type == "full" else k * c
        discrete = int((groups < 0).sum()) + sum(int((groups == g).sum()) - 1 for g in np.unique(groups[groups >= 0]))
        return int(cov + k * c + k * discrete + k - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        array = self._check_input(X)
        return float(-2 * self.score(array) * array.shape[0] + self.n_parameters() * np.log(array.shape[0]))

    # -- persistence ----------------------------------------------------------------------
    def _fitted_state(self) -> dict:
        state = {
            "weights_": self.weights_,
            "means_": self.means_,
            "covariances_": self.covariances_,
            "lower_bound_": self.lower_bound_,
            "converged_": bool(self.converged_),
            "n_iter_": int(self.n_iter_),
        }
        if len(self.discrete_features_):  # models without two-valued columns keep their earlier files
            state.update({
                "discrete_features_": self.discrete_features_,
                "discrete_low_": self.discrete_low_,
                "discrete_scale_": self.discrete_scale_,
                "discrete_groups_": self.discrete_groups_,
                "bernoulli_": self.bernoulli_,
            })
        return state

    def _load_fitted_state(self, state: dict) -> None:
        self.weights_ = np.asarray(state["weights_"], np.float64)
        self.means_ = np.asarray(state["means_"], np.float64)
        self.covariances_ = np.asarray(state["covariances_"], np.float64)
        self.precisions_cholesky_ = precision_cholesky(self.covariances_, self.covariance_type)
        self.lower_bound_ = float(state["lower_bound_"])
        self.converged_ = bool(state["converged_"])
        self.n_iter_ = int(state["n_iter_"])
        self.n_clusters_ = int(self.means_.shape[0])
        k = self.means_.shape[0]
        self.discrete_features_ = np.asarray(state.get("discrete_features_", np.zeros(0)), np.int64)
        self.discrete_low_ = np.asarray(state.get("discrete_low_", np.zeros(0)), np.float64)
        self.discrete_scale_ = np.asarray(state.get("discrete_scale_", np.zeros(0)), np.float64)
        self.discrete_groups_ = np.asarray(state.get("discrete_groups_", np.full(len(self.discrete_features_), -1)), np.int64)
        self.bernoulli_ = np.asarray(state.get("bernoulli_", np.zeros((k, 0))), np.float64).reshape(k, -1)


def _most_probable(log_resp: np.ndarray) -> Assignment:
    """Most probable component of every row and its posterior probability."""
    labels = log_resp.argmax(axis=1).astype(np.int64)
    probability = np.exp(log_resp[np.arange(labels.shape[0]), labels])
    return Assignment(labels, probability, None)


def m_step(nk, sum_x, scatter, shift, covariance_type: str, reg_covar: float):
    """Weights, means and covariances from sufficient statistics gathered about ``shift``."""
    nk = np.asarray(nk, np.float64) + 10 * np.finfo(np.float64).eps
    means = sum_x / nk[:, None]
    delta = means - np.asarray(shift, np.float64)
    if covariance_type == "full":
        covariances = scatter / nk[:, None, None] - np.einsum("kd,ke->kde", delta, delta)
        covariances += reg_covar * np.eye(means.shape[1])[None, :, :]
    else:
        covariances = scatter / nk[:, None] - delta * delta + reg_covar
    weights = nk / nk.sum()
    return weights, means, covariances


def discrete_step(nk, ones, groups, prior: float) -> np.ndarray:
    """MAP emission probabilities of the discrete columns under a Beta / Dirichlet(prior) prior:
    a Bernoulli column ``(ones + a) / (n_k + 2a)``; a one-hot block's columns
    ``(ones + a) / (sum of the block's ones + m a)`` (m columns; they sum to 1)."""
    ones = np.asarray(ones, np.float64)
    groups = np.asarray(groups)
    out = (ones + prior) / (np.asarray(nk, np.float64)[:, None] + 2.0 * prior)
    for group in np.unique(groups[groups >= 0]):
        members = groups == group
        out[:, members] = (ones[:, members] + prior) / (ones[:, members].sum(axis=1, keepdims=True) + members.sum() * prior)
    return out


def co_occurrence(block, layout: TwoValued) -> tuple[np.ndarray, int]:
    """``(U^T U, rows)`` of a block's rescaled two-valued columns (how often two are 1 together)."""
    binary = layout.unit_values(block)
    return binary.T @ binary, binary.shape[0]


def one_hot_groups(columns: np.ndarray, counts: np.ndarray, n_rows: int) -> np.ndarray:
    """Group ids of one-hot blocks among the two-valued ``columns`` (-1: a Bernoulli of its own).

    Adjacent columns (consecutive feature indices, as a categorical featurizer writes its
    block) join a group while they are never 1 on the same row as a member; a group whose
    ones add up to every row (exactly one 1 per row) is a categorical variable, any other
    run of columns stays independent Bernoullis (two rare flags that never meet).
    """
    groups = np.full(len(columns), -1, np.int64)
    start, next_id = 0, 0
    for end in range(1, len(columns) + 1):
        member_of_run = (
            end < len(columns)
            and columns[end] == columns[end - 1] + 1
            and not counts[end, start:end].any()
        )
        if member_of_run:
            continue
        if end - start >= 2 and np.trace(counts[start:end, start:end]) == n_rows:
            groups[start:end] = next_id
            next_id += 1
        start = end
    return groups


def value_range(block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of a block: ``(min, max, only those two values)``."""
    x = np.asarray(block)
    if x.shape[0] == 0:
        return np.full(x.shape[1], np.inf), np.full(x.shape[1], -np.inf), np.ones(x.shape[1], bool)
    low, high = x.min(axis=0), x.max(axis=0)
    return low.astype(np.float64), high.astype(np.float64), ((x == low) | (x == high)).all(axis=0)


def combine_value_ranges(a, b):
    """:func:`value_range` of two blocks together: two-valued when both are and their values agree."""
    low, high = np.minimum(a[0], b[0]), np.maximum(a[1], b[1])
    ok = a[2] & b[2]
    for part in (a, b):
        empty = part[0] > part[1]  # a block without rows: (inf, -inf)
        ok &= empty | (((part[0] == low) | (part[0] == high)) & ((part[1] == low) | (part[1] == high)))
    return low, high, ok


def precision_cholesky(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors of the precision matrices (scikit-learn's parametrisation)."""
    if covariance_type == "diag":
        if np.any(covariances <= 0.0):
            raise ValueError(ILL_DEFINED)
        return 1.0 / np.sqrt(covariances)
    k, d, _ = covariances.shape
    out = np.empty_like(covariances)
    identity = np.eye(d)
    for j in range(k):
        try:
            lower = np.linalg.cholesky(covariances[j])
        except np.linalg.LinAlgError as exc:
            raise ValueError(ILL_DEFINED) from exc
        if not np.isfinite(lower).all():  # scipy's own check, without its per-call validation layers
            raise ValueError("array must not contain infs or NaNs")
        out[j] = solve_triangular(lower, identity, lower=True, check_finite=False).T
    return out


def covariances_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Covariances matching user-given precisions (inverse matrices, or reciprocals for diag)."""
    if covariance_type == "diag":
        return 1.0 / precisions
    return np.linalg.inv(precisions)
