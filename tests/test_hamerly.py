"""Hamerly-bounded Lloyd iterations: the same iterations as plain Lloyd, valid bounds."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from cluster_core.algorithms import KMeans, _hamerly
from cluster_core.algorithms.kmeans import _update_centers, fit_centers, lloyd
from cluster_core.blocks import ArrayBlocks, DaskBlocks
from cluster_core.kernels.kmeans import assign_nearest, kmeans_plusplus


@pytest.fixture
def many_blobs():
    x, _ = make_blobs(12_000, n_features=8, centers=60, cluster_std=1.0, random_state=0)
    return x.astype(np.float32)


def _init(x, k, seed=0):
    rng = np.random.default_rng(seed)
    return kmeans_plusplus(x[rng.choice(x.shape[0], 4000, replace=False)], k, rng)


def _update(blocks):
    return lambda centers, counts, sums: _update_centers(blocks, centers, counts, sums, "cpu")


def _distances(x, centers):
    return np.sqrt(((x[:, None, :].astype(np.float64) - centers[None, :, :].astype(np.float64)) ** 2).sum(axis=2))


@pytest.mark.parametrize("k", [7, 64, 200])
def test_same_iterations_as_plain_lloyd(many_blobs, k):
    """Same centers after each of the first iterations, up to float rounding (an exact tie
    between two centers may go either way and move both); over more iterations such
    differences grow, so the final inertia is compared."""
    blocks = ArrayBlocks(many_blobs, block_rows=3000)
    init = _init(many_blobs, k)
    for iterations in (1, 2, 3):
        plain = lloyd(blocks, init, iterations, 0.0, "cpu")[0]
        bounded, _, n_iter, _ = _hamerly.hamerly_lloyd(blocks, init, iterations, 0.0, _update(blocks))
        assert n_iter == iterations
        same = np.all(np.abs(bounded - plain) < 1e-4, axis=1)
        assert same.mean() >= 0.97, f"{np.count_nonzero(~same)} of {k} centers differ after {iterations} iterations"
    plain_inertia = lloyd(blocks, init, 10, 0.0, "cpu")[1]
    bounded, inertia, _, labels = _hamerly.hamerly_lloyd(blocks, init, 10, 0.0, _update(blocks))
    assert inertia == pytest.approx(plain_inertia, rel=1e-3)
    nearest_labels, sqdist = assign_nearest(many_blobs, bounded)
    assert inertia == pytest.approx(float(sqdist.astype(np.float64).sum()), rel=1e-5)
    assert (labels == nearest_labels).mean() > 0.999


def test_bounds_stay_valid_and_labels_exact(many_blobs):
    """After each step: upper >= distance to the assigned center, lower <= distance to every
    other center, the label is the nearest center, and counts and sums match the labels."""
    x = many_blobs[:4000]
    centers = _init(many_blobs, 40)
    shift = centers.mean(axis=0)
    state = _hamerly._BlockState(x, 40, shift)
    counts, sums, candidates = state.step(_hamerly._Centers(centers, shift, None), initial=True)
    assert candidates == x.shape[0]
    rows = np.arange(x.shape[0])
    skipped = 0
    for _ in range(5):
        updated = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        moved = updated.astype(np.float64) - centers
        centers = updated
        counts_delta, sums_delta, candidates = state.step(_hamerly._Centers(centers, shift, moved))
        counts, sums = counts + counts_delta, sums + sums_delta
        skipped += x.shape[0] - candidates
        dist = _distances(x, centers)
        assert np.all(state.upper >= dist[rows, state.labels] - 1e-3)
        others = dist.copy()
        others[rows, state.labels] = np.inf
        assert np.all(state.lower <= others.min(axis=1) + 1e-3)
        assert (dist.argmin(axis=1) == state.labels).mean() > 0.999
        assert np.array_equal(np.bincount(state.labels, minlength=40), counts)
        expected_sums = np.zeros_like(sums)
        np.add.at(expected_sums, state.labels, x.astype(np.float64))
        np.testing.assert_allclose(sums, expected_sums, atol=1e-6 * np.abs(x).sum())
    assert skipped > 0  # the bounds did skip rows: the test exercised the filter, not only the GEMM


def test_single_center_and_chunks_with_partial_tiles(monkeypatch, many_blobs):
    """k = 1 (no other center: nothing to bound below; padded to a whole center block) and
    candidate sets split over several filter chunks that end in partial tiles."""
    monkeypatch.setattr(_hamerly, "CHUNK_ROWS", 1000)
    blocks = ArrayBlocks(many_blobs)
    centers, inertia, n_iter, labels = _hamerly.hamerly_lloyd(blocks, many_blobs[:1], 5, 0.0, _update(blocks))
    np.testing.assert_allclose(centers[0], many_blobs.astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-4)
    assert np.all(labels == 0) and n_iter == 2  # the second iteration moves nothing: strict convergence
    init = _init(many_blobs, 30)
    plain_inertia = lloyd(blocks, init, 8, 0.0, "cpu")[1]
    assert _hamerly.hamerly_lloyd(blocks, init, 8, 0.0, _update(blocks))[1] == pytest.approx(plain_inertia, rel=1e-3)


def test_tol_zero_stops_when_nothing_changes(many_blobs):
    """With tol = 0 the iterations stop once no row changes center, at a fixed point: every
    center is the mean of its rows and every row's center is its nearest."""
    blocks = ArrayBlocks(many_blobs)
    init = _init(many_blobs, 60)
    centers, _, n_iter, labels = _hamerly.hamerly_lloyd(blocks, init, 300, 0.0, _update(blocks))
    plain_iter = lloyd(blocks, init, 300, 0.0, "cpu")[2]
    assert n_iter < 300 and abs(n_iter - plain_iter) <= 2
    assert np.array_equal(labels, _distances(many_blobs, centers).argmin(axis=1))
    sums = np.zeros(centers.shape, np.float64)
    np.add.at(sums, labels, many_blobs.astype(np.float64))
    means = sums / np.bincount(labels, minlength=60)[:, None]
    np.testing.assert_allclose(centers, means, rtol=1e-5, atol=1e-5)


def test_empty_clusters_are_reseeded(many_blobs):
    init = _init(many_blobs, 128)
    init[:5] = 1e4  # five centers far from every row: empty after the first assignment
    model = KMeans(128, init=init, n_init=1, max_iter=6, tol=0, device="cpu").fit(many_blobs)
    assert np.all(np.abs(model.cluster_centers_) < 1e3)
    assert np.bincount(model.labels_, minlength=128).min() > 0
    # plain passes (Dask blocks) re-seed the same way; 128 centers on 60 blobs is a setting
    # where rounding-level differences grow over iterations, hence the loose comparison
    plain = KMeans(128, init=init, n_init=1, max_iter=6, tol=0, device="cpu").fit(DaskBlocks([many_blobs], 8))
    assert model.inertia_ == pytest.approx(plain.inertia_, rel=0.03)


def test_fit_centers_returns_labels_only_from_the_bounded_path(many_blobs):
    init = _init(many_blobs, 20)
    centers, inertia, n_iter, labels = fit_centers(ArrayBlocks(many_blobs), init, 10, 0.0, "cpu")
    assert labels is not None and labels.shape == (many_blobs.shape[0],)
    dask_result = fit_centers(DaskBlocks([many_blobs], 4), init, 10, 0.0, "cpu")
    assert dask_result[3] is None
    assert dask_result[1] == pytest.approx(inertia, rel=1e-3)


def test_applies_to_in_memory_cpu_blocks_only(many_blobs):
    assert _hamerly.available(ArrayBlocks(many_blobs), "cpu")
    assert not _hamerly.available(ArrayBlocks(many_blobs), "cuda")
    assert not _hamerly.available(DaskBlocks([many_blobs], 8), "cpu")


def test_fitted_labels_and_inertia_match_a_fresh_assignment(many_blobs):
    model = KMeans(25, n_init=2, random_state=0, device="cpu").fit(many_blobs)
    labels, sqdist = assign_nearest(many_blobs, model.cluster_centers_)
    assert (model.labels_ == labels).mean() > 0.999
    assert model.inertia_ == pytest.approx(float(sqdist.astype(np.float64).sum()), rel=1e-5)
