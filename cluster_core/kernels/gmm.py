"""Gaussian-mixture EM kernels: per-block sufficient statistics in float64.

Scatter matrices are accumulated about a *shift* (the previous means), which keeps the
M-step's ``S / n - delta delta^T`` free of the cancellation that ``E[xx^T] - mu mu^T``
suffers on data far from the origin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..blocks import threaded_blocks
from ._torch import chunk_rows, matmul, to_numpy, to_tensor
from .kmeans import _Centers

COVARIANCE_TYPES = ("full", "diag")
EM_CHUNK_BYTES = 16 << 20  # per-chunk (rows x k x d) float64 work arrays


class TwoValued:
    """The two-valued columns of a mixed mixture: Bernoulli and categorical emissions instead of Gaussian ones.

    A column with at most two values ``low`` and ``low + scale`` (one-hot categories, flags,
    missing-value indicators) is read as ``u = (x - low) / scale`` in [0, 1]. Columns with
    the same ``groups`` id >= 0 form one categorical variable (a one-hot block: exactly one
    ``u`` is 1 per row), ``log P = sum_j u_j log p_kj`` with ``sum_j p_kj = 1``; a column
    with group -1 is its own Bernoulli, ``u log p + (1 - u) log(1 - p)``. Within a component
    they are independent of each other and of the Gaussian (continuous) columns. A Gaussian
    on such a column is degenerate: a component that holds only zeros there has variance
    ``reg_covar`` and a likelihood no continuous column can outweigh.

    ``columns`` are indices into the rows' features; ``probabilities`` (k, len(columns)) are
    the components' p_kj (None while only statistics are gathered, as in the initial
    hard-assignment pass). Values are clipped to [0, 1] after rescaling, so a value never
    seen in the fit (a new category's all-zero one-hot row) stays inside the model.
    """

    def __init__(self, columns, low, scale, groups, probabilities=None):
        self.columns = np.asarray(columns, np.int64)
        self.low = np.asarray(low, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.groups = np.asarray(groups, np.int64)
        self.probabilities = None if probabilities is None else np.asarray(probabilities, np.float64)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(continuous columns, rescaled two-valued columns)`` of a float64 block."""
        continuous, columns, low, scale = self._tensors(x.device, x.shape[1])
        return x[:, continuous], ((x[:, columns] - low) / scale).clamp_(0.0, 1.0)

    def _tensors(self, device: torch.device, n_features: int) -> tuple:
        """The index and scale tensors of :meth:`split`, made once per device and width (EM splits
        every block on every iteration; a served model every request)."""
        cache = self.__dict__.setdefault("_tensor_cache", {})
        key = (str(device), n_features)
        if key not in cache:
            keep = np.ones(n_features, bool)
            keep[self.columns] = False
            cache[key] = (
                torch.as_tensor(np.flatnonzero(keep), device=device),
                torch.as_tensor(self.columns, device=device),
                to_tensor(self.low, device, torch.float64),
                to_tensor(self.scale, device, torch.float64),
            )
        return cache[key]

    def unit_values(self, x: np.ndarray) -> np.ndarray:
        """:meth:`split`'s rescaled two-valued columns of a numpy matrix (float64)."""
        return unit_two_valued(x, self.columns, self.low, self.scale)

    def log_terms(self, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A (k, m), c (k,))`` with log P(u | k) = u . A_k + c_k: per column the log-weight
        of a one minus that of a zero (a zero weighs nothing in a categorical block)."""
        log_one, log_zero = emission_logs(self.probabilities, self.groups)
        return to_tensor(log_one - log_zero, device, torch.float64), to_tensor(log_zero.sum(axis=1), device, torch.float64)


def unit_two_valued(x: np.ndarray, columns, low, scale) -> np.ndarray:
    """Two-valued columns of ``x`` rescaled to [0, 1]: ``(x - low) / scale``, clipped (:class:`TwoValued`)."""
    return np.clip((np.asarray(x, np.float64)[:, columns] - low) / scale, 0.0, 1.0)


def emission_logs(probabilities: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per component and two-valued column: ``(log-weight of u = 1, log-weight of u = 0)``."""
    p = np.asarray(probabilities, np.float64)
    bernoulli = np.asarray(groups) < 0
    return np.log(p), np.where(bernoulli[None, :], np.log1p(-np.where(bernoulli[None, :], p, 0.0)), 0.0)


def _log_gaussian(
    x: torch.Tensor, means: torch.Tensor, prec_chol: torch.Tensor, covariance_type: str, outer: torch.Tensor | None = None
) -> torch.Tensor:
    """log N(x | mean_k, cov_k) for every row and component, shape (n, k).

    Full covariance: the Mahalanobis form ``(x - mu)^T L (x - mu)`` (``L = P P^T``, the
    precision) expanded as ``vec(x x^T) . vec(L) - 2 x . (L mu) + mu^T L mu``: two GEMMs
    of the chunk's per-row outer products (``outer``, shared with the M-step, see
    :func:`_moments`) and of ``x`` against all k components at once. Diagonal: one GEMM
    of ``[x, x*x]`` against ``[-2 mu L, L]``. In float64
    on data centred near the means (as :func:`em_statistics` passes it) the expansion
    keeps about 1e-10 relative accuracy.
    """
    return _log_gaussian_with(x, _gaussian_terms(means, prec_chol, covariance_type), covariance_type, outer, means.shape[0])


def _gaussian_terms(means: torch.Tensor, prec_chol: torch.Tensor, covariance_type: str) -> tuple | None:
    """What :func:`_log_gaussian` derives from the parameters alone (None without continuous columns):
    full ``(precision flattened and transposed, (L mu)^T, mu^T L mu, log det)``; diag ``([-2 mu L, L]^T,
    mu^T L mu, log det)``."""
    d = means.shape[1]
    if d == 0:
        return None
    if covariance_type == "full":
        precision = prec_chol @ prec_chol.transpose(1, 2)  # (k, d, d)
        precision_means = torch.einsum("kde,ke->kd", precision, means)
        log_det = torch.log(torch.diagonal(prec_chol, dim1=1, dim2=2)).sum(dim=1)
        return (precision.reshape(-1, d * d).T, precision_means.T, (means * precision_means).sum(dim=1).unsqueeze(0),
                log_det.unsqueeze(0))
    precision = prec_chol * prec_chol
    return (torch.cat([-2.0 * means * precision, precision], dim=1).T, (means * means * precision).sum(dim=1).unsqueeze(0),
            torch.log(prec_chol).sum(dim=1).unsqueeze(0))


def _log_gaussian_with(x: torch.Tensor, terms: tuple | None, covariance_type: str, outer: torch.Tensor | None = None,
                       k: int | None = None) -> torch.Tensor:
    """:func:`_log_gaussian` from its :func:`_gaussian_terms` (``k`` components when ``terms`` is None)."""
    n, d = x.shape
    if terms is None:  # every column two-valued (see TwoValued): no Gaussian part
        return torch.zeros((n, k), dtype=x.dtype, device=x.device)
    if covariance_type == "full":
        precision_t, precision_means_t, mean_term, log_det = terms
        outer = _moments(x, covariance_type) if outer is None else outer
        out = matmul(outer, precision_t)
        out -= 2.0 * matmul(x, precision_means_t)
        out += mean_term
        out.clamp_(min=0.0)
    else:
        weights_t, mean_term, log_det = terms
        moments = _moments(x, covariance_type) if outer is None else outer
        out = matmul(moments, weights_t)
        out += mean_term
    return -0.5 * (d * math.log(2 * math.pi) + out) + log_det


def _moments(x: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """Per-row second-moment terms, formed once per chunk and shared by the E- and M-step:
    full: ``x_i x_i^T`` flattened, shape (n, d * d); diag: ``[x_i, x_i * x_i]``, (n, 2d)."""
    n, d = x.shape
    if covariance_type == "full":
        return (x.unsqueeze(2) * x.unsqueeze(1)).reshape(n, d * d)
    return torch.cat([x, x * x], dim=1)


def _params(weights, means, prec_chol, device):
    return (
        to_tensor(weights, device, torch.float64),
        to_tensor(means, device, torch.float64),
        to_tensor(prec_chol, device, torch.float64),
    )


class PreparedMixture:
    """A fitted mixture's parameters as the tensors :func:`log_responsibilities` needs on ``device``:
    converted and derived once (a fitted model keeps one), the same numbers every call would compute.

    With ``two_valued`` (fitted probabilities), ``means`` and ``prec_chol`` are the continuous
    columns' and the two-valued columns add their discrete log-likelihood.
    """

    def __init__(self, weights, means, prec_chol, covariance_type: str, device: str = "cpu",
                 two_valued: TwoValued | None = None):
        self.covariance_type = covariance_type
        self.device = device
        self.two_valued = two_valued
        if two_valued is not None:
            log_odds, log_q = two_valued.log_terms(device)
            self.log_odds_t, self.log_q = log_odds.T, log_q.unsqueeze(0)
        w, mu, pc = _params(weights, means, prec_chol, device)
        self.origin = mu.mean(dim=0)  # work near the data (see _log_gaussian)
        mu = mu - self.origin
        self.k, self.d = mu.shape
        self.log_w = torch.log(w).unsqueeze(0)
        self.terms = _gaussian_terms(mu, pc, covariance_type)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return (x, None) if self.two_valued is None else self.two_valued.split(x)

    def log_responsibilities(self, block: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(log_resp[n, k], log_prob_norm[n])`` of a block (numpy float64)."""
        x_all, binary = self._split(to_tensor(block, self.device, torch.float64))
        step = _em_chunk_rows(x_all.shape[0], self.k, self.d, self.covariance_type)
        log_resp, norms = [], []
        for start in range(0, x_all.shape[0], step):
            x = x_all[start : start + step] - self.origin
            weighted = _log_gaussian_with(x, self.terms, self.covariance_type, k=self.k) + self.log_w
            if binary is not None:
                weighted += matmul(binary[start : start + step], self.log_odds_t) + self.log_q
            norm = torch.logsumexp(weighted, dim=1)
            log_resp.append(weighted - norm.unsqueeze(1))
            norms.append(norm)
        if not norms:
            return np.empty((0, self.k)), np.empty(0)
        return to_numpy(torch.cat(log_resp)), to_numpy(torch.cat(norms))


def log_responsibilities(block: Any, weights, means, prec_chol, covariance_type: str, device: str = "cpu", two_valued: TwoValued | None = None):
    """``(log_resp[n, k], log_prob_norm[n])`` of a block under the mixture (numpy float64).

    With ``two_valued`` (fitted probabilities), ``means`` and ``prec_chol`` are the
    continuous columns' and those columns add their Bernoulli log-likelihood.
    A fitted model keeps its :class:`PreparedMixture` instead of calling this per request.
    """
    return PreparedMixture(weights, means, prec_chol, covariance_type, device, two_valued).log_responsibilities(block)


def _scatter(
    counts: torch.Tensor, weighted_sum: torch.Tensor, second: torch.Tensor, shift: torch.Tensor, covariance_type: str
) -> torch.Tensor:
    """sum_i resp_ik (x_i - shift_k)(x_i - shift_k)^T (full) or its diagonal, for every k,
    from ``counts`` = ``R^T 1``, ``weighted_sum`` = ``R^T x`` and ``second`` = ``R^T
    vec(x x^T)`` (full, k x d^2) or ``R^T (x*x)`` (diag): ``second - shift (R^T x)^T -
    (R^T x) shift^T + N shift shift^T``. The callers form ``second`` with one GEMM over the
    chunk's :func:`_moments` for all components (no (k, n, d) temporary), on ``x`` centred
    near the data (see :func:`em_statistics`), so the expansion does not cancel (float64).
    """
    if covariance_type == "full":
        k, d = shift.shape
        cross = shift.unsqueeze(2) * weighted_sum.unsqueeze(1)
        return second.reshape(k, d, d) - cross - cross.transpose(1, 2) + counts.view(k, 1, 1) * shift.unsqueeze(2) * shift.unsqueeze(1)
    return second - 2.0 * shift * weighted_sum + counts.unsqueeze(1) * shift * shift


def _weighted_moments(resp: torch.Tensor, x: torch.Tensor, moments: torch.Tensor, covariance_type: str):
    """``(R^T 1, R^T x, second)`` of a chunk, ``second`` as :func:`_scatter` takes it."""
    counts = resp.sum(dim=0)
    if covariance_type == "full":
        return counts, matmul(resp.T, x), matmul(resp.T, moments)
    d = x.shape[1]
    both = matmul(resp.T, moments)
    return counts, both[:, :d], both[:, d:]


def _em_chunk_rows(n_rows: int, k: int, d: int, covariance_type: str) -> int:
    """Rows per EM chunk: the widest per-row work array ((k x d) terms, or the d^2
    moment terms of the full covariance) stays within EM_CHUNK_BYTES."""
    width = k * d if covariance_type != "full" else max(k * d, d * d)
    return chunk_rows(n_rows, width, itemsize=8, budget=EM_CHUNK_BYTES)


def em_statistics(block: Any, weights, means, prec_chol, covariance_type: str, device: str = "cpu", two_valued: TwoValued | None = None):
    """E-step of one block and its sufficient statistics about the current means.

    With ``two_valued``, ``means`` and ``prec_chol`` are those of the other (continuous)
    columns, the two-valued columns add their Bernoulli log-likelihood, and the result has
    one more entry: ``R^T u`` (k, m), the responsibility-weighted counts of their ones.

    Returns
    -------
    tuple
        ``(nk[k], sum_x[k, d], scatter[k, d, d] or [k, d], log_likelihood_sum, n_rows)``
        (``d`` continuous columns), plus ``ones[k, m]`` with ``two_valued``.
    """
    x_all = to_tensor(block, device, torch.float64)
    binary = None
    if two_valued is not None:
        x_all, binary = two_valued.split(x_all)
        log_odds, log_q = two_valued.log_terms(device)
        ones = torch.zeros(log_odds.shape, dtype=torch.float64, device=device)
    w, mu, pc = _params(weights, means, prec_chol, device)
    k, d = mu.shape
    origin = mu.mean(dim=0)  # work near the data: no cancellation in the expansions
    mu = mu - origin
    log_w = torch.log(w).unsqueeze(0)
    nk = torch.zeros(k, dtype=torch.float64, device=device)
    sum_x = torch.zeros(k, d, dtype=torch.float64, device=device)
    scatter = torch.zeros((k, d, d) if covariance_type == "full" else (k, d), dtype=torch.float64, device=device)
    loglik = torch.zeros((), dtype=torch.float64, device=device)
    step = _em_chunk_rows(x_all.shape[0], k, d, covariance_type)
    for start in range(0, x_all.shape[0], step):
        x = x_all[start : start + step] - origin
        moments = _moments(x, covariance_type)
        weighted = _log_gaussian(x, mu, pc, covariance_type, moments) + log_w
        if binary is not None:
            weighted += matmul(binary[start : start + step], log_odds.T) + log_q.unsqueeze(0)
        norm = torch.logsumexp(weighted, dim=1)
        resp = torch.exp(weighted - norm.unsqueeze(1))
        counts, weighted_sum, second = _weighted_moments(resp, x, moments, covariance_type)
        if binary is not None:
            ones += matmul(resp.T, binary[start : start + step])
        nk += counts
        sum_x += weighted_sum
        scatter += _scatter(counts, weighted_sum, second, mu, covariance_type)
        loglik += norm.sum()
    sum_x += nk.unsqueeze(1) * origin
    out = (to_numpy(nk), to_numpy(sum_x), to_numpy(scatter), float(loglik), int(x_all.shape[0]))
    return out if binary is None else out + (to_numpy(ones),)


@threaded_blocks
def em_statistics_blockwise(block: Any, weights, means, prec_chol, covariance_type: str, device: str = "cpu", two_valued: TwoValued | None = None):
    """:func:`em_statistics` with in-memory blocks run one per thread, each single-threaded.

    Used for full covariances: their per-chunk work is a few (n x d^2) GEMMs that scale
    better across blocks than inside one (200k x 16, k = 16 on 2 cores: 4.2 s instead of
    6.3 s for 20 iterations); diagonal statistics stay multi-threaded per block.
    """
    return em_statistics(block, weights, means, prec_chol, covariance_type, device, two_valued)


def hard_statistics(block: Any, centers, covariance_type: str, device: str = "cpu", two_valued: TwoValued | None = None):
    """The statistics of :func:`em_statistics` for hard nearest-center responsibilities.

    Used to initialise a mixture from k-means centers (nearest over all columns; scatter is
    about the centers' continuous part, see :class:`TwoValued` for the extra ``ones``).
    """
    x_full = to_tensor(block, device, torch.float64)
    prepared = _Centers(centers, device, torch.float64)
    x_all, binary = (x_full, None) if two_valued is None else two_valued.split(x_full)
    center_part = to_tensor(centers, device, torch.float64)
    if two_valued is not None:
        center_part, _ = two_valued.split(center_part)
    origin = center_part.mean(dim=0)  # the centers' mean (what _Centers shifts by), of the Gaussian columns
    c = center_part - origin
    k, d = c.shape
    nk = torch.zeros(k, dtype=torch.float64, device=device)
    sum_x = torch.zeros(k, d, dtype=torch.float64, device=device)
    scatter = torch.zeros((k, d, d) if covariance_type == "full" else (k, d), dtype=torch.float64, device=device)
    step = _em_chunk_rows(x_all.shape[0], k, d, covariance_type)
    ones = None if binary is None else torch.zeros((k, binary.shape[1]), dtype=torch.float64, device=device)
    for start in range(0, x_all.shape[0], step):
        labels, _ = prepared.nearest(x_full[start : start + step])
        x = x_all[start : start + step] - origin
        resp = torch.nn.functional.one_hot(labels, k).to(torch.float64)
        counts, weighted_sum, second = _weighted_moments(resp, x, _moments(x, covariance_type), covariance_type)
        nk += counts
        sum_x += weighted_sum
        scatter += _scatter(counts, weighted_sum, second, c, covariance_type)
        if ones is not None:
            ones += matmul(resp.T, binary[start : start + step])
    sum_x += nk.unsqueeze(1) * origin
    out = (to_numpy(nk), to_numpy(sum_x), to_numpy(scatter), 0.0, int(x_all.shape[0]))
    return out if ones is None else out + (to_numpy(ones),)
