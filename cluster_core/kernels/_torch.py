"""Tensor plumbing shared by the kernels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

CHUNK_BYTES = 64 << 20  # upper bound on one chunk's (rows x k) distance matrix


def to_tensor(block: Any, device: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """View ``block`` (numpy, cupy via ``__cuda_array_interface__``, or torch) as a tensor on ``device``."""
    if isinstance(block, torch.Tensor):
        tensor = block
    elif isinstance(block, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(block))
    else:
        tensor = torch.as_tensor(block)
    return tensor.to(device=device, dtype=dtype)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Copy a tensor to a numpy array on the host."""
    return tensor.detach().cpu().numpy()


def chunk_rows(n_rows: int, n_cols: int, itemsize: int = 4) -> int:
    """Rows per chunk so that a (rows x n_cols) matrix stays under CHUNK_BYTES."""
    return max(256, min(max(n_rows, 1), CHUNK_BYTES // max(1, n_cols * itemsize)))


def squared_distances(x: torch.Tensor, centers: torch.Tensor, center_sqnorms: torch.Tensor) -> torch.Tensor:
    """``||x - c||^2`` for all pairs, via one GEMM, clamped at 0 (no sqrt)."""
    dist = torch.addmm(center_sqnorms.unsqueeze(0), x, centers.T, beta=1.0, alpha=-2.0)
    dist += (x * x).sum(dim=1, keepdim=True)
    return dist.clamp_(min=0.0)
