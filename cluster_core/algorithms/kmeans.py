"""KMeans: k-means++ seeding on a sample, then Lloyd iterations as per-block partial sums."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from numbers import Integral, Real

from .._compat import optional_import, require
from ..blocks import ArrayBlocks, Blocks, concat_partials, single_threaded_when_small
from ..distance import unit_rows
from ..kernels.kmeans import (
    DeviceRows,
    assign_nearest,
    column_moments,
    combine_far,
    farthest_points,
    kmeans_plusplus,
    lloyd_partial_sums,
    prepare_centers,
)
from ..kernels._torch import to_numpy, to_tensor
from . import _hamerly
from ._base import Assignment, ClusterEstimator, seed_from

RESTART_TIE = 1e-6  # relative inertia difference below which two restarts count as the same optimum
DEFAULT_INIT_SAMPLE = 200_000


class KMeans(TransformerMixin, ClusterEstimator):
    """K-means clustering that runs unchanged on in-memory arrays and on Dask partitions.

    Each Lloyd iteration is one pass of :func:`~cluster_core.kernels.kmeans.lloyd_partial_sums`
    over the blocks (counts, sums, inertia), reduced on the driver; the distance matrix
    is computed in bounded chunks and never materialises whole. On in-memory data on the
    CPU the same iterations skip the rows whose Hamerly bounds prove they keep their center
    and score the others with a fused SIMD kernel (:mod:`cluster_core.algorithms._hamerly`). Empty clusters are
    re-seeded with the points farthest from their centers. In-memory data on a GPU is
    held as one :class:`~cluster_core.kernels.kmeans.DeviceRows` for the whole fit (copied
    once when it fits in device memory), each pass reduced on the device in device-sized
    chunks, the centers kept on the device with one small host read per iteration.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"} or ndarray of shape (n_clusters, n_features), default="k-means++"
        Seeding is done on a uniform sample of at most ``init_sample_size`` rows.
    n_init : int, default=3
        Independent seedings; the run with the lowest inertia is kept.
    max_iter : int, default=300
    tol : float, default=1e-4
        Converged when the squared center shift is at most ``tol`` times the mean
        feature variance (scikit-learn's rule). ``tol=0`` runs exactly ``max_iter``
        iterations unless the centers stop moving.
    init_sample_size : int, optional
        Rows used for seeding (default: all rows up to 200,000, else 200,000 or 50 per cluster).
    random_state : int, optional
    device : {"auto", "cpu", "cuda"}, default="auto"
    engine : {"auto", "torch", "cuml"}, default="auto"
        ``"auto"`` uses cuML's KMeans for in-memory data on a GPU when cuML is installed
        (its fused distance/argmin kernels and k-means|| seeding are the right tool
        there), and Clustra's own blocked kernels otherwise — always for Dask partitions,
        whose per-block statistics must be reduced across workers.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is spherical k-means: rows are unit-normalized (in fit and in every
        inference call), centroids are renormalized to unit length after every update,
        and a row goes to the centroid of largest dot product — the nearest unit
        centroid, so the same kernels run (:mod:`cluster_core.distance`). Distances
        reported by ``assign`` / ``transform`` are then cosine distances ``1 - cos``.
        Always fitted by Clustra's kernels (cuML's KMeans has no spherical mode).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    inertia_ : float
        Sum of squared distances of the training rows to their nearest center (for
        ``metric="cosine"``: of the unit rows to the unit centers, i.e. ``2 * sum(1 - cos)``).
    n_iter_ : int
    labels_ : ndarray of shape (n_samples,)
        Only when fitted on an in-memory array.
    """

    algorithm = "kmeans"
    _fitted_attribute = "cluster_centers_"
    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), np.ndarray],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init_sample_size": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "engine": [StrOptions({"auto", "torch", "cuml"})],
        "metric": [StrOptions({"euclidean", "cosine"})],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        n_init=3,
        max_iter=300,
        tol=1e-4,
        init_sample_size=None,
        random_state=None,
        device="auto",
        engine="auto",
        metric="euclidean",
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.init_sample_size = init_sample_size
        self.random_state = random_state
        self.device = device
        self.engine = engine
        self.metric = metric

    def _engine(self, in_memory: bool, device: str) -> str:
        """The engine that fits: cuML only for in-memory data on a GPU, when installed."""
        if self.engine == "torch" or not in_memory or device != "cuda" or self._cosine:
            if self.engine == "cuml" and device != "cuda":
                raise ValueError("engine='cuml' needs a CUDA device; none is in use (device resolved to 'cpu')")
            return "torch"
        if optional_import("cuml") is None:
            if self.engine == "cuml":
                require("cuml", "KMeans(engine='cuml')")
            return "torch"
        return "cuml"

    def fit(self, X, y=None):
        """Fit on ``X`` (array-like, dask array or :class:`~cluster_core.blocks.Blocks`)."""
        self._validate_params()
        blocks, array = self._fit_blocks(X)
        device = self._torch_device()
        if self._engine(array is not None, device) == "cuml":
            return self._fit_cuml(array)
        with single_threaded_when_small(blocks):
            return self._fit_torch(blocks, array, device)

    def _fit_torch(self, blocks: Blocks, array: np.ndarray | None, device: str) -> KMeans:
        """Clustra's blocked k-means++ seeding and Lloyd iterations."""
        n_rows = blocks.count_rows()
        if n_rows < self.n_clusters:
            raise ValueError(f"n_samples={n_rows} should be >= n_clusters={self.n_clusters}.")
        rows = device_rows(blocks, device)
        tol = 0.0
        if self.tol > 0:
            _, col_sum, col_sumsq = rows.moments() if rows is not None else blocks.map_reduce(column_moments, device)
            variance = col_sumsq / n_rows - (col_sum / n_rows) ** 2
            tol = float(self.tol * np.mean(np.maximum(variance, 0.0)))
        rng = np.random.default_rng(seed_from(self.random_state))
        seeds = self._seedings(blocks, n_rows, rng, device)
        # with one run on in-memory data, the labels pass also measures the final inertia
        labels_pass_measures = array is not None and len(seeds) == 1
        best = None
        for centers in seeds:
            result = fit_centers(blocks, centers, self.max_iter, tol, device, final_inertia=not labels_pass_measures,
                                 spherical=self._cosine, rows=rows)
            # a restart replaces the kept one only when clearly better: restarts that reach the same
            # optimum (often with the clusters in another order) differ in the last bits of their
            # float32 inertia between processes and thread counts, and must not swap the labels
            if best is None or (result[1] is not None and result[1] < best[1] * (1.0 - RESTART_TIE)):
                best = result
        self.cluster_centers_, self.inertia_, self.n_iter_, labels = best
        self.n_clusters_ = int(self.n_clusters)
        if labels is not None:  # the bounded iterations end with every row's label and the inertia
            self.labels_ = labels
        elif array is not None:
            if rows is not None:
                labels, sqdist = rows.nearest(self.cluster_centers_)
            else:
                labels, sqdist = blocks.map_reduce(assign_nearest, self.cluster_centers_, device, combine=concat_partials)
            self.labels_ = labels
            if labels_pass_measures:
                self.inertia_ = float(sqdist.astype(np.float64).sum())
        return self

    def _fit_cuml(self, array: np.ndarray) -> KMeans:
        """Fit with ``cuml.KMeans`` (same parameters) and keep its state in Clustra's form."""
        import cuml

        if array.shape[0] < self.n_clusters:
            raise ValueError(f"n_samples={array.shape[0]} should be >= n_clusters={self.n_clusters}.")
        init = self.init if isinstance(self.init, np.ndarray) else "scalable-k-means++"
        model = cuml.KMeans(
            n_clusters=self.n_clusters,
            init=init,
            n_init=1 if isinstance(self.init, np.ndarray) else self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=seed_from(self.random_state),
            output_type="numpy",
        ).fit(array)
        self.cluster_centers_ = np.asarray(model.cluster_centers_, np.float32)
        self.inertia_ = float(model.inertia_)
        self.n_iter_ = int(model.n_iter_)
        self.n_clusters_ = int(self.n_clusters)
        self.labels_ = np.asarray(model.labels_, np.int64)
        return self

    def _seedings(self, blocks: Blocks, n_rows: int, rng: np.random.Generator, device: str):
        if isinstance(self.init, np.ndarray):
            centers = np.asarray(self.init, dtype=np.float32)
            if centers.shape != (self.n_clusters, blocks.n_features):
                raise ValueError(
                    f"init has shape {centers.shape}, expected ({self.n_clusters}, {blocks.n_features})"
                )
            return [unit_rows(centers) if self._cosine else centers.copy()]
        size = self.init_sample_size or min(n_rows, max(DEFAULT_INIT_SAMPLE, 50 * self.n_clusters))
        sample = blocks.sample_rows(size, int(rng.integers(2**31)))
        if sample.shape[0] < self.n_clusters:  # a Bernoulli sample can fall short: take every row
            sample = blocks.sample_rows(n_rows, 0)
        seeds = []
        for _ in range(self.n_init):
            if self.init == "random":
                seeds.append(sample[rng.choice(sample.shape[0], self.n_clusters, replace=False)].astype(np.float32))
            else:
                seeds.append(kmeans_plusplus(sample, self.n_clusters, rng, device))
        return seeds

    def assign(self, X) -> Assignment:
        """Nearest center and the distance to it (Euclidean, or cosine distance for ``metric="cosine"``)."""
        return self._assign_rows(self._check_input(X))

    def transform(self, X) -> np.ndarray:
        """Distance of every row to every center, shape (n_samples, n_clusters): Euclidean,
        or the cosine distance ``1 - cos`` for ``metric="cosine"``."""
        return self._distance_matrix(self._check_input(X))

    def assign_detail(self, X) -> tuple[Assignment, np.ndarray]:
        """``(assign(X), transform(X))`` with one input check: what serving answers per record."""
        array = self._check_input(X)
        return self._assign_rows(array), self._distance_matrix(array)

    def score(self, X, y=None) -> float:
        """Opposite of the inertia of ``X`` against the fitted centers."""
        array = self._check_input(X)
        return -float(assign_nearest(array, self._prepared_centers(), self._torch_device())[1].astype(np.float64).sum())

    # -- inference on checked rows ---------------------------------------------------------
    def _prepared_centers(self):
        """The fitted centers prepared for :func:`assign_nearest` on this model's device, kept per model."""
        device = self._torch_device()
        centers = self.cluster_centers_
        return self._prepared("centers", device, (centers,), lambda: prepare_centers(centers, device))

    def _float64_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """``(centers as float64, their squared norms as a (1, k) row)``, kept per model."""
        centers = self.cluster_centers_

        def build():
            wide = centers.astype(np.float64)
            return wide, (wide**2).sum(1)[None, :]

        return self._prepared("centers64", None, (centers,), build)

    def _assign_rows(self, array: np.ndarray) -> Assignment:
        labels, sqdist = assign_nearest(array, self._prepared_centers(), self._torch_device())
        if self._cosine:  # 1 - x.c (a row of zeros: 1)
            dots = np.einsum("ij,ij->i", array, self.cluster_centers_[labels], dtype=np.float64)
            return Assignment(labels, None, np.clip(1.0 - dots, 0.0, 2.0))
        return Assignment(labels, None, np.sqrt(sqdist))

    def _distance_matrix(self, array: np.ndarray) -> np.ndarray:
        array = array.astype(np.float64)
        centers, center_sqnorms = self._float64_centers()
        if self._cosine:
            return np.clip(1.0 - array @ centers.T, 0.0, 2.0)
        sq = (array**2).sum(1)[:, None] - 2 * array @ centers.T + center_sqnorms
        return np.sqrt(np.maximum(sq, 0.0))

    def _fitted_state(self) -> dict:
        return {
            "cluster_centers_": np.asarray(self.cluster_centers_, np.float32),
            "inertia_": float(self.inertia_),
            "n_iter_": int(self.n_iter_),
        }

    def _load_fitted_state(self, state: dict) -> None:
        self.cluster_centers_ = np.asarray(state["cluster_centers_"], np.float32)
        self.inertia_ = float(state["inertia_"])
        self.n_iter_ = int(state["n_iter_"])
        self.n_clusters_ = int(self.cluster_centers_.shape[0])


def device_rows(blocks: Blocks, device: str) -> DeviceRows | None:
    """The fit's rows held on a GPU (:class:`DeviceRows`) for in-memory data on a non-CPU
    device, else None (the CPU runs the Hamerly path or per-block kernels in threads; Dask
    partitions stay on their workers)."""
    if device == "cpu" or not isinstance(blocks, ArrayBlocks):
        return None
    return DeviceRows(blocks.data, device)


def fit_centers(
    blocks: Blocks, centers: np.ndarray, max_iter: int, tol: float, device: str, final_inertia: bool = True,
    spherical: bool = False, rows: DeviceRows | None = None,
):
    """Lloyd iterations from ``centers``, skipping distance computations with Hamerly bounds
    where they apply (:mod:`._hamerly`: in-memory data on the CPU); returns ``(centers,
    inertia, n_iter, labels)``, the same iterations either way. ``labels`` (of every row, for
    the returned centers) comes only from the bounded path, else None; so may ``inertia``
    with ``final_inertia=False``, as for :func:`lloyd`. ``spherical``: the rows are unit
    vectors and every update renormalizes the centers (spherical k-means). ``rows``: the
    same rows held on the device (:func:`device_rows`); the plain iterations then run there."""
    if rows is not None or not _hamerly.available(blocks, device):
        return (*lloyd(blocks, centers, max_iter, tol, device, final_inertia, spherical, rows), None)

    def update(current, counts, sums):
        return _update_centers(blocks, current, counts, sums, device, spherical)

    return _hamerly.hamerly_lloyd(blocks, np.asarray(centers, np.float32), max_iter, tol, update)


def lloyd(
    blocks: Blocks, centers: np.ndarray, max_iter: int, tol: float, device: str, final_inertia: bool = True,
    spherical: bool = False, rows: DeviceRows | None = None,
):
    """Lloyd iterations from ``centers``; returns ``(centers, inertia, n_iter)``.

    Stops after ``max_iter`` iterations or when the squared center shift is at most ``tol``
    (with ``tol=0``: when the assignment no longer changes — the sums are computed around one
    fixed shift, so an unchanged assignment reproduces the centers bit for bit).
    ``inertia`` is measured against the returned centers (one more pass when the last
    iteration moved them), or None with ``final_inertia=False`` when the caller measures it.
    Without ``rows`` an iteration is one :func:`lloyd_partial_sums` per block and a center
    update on the host (:class:`_HostLloyd`); with ``rows`` (the same rows on the device,
    :class:`DeviceRows`) the centers stay on the device and an iteration reads back only its
    inertia and center shift (:class:`_DeviceLloyd`). Both run this one loop.
    """
    centers = np.asarray(centers, dtype=np.float32)
    if rows is not None:
        state = _DeviceLloyd(rows, centers, spherical)
    else:
        state = _HostLloyd(blocks, centers, device, spherical)
    n_iter = 0
    inertia = None
    shift_sq = np.inf
    for n_iter in range(1, max_iter + 1):
        inertia, shift_sq = state.step()
        if shift_sq <= tol:
            break
        inertia = None
    if inertia is None or shift_sq > 0.0:
        if not final_inertia:
            return state.result(), None, n_iter
        inertia = state.inertia()
    return state.result(), float(inertia), n_iter


class _HostLloyd:
    """Lloyd state on the host: per-block :func:`lloyd_partial_sums` around one fixed shift
    (the initial centers' mean), reduced on the driver, and :func:`_update_centers` in numpy."""

    def __init__(self, blocks: Blocks, centers: np.ndarray, device: str, spherical: bool):
        self.blocks, self.device, self.spherical = blocks, device, spherical
        self.centers = centers
        self.shift = centers.mean(axis=0)

    def _sums(self):
        return self.blocks.map_reduce(lloyd_partial_sums, self.centers, self.device, self.shift)

    def step(self) -> tuple[float, float]:
        """One iteration: ``(inertia against the old centers, squared center shift)``."""
        counts, sums, inertia = self._sums()
        updated = _update_centers(self.blocks, self.centers, counts, sums, self.device, self.spherical)
        shift_sq = float(((updated.astype(np.float64) - self.centers) ** 2).sum())
        self.centers = updated
        return inertia, shift_sq

    def inertia(self) -> float:
        """The inertia against the current centers (one more pass)."""
        return self._sums()[2]

    def result(self) -> np.ndarray:
        return self.centers


class _DeviceLloyd:
    """Lloyd state on the device of ``rows``: centers, their fixed shift, the sums and the
    update stay tensors there (:meth:`DeviceRows.lloyd_totals`, :func:`_update_centers_on_device`);
    an iteration copies nothing to the device and reads back one packed
    ``(inertia, squared shift, empty clusters)`` triple. Only an emptied cluster costs more: its
    re-seeding reads which clusters are empty and runs one :meth:`DeviceRows.farthest` pass."""

    def __init__(self, rows: DeviceRows, centers: np.ndarray, spherical: bool):
        self.rows, self.spherical = rows, spherical
        self.centers = to_tensor(centers, rows.device)  # the only copies to the device
        self.shift = to_tensor(centers.mean(axis=0), rows.device)

    def step(self) -> tuple[float, float]:
        """One iteration: ``(inertia against the old centers, squared center shift)``."""
        counts, sums, inertia = self.rows.lloyd_totals(self.centers, self.shift)
        empty = counts == 0
        updated = _update_centers_on_device(self.rows, self.centers, counts, sums, self.spherical)
        shift_sq = _squared_shift(updated, self.centers)
        inertia, shift_sq, n_empty = to_numpy(torch.stack([inertia, shift_sq, empty.sum().double()])).tolist()
        if n_empty:  # rare: re-seed the empty clusters, then measure the shift again
            updated = _update_centers_on_device(self.rows, self.centers, counts, sums, self.spherical, reseed=True)
            shift_sq = float(_squared_shift(updated, self.centers))
        self.centers = updated
        return inertia, shift_sq

    def inertia(self) -> float:
        """The inertia against the current centers (one more pass, one read)."""
        return float(to_numpy(self.rows.lloyd_totals(self.centers, self.shift)[2]))

    def result(self) -> np.ndarray:
        return to_numpy(self.centers)


def _squared_shift(updated: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``sum((updated - centers)^2)`` in float64, a 0-d tensor on their device."""
    return ((updated.double() - centers.double()) ** 2).sum()


def _update_centers_on_device(
    rows: DeviceRows, centers: torch.Tensor, counts: torch.Tensor, sums: torch.Tensor, spherical: bool,
    reseed: bool = False,
) -> torch.Tensor:
    """:func:`_update_centers` on tensors on the device of ``rows``: the means of the filled
    clusters (float64 division, rounded to float32, as on the host); an empty cluster keeps its
    center unless ``reseed``, which gives the empty clusters the rows farthest from ``centers``
    (:meth:`DeviceRows.farthest`; reads the empty clusters' indices back). ``spherical``: every
    center is then scaled to unit length."""
    means = (sums / counts.clamp(min=1).unsqueeze(1)).float()
    updated = torch.where((counts > 0).unsqueeze(1), means, centers)
    if reseed:
        empty = torch.nonzero(counts == 0).flatten()
        _, far_rows = rows.farthest(centers)
        taken = min(int(empty.shape[0]), int(far_rows.shape[0]))
        updated[empty[:taken]] = far_rows[:taken]
    if spherical:  # unit_rows on the device: float64 norms rounded to float32, rows of zeros stay zero
        norms = torch.sqrt((updated.double() ** 2).sum(dim=1)).float()
        updated = updated / torch.where(norms == 0, torch.ones_like(norms), norms).unsqueeze(1)
    return updated


def _update_centers(
    blocks: Blocks, centers: np.ndarray, counts: np.ndarray, sums: np.ndarray, device: str, spherical: bool = False,
) -> np.ndarray:
    """New centers = means; empty clusters take the points farthest from their centers (one extra pass).
    ``spherical``: every center is then scaled to unit length (the mean's direction)."""
    updated = centers.copy()
    filled = counts > 0
    updated[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
    empty = np.flatnonzero(~filled)
    if empty.size:
        _, far_rows = blocks.map_reduce(farthest_points, centers, device, combine=combine_far)
        for slot, cluster in enumerate(empty[: far_rows.shape[0]]):
            updated[cluster] = far_rows[slot]
    return unit_rows(updated) if spherical else updated
