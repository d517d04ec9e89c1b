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

from ._torch import chunk_rows, matmul, to_numpy, to_tensor
from .kmeans import _Centers

COVARIANCE_TYPES = ("full", "diag")
EM_CHUNK_BYTES = 16 << 20  # per-chunk (rows x k x d) float64 work arrays


def _log_gaussian(x: torch.Tensor, means: torch.Tensor, prec_chol: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """log N(x | mean_k, cov_k) for every row and component, shape (n, k).

    Full covariance: ``y_k = x P_k - mu_k P_k`` for all k with one GEMM of ``x`` against
    the (d, k*d) stack of precision factors.
    """
    n, d = x.shape
    k = means.shape[0]
    if covariance_type == "full":
        shift = torch.einsum("kd,kde->ke", means, prec_chol)
        y = matmul(x, prec_chol.permute(1, 0, 2).reshape(d, k * d)).reshape(n, k, d) - shift.unsqueeze(0)
        out = (y * y).sum(dim=2)
        log_det = torch.log(torch.diagonal(prec_chol, dim1=1, dim2=2)).sum(dim=1)
    else:
        precision = prec_chol * prec_chol
        out = matmul(x, (-2.0 * means * precision).T)
        out += (means * means * precision).sum(dim=1).unsqueeze(0)
        out += matmul(x * x, precision.T)
        log_det = torch.log(prec_chol).sum(dim=1)
    return -0.5 * (d * math.log(2 * math.pi) + out) + log_det.unsqueeze(0)


def _params(weights, means, prec_chol, device):
    return (
        to_tensor(weights, device, torch.float64),
        to_tensor(means, device, torch.float64),
        to_tensor(prec_chol, device, torch.float64),
    )


def log_responsibilities(block: Any, weights, means, prec_chol, covariance_type: str, device: str = "cpu"):
    """``(log_resp[n, k], log_prob_norm[n])`` of a block under the mixture (numpy float64)."""
    x_all = to_tensor(block, device, torch.float64)
    w, mu, pc = _params(weights, means, prec_chol, device)
    log_w = torch.log(w).unsqueeze(0)
    step = chunk_rows(x_all.shape[0], mu.shape[0] * mu.shape[1], itemsize=8, budget=EM_CHUNK_BYTES)
    log_resp, norms = [], []
    for start in range(0, x_all.shape[0], step):
        weighted = _log_gaussian(x_all[start : start + step], mu, pc, covariance_type) + log_w
        norm = torch.logsumexp(weighted, dim=1)
        log_resp.append(weighted - norm.unsqueeze(1))
        norms.append(norm)
    if not norms:
        return np.empty((0, mu.shape[0])), np.empty(0)
    return to_numpy(torch.cat(log_resp)), to_numpy(torch.cat(norms))


def _scatter(
    x: torch.Tensor, resp: torch.Tensor, weighted_sum: torch.Tensor, shift: torch.Tensor, covariance_type: str
) -> torch.Tensor:
    """sum_i resp_ik (x_i - shift_k)(x_i - shift_k)^T (full) or its diagonal, for every k
    (``weighted_sum`` is ``R^T x``, which the caller also needs).

    Expanded about the shift: ``R^T (x x^T) - shift (R^T x)^T - (R^T x) shift^T + N shift
    shift^T``. Full: the products ``x_i x_i^T`` (upper triangle, ``d(d+1)/2`` per row) are
    formed once per chunk whatever k is, and one (k x n) @ (n x d(d+1)/2) GEMM weighs
    them for all components, instead of a (k, n, d) temporary per component. Diagonal:
    ``R^T (x*x)``. Callers pass ``x`` already centred near the data (see
    :func:`em_statistics`), so the expansion does not cancel (float64).
    """
    counts = resp.sum(dim=0)
    if covariance_type == "full":
        k, d = shift.shape
        rows, cols = _upper_triangle(d, x.device)
        second = torch.empty(k, d, d, dtype=x.dtype, device=x.device)
        upper = matmul(resp.T, x[:, rows] * x[:, cols])
        second[:, rows, cols] = upper
        second[:, cols, rows] = upper
        cross = shift.unsqueeze(2) * weighted_sum.unsqueeze(1)
        return second - cross - cross.transpose(1, 2) + counts.view(k, 1, 1) * shift.unsqueeze(2) * shift.unsqueeze(1)
    return matmul(resp.T, x * x) - 2.0 * shift * weighted_sum + counts.unsqueeze(1) * shift * shift


def _em_chunk_rows(n_rows: int, k: int, d: int, covariance_type: str) -> int:
    """Rows per EM chunk: the widest per-row work array ((k x d) terms, or the d(d+1)/2
    outer-product terms of the full scatter) stays within EM_CHUNK_BYTES."""
    width = k * d if covariance_type != "full" else max(k * d, d * (d + 1) // 2)
    return chunk_rows(n_rows, width, itemsize=8, budget=EM_CHUNK_BYTES)


def _upper_triangle(d: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the upper triangle (diagonal included) of a d x d matrix."""
    index = torch.triu_indices(d, d, device=device)
    return index[0], index[1]


def em_statistics(block: Any, weights, means, prec_chol, covariance_type: str, device: str = "cpu"):
    """E-step of one block and its sufficient statistics about the current means.

    Returns
    -------
    tuple
        ``(nk[k], sum_x[k, d], scatter[k, d, d] or [k, d], log_likelihood_sum, n_rows)``.
    """
    x_all = to_tensor(block, device, torch.float64)
    w, mu, pc = _params(weights, means, prec_chol, device)
    k, d = mu.shape
    origin = mu.mean(dim=0)  # work near the data: no cancellation in the diagonal expansion
    mu = mu - origin
    log_w = torch.log(w).unsqueeze(0)
    nk = torch.zeros(k, dtype=torch.float64, device=device)
    sum_x = torch.zeros(k, d, dtype=torch.float64, device=device)
    scatter = torch.zeros((k, d, d) if covariance_type == "full" else (k, d), dtype=torch.float64, device=device)
    loglik = torch.zeros((), dtype=torch.float64, device=device)
    step = _em_chunk_rows(x_all.shape[0], k, d, covariance_type)
    for start in range(0, x_all.shape[0], step):
        x = x_all[start : start + step] - origin
        weighted = _log_gaussian(x, mu, pc, covariance_type) + log_w
        norm = torch.logsumexp(weighted, dim=1)
        resp = torch.exp(weighted - norm.unsqueeze(1))
        nk += resp.sum(dim=0)
        weighted_sum = matmul(resp.T, x)
        sum_x += weighted_sum
        scatter += _scatter(x, resp, weighted_sum, mu, covariance_type)
        loglik += norm.sum()
    sum_x += nk.unsqueeze(1) * origin
    return to_numpy(nk), to_numpy(sum_x), to_numpy(scatter), float(loglik), int(x_all.shape[0])


def hard_statistics(block: Any, centers, covariance_type: str, device: str = "cpu"):
    """The statistics of :func:`em_statistics` for hard nearest-center responsibilities.

    Used to initialise a mixture from k-means centers (scatter is about ``centers``).
    """
    x_all = to_tensor(block, device, torch.float64)
    prepared = _Centers(centers, device, torch.float64)
    origin = prepared.shift
    c = to_tensor(centers, device, torch.float64) - origin
    k, d = c.shape
    nk = torch.zeros(k, dtype=torch.float64, device=device)
    sum_x = torch.zeros(k, d, dtype=torch.float64, device=device)
    scatter = torch.zeros((k, d, d) if covariance_type == "full" else (k, d), dtype=torch.float64, device=device)
    step = _em_chunk_rows(x_all.shape[0], k, d, covariance_type)
    for start in range(0, x_all.shape[0], step):
        chunk = x_all[start : start + step]
        labels, _ = prepared.nearest(chunk)
        x = chunk - origin
        resp = torch.nn.functional.one_hot(labels, k).to(torch.float64)
        nk += resp.sum(dim=0)
        weighted_sum = matmul(resp.T, x)
        sum_x += weighted_sum
        scatter += _scatter(x, resp, weighted_sum, c, covariance_type)
    sum_x += nk.unsqueeze(1) * origin
    return to_numpy(nk), to_numpy(sum_x), to_numpy(scatter), 0.0, int(x_all.shape[0])
