"""KMeans kernels: nearest-centroid assignment, Lloyd partial sums, k-means++ seeding.

The per-block kernels (``assign_nearest``, ``lloyd_partial_sums``, ...) serve
:class:`~cluster_core.blocks.Blocks` (Dask partitions, CPU threads); :class:`DeviceRows` runs the
same chunk code over an in-memory matrix held on a GPU for a whole fit: a pass takes and
returns tensors on the device (:meth:`DeviceRows.lloyd_totals`), so a Lloyd loop keeps its centers
there and reads back one small packed array per iteration.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..blocks import threaded_blocks
from ._torch import chunk_rows, column_min, device_free_bytes, matmul, row_min, to_numpy, to_tensor

FAR_POINTS = 16  # candidates for re-seeding empty clusters
ROW_LAYOUT_MAX_K = 128  # up to this many centers the scores are (rows x k), else (k x rows)
FLOAT32_SUM_ROWS = 32768  # chunks up to this many rows add their Lloyd sums in float32, larger ones in float64
ONEHOT_BATCH_ROWS = 4096  # one-hot Lloyd sums: float32 GEMM partial sums over this many rows, then float64
REDUCTIONS = ("index_add", "onehot")  # how a Lloyd pass adds rows into their clusters' sums
RESIDENT_SHARE = 2  # DeviceRows keeps the data on a GPU when it takes at most 1/2 of the free memory,
STREAM_SHARE = 8  # else copies it block by block, a block at most 1/8 of the free memory


class _Centers:
    """Centers prepared for the score GEMM, in coordinates shifted by their mean.

    Scores ``||c||^2 - 2 c.x`` cancel catastrophically in float32 when the data sit far
    from the origin (norms ~1e12 for coordinates ~1e6); shifting data and centers by the
    centers' mean (or a given ``shift`` near them) keeps them small without changing any distance.
    """

    def __init__(self, centers: Any, device: str, dtype=torch.float32, shift: Any = None):
        c = to_tensor(centers, device, dtype)
        self.shift = c.mean(dim=0) if shift is None else to_tensor(shift, device, dtype)
        shifted = c - self.shift
        self.k, self.d = c.shape
        self.sqnorms = (shifted * shifted).sum(dim=1)
        # Few centers: (rows x k) scores, the GEMM layout BLAS runs fastest. Many: (k x rows),
        # whose column-wise minimum vectorises (see kernels._cpu).
        self.rows_layout = self.k <= ROW_LAYOUT_MAX_K
        minus_two = -2.0 * shifted
        self.minus_two = (minus_two.T if self.rows_layout else minus_two).contiguous()

    def best(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(min score, label, shifted x)`` of every row: the score ``||c||^2 - 2 c.x`` is
        the squared distance less ``||x||^2``."""
        x = x - self.shift
        if self.rows_layout:
            best, labels = row_min(matmul(x, self.minus_two), self.sqnorms)
        else:
            scores = matmul(self.minus_two, x.T)
            scores += self.sqnorms.unsqueeze(1)
            best, labels = column_min(scores)
        return best, labels, x

    def nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and squared distances of ``x`` rows to their nearest center."""
        best, labels, shifted = self.best(x)
        return labels, (best + (shifted * shifted).sum(dim=1)).clamp_(min=0.0)


@threaded_blocks
def assign_nearest(block: Any, centers: np.ndarray | _Centers, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Nearest center of every row.

    Parameters
    ----------
    block : array of shape (n_samples, n_features)
    centers : ndarray of shape (n_clusters, n_features), or the same centers already
        prepared on ``device`` (:func:`prepare_centers`: a fitted model's inference reuses them)
    device : {"cpu", "cuda"}

    Returns
    -------
    labels : ndarray of shape (n_samples,), int64
    sqdist : ndarray of shape (n_samples,), float32 — squared Euclidean distance.
    """
    prepared = centers if isinstance(centers, _Centers) else _Centers(centers, device)
    labels, sqdist = _nearest_rows(to_tensor(block, device), prepared, device)
    return to_numpy(labels).astype(np.int64), to_numpy(sqdist)


def prepare_centers(centers: np.ndarray, device: str = "cpu") -> _Centers:
    """``centers`` prepared once for :func:`assign_nearest` on ``device`` (shift, norms, GEMM
    layout): the same numbers every call would compute, kept by a fitted model."""
    return _Centers(centers, device)


def _nearest_rows(x_all: torch.Tensor, prepared: _Centers, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels (int64) and squared distances (float32) of the rows of ``x_all``, on the device."""
    step = chunk_rows(x_all.shape[0], prepared.k, device=device)
    if 0 < x_all.shape[0] <= step:  # one chunk (a served request): no concatenation
        labels, sqdist = prepared.nearest(x_all)
        return labels.long(), sqdist
    parts = [prepared.nearest(x_all[start : start + step]) for start in range(0, x_all.shape[0], step)]
    if not parts:
        return torch.empty(0, dtype=torch.int64, device=device), torch.empty(0, dtype=torch.float32, device=device)
    return torch.cat([p[0] for p in parts]).long(), torch.cat([p[1] for p in parts])


class _LloydSums:
    """One pass's Lloyd statistics (counts, sums around ``prepared.shift``, inertia), kept as
    tensors on the device across chunks and blocks until :meth:`to_host` moves them at once.
    ``reduction``: rows added with ``index_add_`` or as one-hot GEMMs (:func:`onehot_cluster_sums`)."""

    def __init__(self, prepared: _Centers, device: str, reduction: str = "index_add"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} should be one of {REDUCTIONS}")
        self.prepared = prepared
        self.device = device
        self.reduction = reduction
        self.counts = torch.zeros(prepared.k, dtype=torch.int64, device=device)
        self.sums = torch.zeros(prepared.k, prepared.d, dtype=torch.float64, device=device)
        self.inertia = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, x_all: torch.Tensor) -> None:
        """Add the rows of ``x_all`` (a tensor on the device), in chunks sized for the device."""
        prepared = self.prepared
        step = chunk_rows(x_all.shape[0], prepared.k, device=self.device)
        for start in range(0, x_all.shape[0], step):
            best, labels, shifted = prepared.best(x_all[start : start + step])
            if self.reduction == "onehot":
                counts, sums = onehot_cluster_sums(shifted, labels, prepared.k)
                self.counts += counts
                self.sums += sums
                # per-row squared norms in float32 (d terms each), added up in float64
                self.inertia += best.double().sum() + (shifted * shifted).sum(dim=1).double().sum()
                continue
            # not bincount: on CUDA it reads the largest label back to the host (a sync per chunk)
            self.counts.index_add_(0, labels, torch.ones(labels.shape[0], dtype=torch.int64, device=self.device))
            if shifted.shape[0] <= FLOAT32_SUM_ROWS:  # cache-sized chunk: float32 partial sums
                partial = torch.zeros(prepared.k, prepared.d, dtype=shifted.dtype, device=self.device)
                self.sums += partial.index_add_(0, labels, shifted).double()
                flat = shifted.reshape(-1)
                self.inertia += best.double().sum() + torch.dot(flat, flat).double()
            else:  # a device-sized chunk: too many rows to add up in float32
                wide = shifted.double()
                self.sums.index_add_(0, labels, wide)
                flat = wide.reshape(-1)
                self.inertia += best.double().sum() + torch.dot(flat, flat)

    def totals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(counts[k] int64, sums[k, d] float64 in data coordinates, inertia float64 0-d)``,
        tensors on the device (nothing moves to the host)."""
        sums = self.sums + self.counts.unsqueeze(1).double() * self.prepared.shift.double()
        return self.counts, sums, self.inertia

    def to_host(self) -> tuple[np.ndarray, np.ndarray, float]:
        """:meth:`totals` as ``(counts int64, sums float64, inertia float)`` on the host: one transfer."""
        k, d = self.prepared.k, self.prepared.d
        counts, sums, inertia = self.totals()
        packed = to_numpy(torch.cat([counts.double(), sums.reshape(-1), inertia.reshape(1)]))
        return packed[:k].astype(np.int64), packed[k : k + k * d].reshape(k, d), float(packed[-1])


def onehot_cluster_sums(shifted: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster ``(counts[k] int64, sums[k, d] float64)`` of the rows of ``shifted``
    (float32, on any device) as GEMMs, without atomic adds.

    ``index_add_`` on a GPU makes every row's ``d`` values an atomic add into only ``k x d``
    addresses (heavy contention). Here a (rows x k) float32 one-hot matrix (the size of the
    chunk's score matrix) is built with one write per row, and ``one-hot.T @ rows`` runs as one
    batched GEMM over batches of :data:`ONEHOT_BATCH_ROWS` rows: float32 partial sums over at
    most that many rows (as cache-sized chunks on the CPU add theirs), added up in float64.
    Counts are the one-hot's column sums (exact in float32 up to 2**24 rows per batch).
    """
    n, d = shifted.shape
    device = shifted.device
    onehot = torch.zeros(n, k, dtype=shifted.dtype, device=device)
    onehot.scatter_(1, labels.reshape(n, 1).long(), 1.0)
    counts = torch.zeros(k, dtype=torch.float64, device=device)
    sums = torch.zeros(k, d, dtype=torch.float64, device=device)
    batch = ONEHOT_BATCH_ROWS
    full = (n // batch) * batch
    if full:
        hot = onehot[:full].reshape(-1, batch, k)
        sums += torch.bmm(hot.transpose(1, 2), shifted[:full].reshape(-1, batch, d)).double().sum(dim=0)
        counts += hot.sum(dim=1).double().sum(dim=0)
    if full < n:
        hot = onehot[full:]
        sums += (hot.T @ shifted[full:]).double()
        counts += hot.sum(dim=0).double()
    return counts.round().long(), sums


@threaded_blocks
def lloyd_partial_sums(block: Any, centers: np.ndarray, device: str = "cpu", shift: np.ndarray | None = None):
    """One block's share of a Lloyd iteration.

    ``shift`` (default: the centers' mean) is subtracted from rows and centers before the
    GEMM. Lloyd passes one fixed shift for the whole run, so an unchanged assignment gives
    bit-identical sums and the centers stop moving exactly (strict convergence).

    Returns
    -------
    tuple
        ``(counts[k] int64, sums[k, d] float64, inertia float)``. The inertia is
        ``sum(min score) + ||X - shift||^2`` (one dot product per chunk, no per-row norms).
    """
    sums = _LloydSums(_Centers(centers, device, shift=shift), device)
    sums.add(to_tensor(block, device))
    return sums.to_host()


@threaded_blocks
def farthest_points(block: Any, centers: np.ndarray, device: str = "cpu"):
    """``(sqdist[m], rows[m, d])``: the block's ``m <= FAR_POINTS`` rows farthest from their centers."""
    _, sqdist = assign_nearest(block, centers, device)
    order = np.argsort(-sqdist, kind="stable")[:FAR_POINTS]
    return sqdist[order], np.asarray(block)[order]


def combine_far(a, b):
    """Keep the FAR_POINTS farthest of two :func:`farthest_points` results."""
    dist = np.concatenate([a[0], b[0]])
    rows = np.concatenate([a[1], b[1]])
    keep = np.argsort(-dist, kind="stable")[:FAR_POINTS]
    return dist[keep], rows[keep]


@threaded_blocks
def column_moments(block: Any, device: str = "cpu"):
    """``(n, sum[d], sum_sq[d])`` of a block, accumulated in float64 (for variances and tolerances)."""
    x_all = to_tensor(block, device)
    sums, squares = _moments(x_all, device)
    return int(x_all.shape[0]), to_numpy(sums), to_numpy(squares)


def _moments(x_all: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Column sums and sums of squares (float64 tensors on the device) of ``x_all``, in chunks."""
    d = x_all.shape[1]
    sums = torch.zeros(d, dtype=torch.float64, device=device)
    squares = torch.zeros(d, dtype=torch.float64, device=device)
    step = chunk_rows(x_all.shape[0], d, device=device)
    for start in range(0, x_all.shape[0], step):
        x = x_all[start : start + step]
        sums += x.sum(dim=0).double()
        squares += (x * x).sum(dim=0).double()
    return sums, squares


class DeviceRows:
    """An in-memory matrix fitted on one torch device: every pass (Lloyd sums, labels,
    column moments) reduces on the device and moves its result to the host once.

    On a GPU the rows are copied to the device once, for the whole fit, when they take at
    most 1/:data:`RESIDENT_SHARE` of its free memory; else each pass copies them block by
    block (blocks of at most 1/:data:`STREAM_SHARE` of the free memory) and accumulates across
    blocks on the device. On the CPU the tensor is a view of the array. Within a block the
    rows are walked in chunks sized for the device (:func:`~._torch.chunk_rows`).

    Parameters
    ----------
    data : array of shape (n_samples, n_features), float32 (numpy, cupy or torch)
    device : {"cpu", "cuda"}
    resident : bool, optional
        Force keeping the rows on the device (True) or streaming them (False).
    block_rows : int, optional
        Rows per streamed block (default: from the free device memory).
    reduction : {"index_add", "onehot"}, optional
        How a Lloyd pass adds rows into their clusters' sums: ``index_add_`` (the per-block
        kernels' way; the default on every device: on an H200 it ran 13.8 ms per iteration against
        the one-hot's 18.4, docs/gpu.md) or one-hot GEMMs (:func:`onehot_cluster_sums`, no atomic adds).

    The Lloyd methods take centers as numpy arrays (:meth:`lloyd_sums`, one transfer each way)
    or as tensors already on the device (:meth:`lloyd_totals`, :meth:`farthest`: nothing moves
    to or from the host), so a Lloyd loop can keep its centers on the device between iterations.
    """

    def __init__(
        self, data: Any, device: str = "cpu", resident: bool | None = None, block_rows: int | None = None,
        reduction: str | None = None,
    ):
        if len(data.shape) != 2:
            raise ValueError(f"expected a 2-D array, got shape {tuple(data.shape)}")
        if reduction is None:
            reduction = "index_add"
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} should be one of {REDUCTIONS}")
        self.device = device
        self.reduction = reduction
        self.n_rows, self.n_features = (int(n) for n in data.shape)
        row_bytes = 4 * max(1, self.n_features)
        free = device_free_bytes(device)
        if resident is None:
            resident = free is None or self.n_rows * row_bytes <= free // RESIDENT_SHARE
        if block_rows is None:
            block_rows = self.n_rows if free is None else (free // STREAM_SHARE) // row_bytes
        self.block_rows = max(1, int(block_rows))
        self._data = data
        self._tensor = to_tensor(data, device) if resident else None

    @property
    def resident(self) -> bool:
        """Whether the rows stay on the device between passes."""
        return self._tensor is not None

    def _blocks(self):
        if self._tensor is not None:
            yield self._tensor
            return
        for start in range(0, self.n_rows, self.block_rows):
            yield to_tensor(self._data[start : start + self.block_rows], self.device)

    def lloyd_sums(self, centers: np.ndarray, shift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """All rows' :func:`lloyd_partial_sums` ``(counts, sums, inertia)``, one host transfer."""
        return self._lloyd_pass(centers, shift).to_host()

    def lloyd_totals(
        self, centers: torch.Tensor, shift: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`lloyd_sums` for centers (and ``shift``) held as float32 tensors on the device:
        ``(counts[k] int64, sums[k, d] float64, inertia float64 0-d)`` stay there too."""
        return self._lloyd_pass(centers, shift).totals()

    def _lloyd_pass(self, centers: Any, shift: Any) -> _LloydSums:
        sums = _LloydSums(_Centers(centers, self.device, shift=shift), self.device, self.reduction)
        for block in self._blocks():
            sums.add(block)
        return sums

    def farthest(self, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sqdist[m], rows[m, d])``, tensors on the device: the ``m <= FAR_POINTS`` rows
        farthest from their nearest of ``centers`` (a tensor on the device), as
        :func:`farthest_points` and :func:`combine_far` pick them (for re-seeding empty clusters)."""
        prepared = _Centers(centers, self.device)
        dists, rows = [], []
        for block in self._blocks():
            sqdist = _nearest_rows(block, prepared, self.device)[1]
            order = torch.argsort(-sqdist, stable=True)[:FAR_POINTS]
            dists.append(sqdist[order])
            rows.append(block[order])
        dist = torch.cat(dists)
        keep = torch.argsort(-dist, stable=True)[:FAR_POINTS]
        return dist[keep], torch.cat(rows)[keep]

    def nearest(self, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every row's :func:`assign_nearest` ``(labels, sqdist)``."""
        prepared = _Centers(centers, self.device)
        parts = [_nearest_rows(block, prepared, self.device) for block in self._blocks()]
        return to_numpy(torch.cat([p[0] for p in parts])), to_numpy(torch.cat([p[1] for p in parts]))

    def moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """:func:`column_moments` ``(n, sum[d], sum_sq[d])`` of all rows, one host transfer."""
        sums = torch.zeros(self.n_features, dtype=torch.float64, device=self.device)
        squares = torch.zeros(self.n_features, dtype=torch.float64, device=self.device)
        for block in self._blocks():
            block_sums, block_squares = _moments(block, self.device)
            sums += block_sums
            squares += block_squares
        packed = to_numpy(torch.cat([sums, squares]))
        return self.n_rows, packed[: self.n_features], packed[self.n_features :]


def kmeans_plusplus(
    data: Any, n_clusters: int, rng: np.random.Generator, device: str = "cpu", n_local_trials: int | None = None
) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; the variant scikit-learn uses).

    Each new center is the best of ``2 + log(k)`` candidates drawn with probability
    proportional to the squared distance to the nearest chosen center.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float32
    """
    raw = to_tensor(data, device)
    x = raw - raw.mean(dim=0)  # small norms: no cancellation in ||x||^2 - 2 x.c + ||c||^2
    n = x.shape[0]
    if n_clusters > n:
        raise ValueError(f"n_samples={n} should be >= n_clusters={n_clusters}.")
    trials = n_local_trials or 2 + int(math.log(n_clusters))
    x_sq = (x * x).sum(dim=1)
    # Indices, distances and potentials stay on the device; the only host transfer per center
    # is the new potential (its sign picks the next draw; the draws come from the host ``rng``).
    chosen = [torch.tensor([int(rng.integers(n))], device=device)]
    closest = _sqdist_to(x, x_sq, chosen[0])[0]
    best_potential = closest.double().sum()
    potential = float(best_potential)
    for _ in range(1, n_clusters):
        if potential <= 0.0:  # every point coincides with a center: pick any unused row
            candidates = torch.tensor([int(rng.integers(n))], device=device)
        else:
            cumulative = torch.cumsum(closest.double(), 0)
            draws = torch.as_tensor(rng.random(trials), dtype=torch.float64, device=device) * best_potential
            candidates = torch.searchsorted(cumulative, draws).clamp_(max=n - 1)
        candidate_dist = torch.minimum(closest.unsqueeze(0), _sqdist_to(x, x_sq, candidates))
        potentials = candidate_dist.double().sum(dim=1)
        best = torch.argmin(potentials).reshape(1)  # index_select with it: no host sync
        chosen.append(candidates.index_select(0, best))
        closest = candidate_dist.index_select(0, best)[0]
        best_potential = potentials.index_select(0, best)[0]
        potential = float(best_potential)
    return to_numpy(raw[torch.cat(chosen)]).astype(np.float32)


def _sqdist_to(x: torch.Tensor, x_sq: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Squared distances from every row of ``x`` to the rows ``rows`` (int64 indices on the device): shape (len(rows), n)."""
    c = x[rows]
    dist = torch.addmm(x_sq.unsqueeze(0), c, x.T, beta=1.0, alpha=-2.0)
    dist += x_sq[rows].unsqueeze(1)
    return dist.clamp_(min=0.0)
