"""Cluster validity indices computed in passes over :class:`~cluster_core.blocks.Blocks`.

* **Silhouette** — a stratified sample of at most ``sample_size`` non-noise rows (the
  *queries*) is scored. Each query's mean distance to every cluster is measured against
  all rows when there are at most ``reference_size`` of them (per block, faiss computes
  query-to-block distances and they are summed per cluster: ``O(sample_size * n * d)``),
  and otherwise against a second, independent stratified sample of about
  ``reference_size`` rows (at least ``MIN_REFERENCE_PER_CLUSTER`` per cluster, or all
  of a smaller cluster): the mean distance to a cluster is then estimated from
  thousands of its rows, which adds far less error than sampling the queries does
  (30k blobs, 2,000 queries: errors of 5 seeds moved by at most 0.001 with 5,000
  reference rows instead of all 30,000), and the distance work no longer grows with n (the passes that label the rows still do, linearly). A
  cluster's share of either sample is proportional to its size, and the per-cluster
  means are weighted by cluster size, so the estimate is unbiased; with
  ``n <= sample_size`` every row is a query and the value is exact. A query's own
  distance (0) is left out of its own cluster's mean. Noise rows (label -1) belong to
  no segment: each scores 0 and they are left out of the other rows' distances, so the
  value is ``(1 - noise_fraction)`` times the silhouette of the non-noise rows.
* **Davies–Bouldin** and **Calinski–Harabasz** — exact, from per-cluster sums over all
  non-noise rows (two passes).

With ``metric="cosine"`` every row is unit-normalized first (:mod:`cluster_core.distance`):
the silhouette then uses the cosine distance ``1 - cos`` between rows, and Davies–Bouldin
and Calinski–Harabasz are the usual Euclidean indices of the unit rows (centroids are the
means of unit rows, so the within-cluster scatter is ``2 * (1 - cos)`` to the mean
direction, scaled by the mean's length).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .blocks import ArrayBlocks, Blocks, concat_partials, sum_partials, threaded_blocks
from .distance import check_metric, unit_blocks
from .kernels._cpu import add_segment_sums
from .kernels.neighbors import pairwise_sqdist_into

DEFAULT_SILHOUETTE_SAMPLE = 10_000
# twice the queries: 1M x 32 blobs at k = 64, 200k validation rows, 3 seeds: estimates within 0.0002 of those
# against all rows with 20,000 reference rows (at least 200 per cluster), as with 50,000 (500), in 0.21 s instead of 0.48 s
DEFAULT_SILHOUETTE_REFERENCE = 20_000
MIN_PER_CLUSTER = 50
MIN_REFERENCE_PER_CLUSTER = 200
TILE = 2048  # reference rows per distance tile
QUERY_TILE = 512  # queries per distance tile: its 4 MiB of float32 distances stay in cache for the summing pass

AssignFn = Callable[[np.ndarray], np.ndarray]


def _labels(block: Any, assign: AssignFn) -> np.ndarray:
    return np.asarray(assign(block), dtype=np.int64)


@threaded_blocks
def _assign_block(block: Any, assign: AssignFn) -> np.ndarray:
    return _labels(block, assign)


def assign_all(blocks: ArrayBlocks, assign: AssignFn) -> np.ndarray:
    """Labels of every row of in-memory ``blocks``, in row order (the blocks assigned in parallel threads)."""
    return blocks.map_reduce(_assign_block, assign, combine=concat_partials)


class KnownLabels:
    """An :data:`AssignFn` for row blocks of one in-memory array whose labels were computed once.

    A block that is a view of consecutive rows of ``data`` (what :class:`ArrayBlocks` hands
    to the per-block functions) gets its rows' entries of ``labels``; any other block (a
    copy, unit rows for the cosine metric) is assigned by ``fallback``. The passes of
    :func:`evaluate_clustering` then label the rows once instead of once per pass.

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        ``fallback(data)``, as :func:`assign_all` computes it.
    fallback : callable
        The model's assign function.
    """

    def __init__(self, data: np.ndarray, labels: np.ndarray, fallback: AssignFn):
        if labels.shape[0] != data.shape[0]:
            raise ValueError(f"labels has {labels.shape[0]} entries, expected one per row of data ({data.shape[0]})")
        self.data, self.labels, self.fallback = data, np.asarray(labels, np.int64), fallback

    def _first_row(self, block: Any) -> int | None:
        """The row of ``data`` that ``block`` starts at, None when ``block`` is not a row range of it."""
        if not isinstance(block, np.ndarray) or block.ndim != 2 or block.dtype != self.data.dtype:
            return None
        if block.strides != self.data.strides or block.shape[1] != self.data.shape[1] or block.shape[0] == 0:
            return None
        if self.data.strides[0] <= 0:
            return None
        offset = block.__array_interface__["data"][0] - self.data.__array_interface__["data"][0]
        row, remainder = divmod(offset, self.data.strides[0])
        if remainder or row < 0 or row + block.shape[0] > self.data.shape[0]:
            return None
        return row

    def __call__(self, block: Any) -> np.ndarray:
        row = self._first_row(block)
        if row is None:
            return _labels(block, self.fallback)
        return self.labels[row : row + block.shape[0]]


def _one_hot(labels: np.ndarray, n_clusters: int, dtype=np.float32) -> np.ndarray:
    """(n, k) membership matrix; noise rows (-1) are all zero."""
    out = np.zeros((labels.shape[0], n_clusters), dtype)
    member = np.flatnonzero(labels >= 0)
    out[member, labels[member]] = 1.0
    return out


@threaded_blocks
def _cluster_sums(block, assign: AssignFn, n_clusters: int):
    """(counts[k + 1] with noise last, sums[k, d]) of one block.

    Threaded (like the passes below): ``assign`` is a fitted model's predict, whose small
    per-chunk torch and BLAS calls ran 10-20x slower with two library threads each than
    single-threaded on two busy cores (KMeans k = 8 on 400k x 16: 0.26 s vs 0.013 s)."""
    labels = _labels(block, assign)
    counts = np.bincount(np.where(labels < 0, n_clusters, labels), minlength=n_clusters + 1)
    sums = _one_hot(labels, n_clusters, np.float64).T @ np.asarray(block, dtype=np.float64)
    return counts, sums


@threaded_blocks
def _spread_and_sample(
    block, index: int, assign: AssignFn, centroids: np.ndarray, keep_probability: np.ndarray,
    reference_probability: np.ndarray | None, seed: int,
):
    """Per-cluster sums of distances / squared distances to the centroid, the sampled query
    rows (rows, labels, whether each is also a reference row) and the reference rows
    (rows, labels; none when ``reference_probability`` is None)."""
    labels = _labels(block, assign)
    k = centroids.shape[0]
    member = labels >= 0
    slots = labels[member]
    sq = ((np.asarray(block, dtype=np.float64)[member] - centroids[slots]) ** 2).sum(axis=1)
    dist_sum = np.bincount(slots, weights=np.sqrt(sq), minlength=k)
    sq_sum = np.bincount(slots, weights=sq, minlength=k)
    rng = np.random.default_rng([seed, index])
    safe_labels = np.where(member, labels, 0)
    chosen = member & (rng.random(labels.shape[0]) < keep_probability[safe_labels])
    if reference_probability is None:
        in_reference = np.zeros(labels.shape[0], bool)
    else:
        in_reference = member & (rng.random(labels.shape[0]) < reference_probability[safe_labels])
    rows = np.asarray(block, np.float32)
    sample = (rows[chosen], labels[chosen], in_reference[chosen])
    return (dist_sum, sq_sum), sample + (rows[in_reference], labels[in_reference])


def _combine_spread(a, b):
    return sum_partials(a[0], b[0]), concat_partials(a[1], b[1])


@threaded_blocks
def _silhouette_sums(block, assign: AssignFn, sample: np.ndarray, n_clusters: int, device: str, cosine: bool = False):
    """For every sample row: summed distance (Euclidean, or cosine between unit rows) to the rows of
    each cluster (noise skipped)."""
    return _distance_sums(np.asarray(block, dtype=np.float32), _labels(block, assign), sample, n_clusters, device, cosine)


@threaded_blocks
def _reference_sums(
    block, index: int, labels: np.ndarray, block_rows: int, sample: np.ndarray, n_clusters: int, device: str,
    cosine: bool = False,
):
    """:func:`_silhouette_sums` over a block of reference rows whose labels are known."""
    return _distance_sums(block, labels[index * block_rows : (index + 1) * block_rows], sample, n_clusters, device, cosine)


def _distance_sums(
    rows: np.ndarray, labels: np.ndarray, sample: np.ndarray, n_clusters: int, device: str, cosine: bool = False,
) -> np.ndarray:
    """Tiles of QUERY_TILE x TILE squared distances from faiss (into one reused buffer), each added up
    per cluster in one compiled pass (:func:`~cluster_core.kernels._cpu.add_segment_sums`: the
    square root, or for unit rows and ``cosine`` the distance ``1 - cos``, summed per run of one
    label).

    The rows are put in label order first (noise rows dropped), so a tile holds the rows of a
    few clusters as contiguous runs of columns (a 2048-row tile spans about four clusters of
    a 20,000-row reference at k = 64). The pass reads each tile once, while it is in cache; the
    square root, a clamp and a membership GEMM over 16 MiB tiles were three passes (10,000
    queries against 50,000 rows, k = 64, one thread: 2.0 s -> 0.6 s)."""
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    rows, labels = np.ascontiguousarray(rows[order], dtype=np.float32), labels[order]
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    sums = np.zeros((sample.shape[0], n_clusters))
    half_sq_rows = half_sq_sample = None
    if cosine:  # unit rows or rows of zeros: x.y = (|x|^2 + |y|^2 - |x - y|^2) / 2
        half_sq_rows = 0.5 * np.einsum("ij,ij->i", rows, rows).astype(np.float32)
        half_sq_sample = 0.5 * np.einsum("ij,ij->i", sample, sample).astype(np.float32)
    tiles = []  # per tile of rows: (first row, its runs' boundaries, their clusters)
    for b in range(0, rows.shape[0], TILE):
        tile_labels = labels[b : b + TILE]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(tile_labels)) + 1, [tile_labels.shape[0]]))
        tiles.append((b, starts, tile_labels[starts[:-1]]))
    buffer = np.empty(min(QUERY_TILE, sample.shape[0]) * min(TILE, rows.shape[0]), np.float32)
    for q in range(0, sample.shape[0], QUERY_TILE):
        queries = sample[q : q + QUERY_TILE]
        for b, starts, clusters in tiles:
            block = rows[b : b + TILE]
            squared = pairwise_sqdist_into(
                queries, block, buffer[: queries.shape[0] * block.shape[0]].reshape(queries.shape[0], block.shape[0]), device)
            add_segment_sums(squared, starts, clusters, sums[q : q + QUERY_TILE], *(
                (half_sq_sample[q : q + QUERY_TILE], half_sq_rows[b : b + TILE]) if cosine else ()))
    return sums


def sample_probabilities(counts: np.ndarray, sample_size: int, min_per_cluster: int = MIN_PER_CLUSTER) -> np.ndarray:
    """Per-cluster keep probability: proportional allocation, at least ``min_per_cluster``
    rows each (all of a smaller cluster)."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total <= sample_size:
        return np.ones_like(counts)
    wanted = np.maximum(sample_size * counts / total, np.minimum(counts, min_per_cluster))
    return np.minimum(1.0, wanted / np.maximum(counts, 1.0))


def evaluate_clustering(
    blocks: Blocks,
    assign: AssignFn,
    n_clusters: int,
    *,
    sample_size: int = DEFAULT_SILHOUETTE_SAMPLE,
    reference_size: int | None = DEFAULT_SILHOUETTE_REFERENCE,
    seed: int = 0,
    device: str = "cpu",
    metric: str = "euclidean",
) -> dict:
    """Silhouette (sampled), Davies–Bouldin and Calinski–Harabasz of a labelling.

    Parameters
    ----------
    blocks : Blocks
        The rows to evaluate (typically the validation split).
    assign : callable
        Maps a block of shape (n, d) to labels in ``[-1, n_clusters)`` (-1 = noise).
    n_clusters : int
        Number of label values the model can produce (noise excluded).
    sample_size : int
        Queries scored for the silhouette (stratified sample).
    reference_size : int or None
        Above this many non-noise rows, the queries are measured against a stratified
        sample of about this many rows instead of all rows (None or 0: always all rows).
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"``: rows are unit-normalized, the silhouette uses cosine distances and
        Davies–Bouldin / Calinski–Harabasz are computed on the unit rows.

    Returns
    -------
    dict
        ``silhouette``, ``davies_bouldin``, ``calinski_harabasz`` (None where undefined,
        e.g. fewer than two clusters), ``n_clusters_found`` (non-empty clusters),
        ``noise_fraction``, ``cluster_sizes`` (rows per cluster id), ``n_rows``,
        ``silhouette_sample_size``, ``silhouette_reference_size`` (rows the queries were
        measured against).
    """
    cosine = check_metric(metric) == "cosine"
    if cosine:
        blocks = unit_blocks(blocks)
    counts_all, sums = blocks.map_reduce(_cluster_sums, assign, n_clusters)
    counts, n_noise = counts_all[:n_clusters], int(counts_all[n_clusters])
    n_rows = int(counts_all.sum())
    present = counts > 0
    centroids = np.zeros_like(sums)
    centroids[present] = sums[present] / counts[present, None]
    keep = sample_probabilities(counts, sample_size)
    use_reference = bool(reference_size) and int(counts.sum()) > reference_size
    reference_keep = sample_probabilities(counts, reference_size, MIN_REFERENCE_PER_CLUSTER) if use_reference else None
    (dist_sum, sq_sum), (sample, sample_labels, sample_in_reference, reference, reference_labels) = (
        blocks.map_indexed_reduce(_spread_and_sample, assign, centroids, keep, reference_keep, seed, combine=_combine_spread)
    )
    result = {
        "n_rows": n_rows,
        "n_clusters_found": int(present.sum()),
        "noise_fraction": float(n_noise / n_rows) if n_rows else 0.0,
        "cluster_sizes": {str(c): int(counts[c]) for c in np.flatnonzero(present)},
        "silhouette_sample_size": int(sample.shape[0]),
        "silhouette_reference_size": int(reference.shape[0] if use_reference else counts.sum()),
        "davies_bouldin": _davies_bouldin(centroids[present], dist_sum[present] / counts[present]),
        "calinski_harabasz": _calinski_harabasz(counts[present], sums[present], sq_sum[present]),
        "silhouette": None,
    }
    if int(present.sum()) >= 2:
        if use_reference:
            reference_blocks = ArrayBlocks(reference, block_rows=8192)
            sil_sums = reference_blocks.map_indexed_reduce(
                _reference_sums, reference_labels, reference_blocks.block_rows, sample, n_clusters, device, cosine
            )
            sizes = np.bincount(reference_labels, minlength=n_clusters)
            self_counted = sample_in_reference
        else:
            sil_sums = blocks.map_reduce(_silhouette_sums, assign, sample, n_clusters, device, cosine)
            sizes, self_counted = counts, np.ones(sample.shape[0], bool)
        result["silhouette"] = _silhouette_estimate(sil_sums, sample_labels, counts, n_rows, sizes, self_counted)
    return result


def _silhouette_estimate(sums, sample_labels, counts, n_rows, sizes, self_counted) -> float:
    """Size-weighted mean silhouette of the queries.

    ``sums[i, c]``: query i's summed distance to the ``sizes[c]`` rows of cluster c it was
    measured against; ``self_counted[i]``: whether query i is one of them (then its own
    zero distance is left out of its cluster's mean); ``counts``: the true cluster sizes.
    """
    rows = np.arange(sample_labels.shape[0])
    others = sizes[sample_labels] - self_counted.astype(np.int64)
    a = sums[rows, sample_labels] / np.maximum(others, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_to = sums / sizes[None, :]
    mean_to[:, sizes == 0] = np.inf
    mean_to[rows, sample_labels] = np.inf
    b = mean_to.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where((counts[sample_labels] > 1) & (others > 0), (b - a) / np.maximum(a, b), 0.0)
    s = np.nan_to_num(s)
    total = 0.0
    for cluster in np.unique(sample_labels):
        total += counts[cluster] * s[sample_labels == cluster].mean()
    return float(total / n_rows)


def _davies_bouldin(centroids: np.ndarray, intra: np.ndarray) -> float | None:
    if centroids.shape[0] < 2:
        return None
    diff = centroids[:, None, :] - centroids[None, :, :]
    separation = np.sqrt((diff**2).sum(axis=2))
    if np.allclose(intra, 0) or np.allclose(separation, 0):
        return 0.0
    separation[separation == 0] = np.inf
    ratio = (intra[:, None] + intra[None, :]) / separation
    return float(np.max(ratio, axis=1).mean())


def _calinski_harabasz(counts: np.ndarray, sums: np.ndarray, within: np.ndarray) -> float | None:
    k = counts.shape[0]
    n = counts.sum()
    if k < 2 or n <= k:
        return None
    mean = sums.sum(axis=0) / n
    centroids = sums / counts[:, None]
    between = float((counts * ((centroids - mean) ** 2).sum(axis=1)).sum())
    within_total = float(within.sum())
    return 1.0 if within_total == 0 else between * (n - k) / (within_total * (k - 1))
