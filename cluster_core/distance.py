"""The distances Clustra clusters with: ``euclidean`` (the default) and ``cosine``.

``cosine`` is carried out on unit-normalized rows: for unit vectors ``a`` and ``b``,
``||a - b||^2 = 2 * (1 - cos(a, b))``, so the Euclidean (chord) distance on the unit
sphere is monotone in the cosine distance ``1 - cos``. Spherical k-means assigns every
row to the unit centroid of largest dot product, which is the nearest unit centroid in
Euclidean distance: the existing Euclidean kernels do the work on normalized rows.
A row of zeros has no direction; it stays zero (cosine distance 1 to every centroid).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .blocks import ArrayBlocks, Blocks, DaskBlocks

METRICS = ("euclidean", "cosine")
"""Every metric name a setting may take."""


def check_metric(metric: Any) -> str:
    """``metric`` when it is one of :data:`METRICS`; ValueError naming it otherwise."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not one of {list(METRICS)}")
    return metric


def unit_rows(array: Any) -> np.ndarray:
    """``array`` (n, d) with every row scaled to Euclidean norm 1 (rows of zeros stay zero), float32.

    Parameters
    ----------
    array : array-like of shape (n_samples, n_features)
    """
    rows = np.asarray(array, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64)).astype(np.float32)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(rows / norms[:, None])


def unit_blocks(blocks: Blocks) -> Blocks:
    """``blocks`` with every row unit-normalized: a normalized copy in memory, a lazy
    per-block step for Dask blocks (recomputed per pass, as cheap as reading the block)."""
    if isinstance(blocks, ArrayBlocks):
        return ArrayBlocks(unit_rows(blocks.data), block_rows=blocks.block_rows)
    if isinstance(blocks, DaskBlocks):
        import dask

        normalize = dask.delayed(unit_rows, pure=True)
        return DaskBlocks([normalize(b) for b in blocks.blocks], blocks.n_features, getattr(blocks, "_n_rows", None))
    raise TypeError(f"cannot normalize blocks of type {type(blocks).__name__}; expected ArrayBlocks or DaskBlocks")


__all__ = ["METRICS", "check_metric", "unit_blocks", "unit_rows"]
