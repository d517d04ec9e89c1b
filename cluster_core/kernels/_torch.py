"""Tensor plumbing shared by the kernels.

Kernels are written in torch and run on ``cpu`` or ``cuda``. Two primitives take a
different library on the CPU when it is faster there: the GEMM (torch's CPU build links
MKL, which is slow on some CPUs — e.g. AMD EPYC — where numpy's OpenBLAS is 2-3x faster;
chosen once per process by a short calibration, see :func:`cpu_gemm_backend`) and the
row-wise argmin of the score matrix (a numba loop, much faster than torch's CPU reduction).

Chunks are sized per device: on the CPU a chunk's score matrix stays in cache
(:data:`CHUNK_BYTES`); on a GPU it is as large as a share of the free device memory allows
(:func:`device_chunk_bytes`), so that a pass is a few large kernel launches, not hundreds of
small ones with the GPU idle between them.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import numpy as np
import torch

CHUNK_BYTES = 2 << 20  # a chunk's (k x rows) score matrix stays about this size: in cache
CHUNK_ROWS = 32768  # at most this many rows per chunk
DEVICE_CHUNK_BYTES = 256 << 20  # on a GPU: a chunk's score matrix up to this size ...
DEVICE_CHUNK_SHARE = 16  # ... and at most this fraction (1/16) of the free device memory


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


def device_free_bytes(device: str) -> int | None:
    """Free memory of a CUDA ``device`` in bytes (``torch.cuda.mem_get_info``); None for the CPU."""
    if torch.device(device).type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def device_chunk_bytes(device: str) -> int:
    """Bytes of a chunk's score matrix on ``device``: :data:`CHUNK_BYTES` (cache-sized) on the
    CPU; on a GPU :data:`DEVICE_CHUNK_BYTES`, at most 1/:data:`DEVICE_CHUNK_SHARE` of its free memory."""
    free = device_free_bytes(device)
    if free is None:
        return CHUNK_BYTES
    return max(CHUNK_BYTES, min(DEVICE_CHUNK_BYTES, free // DEVICE_CHUNK_SHARE))


def chunk_rows(n_rows: int, n_cols: int, itemsize: int = 4, budget: int | None = None, device: str = "cpu") -> int:
    """Rows per chunk so that a (rows x n_cols) matrix is about ``budget`` bytes, at least 256 rows.

    On the CPU (the default) the budget defaults to :data:`CHUNK_BYTES` and a chunk has at
    most :data:`CHUNK_ROWS` rows, so it stays in cache. On a GPU the budget defaults to
    :func:`device_chunk_bytes` and there is no row cap: one chunk can be a whole block.
    """
    if torch.device(device).type == "cpu":
        budget = budget or CHUNK_BYTES
        return max(256, min(max(n_rows, 1), CHUNK_ROWS, budget // max(1, n_cols * itemsize)))
    budget = budget or device_chunk_bytes(device)
    return max(256, min(max(n_rows, 1), budget // max(1, n_cols * itemsize)))


def squared_distances(x: torch.Tensor, centers: torch.Tensor, center_sqnorms: torch.Tensor) -> torch.Tensor:
    """``||x - c||^2`` for all pairs, via one GEMM, clamped at 0 (no sqrt)."""
    dist = torch.addmm(center_sqnorms.unsqueeze(0), x, centers.T, beta=1.0, alpha=-2.0)
    dist += (x * x).sum(dim=1, keepdim=True)
    return dist.clamp_(min=0.0)


def row_min(scores: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` of the minimum of every row of ``scores + bias`` ((rows x k)
    scores, one bias per column).

    On a GPU this is torch's reduction; on the CPU, where torch's arg-reductions are
    slow, the numba kernel of :mod:`cluster_core.kernels._cpu` adds and scans in one pass.
    """
    if scores.device.type != "cpu":
        return (scores + bias.unsqueeze(0)).min(dim=1)
    from ._cpu import row_argmin

    best, labels = row_argmin(scores.numpy(), bias.numpy())
    return torch.from_numpy(best), torch.from_numpy(labels)


def column_min(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` of the minimum of every column of a (k x rows) score tensor
    (torch's reduction on a GPU, the numba scan on the CPU)."""
    if scores.device.type != "cpu":
        return scores.min(dim=0)
    from ._cpu import column_argmin

    best, labels = column_argmin(scores.numpy())
    return torch.from_numpy(best), torch.from_numpy(labels)


@functools.lru_cache(maxsize=1)
def cpu_gemm_backend() -> str:
    """``"numpy"`` or ``"torch"``: whichever multiplies kernel-shaped float32 matrices faster here.

    Set ``CLUSTRA_CPU_GEMM`` to force one. The calibration times a (8192 x 32) @ (32 x 128)
    product (a chunk times the transposed centers, as the kernels use it) a few times with
    each library, single-threaded as kernels run, ~20 ms.
    """
    forced = os.environ.get("CLUSTRA_CPU_GEMM")
    if forced in ("numpy", "torch"):
        return forced
    from .._threads import limit_threads

    rng = np.random.default_rng(0)
    a = rng.standard_normal((8192, 32), dtype=np.float32)
    b = rng.standard_normal((128, 32), dtype=np.float32).T
    ta, tb = torch.from_numpy(a), torch.from_numpy(b.T).T
    timings = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with limit_threads(1):
            for name, product in (("numpy", lambda: a @ b), ("torch", lambda: ta @ tb)):
                product()
                started = time.perf_counter()
                for _ in range(8):
                    product()
                timings[name] = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    return min(timings, key=timings.get)


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for 2-D tensors; CPU products use the faster library (see
    :func:`cpu_gemm_backend`, calibrated on float32): float32 always, float64 only while
    torch runs single-threaded (inside per-block threads, or a single-threaded worker), where
    numpy's BLAS is also limited to one thread. With both libraries' thread teams active,
    OpenBLAS's spinning threads starve torch's (an EM fit ran 3x slower)."""
    if a.device.type == "cpu" and cpu_gemm_backend() == "numpy":
        if a.dtype == torch.float32 or (a.dtype == torch.float64 and torch.get_num_threads() == 1):
            return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
    return a @ b
