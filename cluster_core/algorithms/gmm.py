"""Gaussian mixture fitted by EM over blocks (full or diagonal covariance)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.linalg import solve_triangular
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..blocks import Blocks, single_threaded_when_small
from ..kernels.gmm import em_statistics, em_statistics_blockwise, hard_statistics, log_responsibilities
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

    Attributes
    ----------
    weights_, means_, covariances_, precisions_cholesky_ : ndarray
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

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Run EM ``n_init`` times and keep the parameters with the best likelihood."""
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
        best = None
        for _ in range(self.n_init):
            result = self._em(blocks, rng, device)
            if best is None or result["lower_bound_"] > best["lower_bound_"]:
                best = result
        for name, value in best.items():
            setattr(self, name, value)
        self.n_clusters_ = int(self.n_components)
        if array is not None:
            self.labels_ = self.predict(array)
        return self

    def _em(self, blocks: Blocks, rng: np.random.Generator, device: str) -> dict:
        weights, means, covariances = self._initial_parameters(blocks, rng, device)
        prec_chol = precision_cholesky(covariances, self.covariance_type)
        lower_bound, converged, n_iter = -np.inf, False, 0
        statistics = em_statistics_blockwise if self.covariance_type == "full" else em_statistics
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            nk, sum_x, scatter, loglik, n = blocks.map_reduce(
                statistics, weights, means, prec_chol, self.covariance_type, device
            )
            lower_bound = loglik / n
            weights, means, covariances = m_step(nk, sum_x, scatter, means, self.covariance_type, self.reg_covar)
            prec_chol = precision_cholesky(covariances, self.covariance_type)
            if abs(lower_bound - previous) < self.tol:
                converged = True
                break
        return {
            "weights_": weights,
            "means_": means,
            "covariances_": covariances,
            "precisions_cholesky_": prec_chol,
            "lower_bound_": float(lower_bound),
            "converged_": converged,
            "n_iter_": n_iter,
        }

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
        nk, sum_x, scatter, _, _ = blocks.map_reduce(hard_statistics, centers, self.covariance_type, device)
        weights, means, covariances = m_step(nk, sum_x, scatter, centers, self.covariance_type, self.reg_covar)
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is not None:
            covariances = covariances_from_precisions(np.asarray(self.precisions_init, np.float64), self.covariance_type)
        return weights, means, covariances

    # -- inference ------------------------------------------------------------------------
    def _log_resp(self, X):
        array = self._check_input(X)
        return log_responsibilities(
            array, self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type, self._torch_device()
        )

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
        log_resp = self._log_resp(X)[0]
        labels = log_resp.argmax(axis=1).astype(np.int64)
        probability = np.exp(log_resp[np.arange(labels.shape[0]), labels])
        return Assignment(labels, probability, None)

    def n_parameters(self) -> int:
        """Number of free parameters of the fitted model."""
        check_is_fitted(self, "means_")
        k, d = self.means_.shape
        cov = k * d * (d + 1) / 2 if self.covariance_type == "full" else k * d
        return int(cov + k * d + k - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        array = self._check_input(X)
        return float(-2 * self.score(array) * array.shape[0] + self.n_parameters() * np.log(array.shape[0]))

    # -- persistence ----------------------------------------------------------------------
    def _fitted_state(self) -> dict:
        return {
            "weights_": self.weights_,
            "means_": self.means_,
            "covariances_": self.covariances_,
            "lower_bound_": self.lower_bound_,
            "converged_": bool(self.converged_),
            "n_iter_": int(self.n_iter_),
        }

    def _load_fitted_state(self, state: dict) -> None:
        self.weights_ = np.asarray(state["weights_"], np.float64)
        self.means_ = np.asarray(state["means_"], np.float64)
        self.covariances_ = np.asarray(state["covariances_"], np.float64)
        self.precisions_cholesky_ = precision_cholesky(self.covariances_, self.covariance_type)
        self.lower_bound_ = float(state["lower_bound_"])
        self.converged_ = bool(state["converged_"])
        self.n_iter_ = int(state["n_iter_"])
        self.n_clusters_ = int(self.means_.shape[0])


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
