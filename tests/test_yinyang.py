"""Yinyang-bounded Lloyd iterations: the same iterations as plain Lloyd, valid bounds."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from cluster_core.algorithms import KMeans, _yinyang
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


@pytest.mark.parametrize("k", [130, 200], ids=["k130-padded", "k200"])
def test_same_iterations_as_plain_lloyd(many_blobs, k):
    """Same centers after each of the first iterations, up to float rounding: an exact tie
    between two centers (this data has one) may go either way, moving those two centers; over
    more iterations such differences grow, so the final inertia is compared."""
    blocks = ArrayBlocks(many_blobs, block_rows=3000)
    init = _init(many_blobs, k)
    for iterations in (1, 2, 3):
        plain = lloyd(blocks, init, iterations, 0.0, "cpu")[0]
        bounded, n_iter, done = _yinyang.yinyang_lloyd(blocks, init, iterations, 0.0, _update(blocks))
        assert done and n_iter == iterations
        same = np.all(np.abs(bounded - plain) < 1e-4, axis=1)
        assert same.mean() >= 0.97, f"{np.count_nonzero(~same)} of {k} centers differ after {iterations} iterations"
    plain_inertia = lloyd(blocks, init, 10, 0.0, "cpu")[1]
    bounded = _yinyang.yinyang_lloyd(blocks, init, 10, 0.0, _update(blocks))[0]
    bounded_inertia = float(assign_nearest(many_blobs, bounded)[1].astype(np.float64).sum())
    assert bounded_inertia == pytest.approx(plain_inertia, rel=1e-3)


def test_bounds_stay_valid_and_labels_exact(many_blobs):
    """After each filtered step: upper >= distance to the assigned center, each group's lower
    bound <= distance to every other center of the group, and the label is the nearest."""
    x = many_blobs[:4000]
    centers = _init(many_blobs, 40)  # 3 groups of 16 columns, the last one padded
    columns = _yinyang.center_columns(centers)
    shift = centers.mean(axis=0)
    state = _yinyang._BlockBounds(np.ascontiguousarray(x), shift)
    counts, sums = state.first_assignment(_yinyang._Layout.build(centers, columns, shift))
    width = _yinyang.WIDTH
    for _ in range(4):
        updated = (sums[columns] / np.maximum(counts[columns], 1)[:, None]).astype(np.float32)
        moved = np.sqrt(((updated.astype(np.float64) - centers) ** 2).sum(axis=1))
        centers = updated
        layout = _yinyang._Layout.build(centers, columns, shift)
        drift = np.zeros(layout.centers.shape[0], np.float32)
        drift[columns] = moved
        counts_delta, sums_delta, _ = state.step(layout, drift, drift.reshape(-1, width).max(axis=1))
        counts, sums = counts + counts_delta, sums + sums_delta
        dist = np.sqrt(((x[:, None, :].astype(np.float64) - layout.centers[None, :, :]) ** 2).sum(axis=2))
        dist[:, np.setdiff1d(np.arange(layout.centers.shape[0]), columns)] = np.inf  # padding
        rows = np.arange(x.shape[0])
        assert np.all(state.upper >= dist[rows, state.labels] - 1e-3)
        others = dist.copy()
        others[rows, state.labels] = np.inf
        group_min = others.reshape(x.shape[0], -1, width).min(axis=2)
        assert np.all(state.lower <= group_min + 1e-3)
        nearest = dist.argmin(axis=1)
        assert (nearest == state.labels).mean() > 0.999
        assert np.array_equal(np.bincount(state.labels, minlength=layout.centers.shape[0]), counts)
        expected_sums = np.zeros_like(sums)
        np.add.at(expected_sums, state.labels, x.astype(np.float64))
        np.testing.assert_allclose(sums, expected_sums, atol=1e-6 * np.abs(x).sum())


def test_center_columns_fill_groups_without_overflow(many_blobs):
    centers = _init(many_blobs, 150)
    columns = _yinyang.center_columns(centers)
    assert len(set(columns.tolist())) == 150
    per_group = np.bincount(columns // _yinyang.WIDTH)
    assert per_group.max() <= _yinyang.WIDTH and per_group.size == -(-150 // _yinyang.WIDTH)


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


def test_gives_up_to_plain_passes_when_bounds_do_not_pay(monkeypatch, many_blobs):
    blocks = ArrayBlocks(many_blobs)
    init = _init(many_blobs, 128)
    monkeypatch.setattr(_yinyang, "pays_off", lambda fraction, k: False)
    monkeypatch.setattr(_yinyang, "SETTLING_STEPS", 0)
    _, n_iter, done = _yinyang.yinyang_lloyd(blocks, init, 10, 0.0, _update(blocks))
    assert not done and n_iter == 1 + _yinyang.GIVE_UP_AFTER
    centers, inertia, total = fit_centers(blocks, init, 10, 0.0, "cpu")
    plain_centers, plain_inertia, _ = lloyd(blocks, init, 10, 0.0, "cpu")
    assert total == 10
    assert inertia == pytest.approx(plain_inertia, rel=1e-4)


def test_applies_only_where_it_pays(many_blobs):
    blocks = ArrayBlocks(many_blobs)
    assert _yinyang.available(blocks, "cpu", 128)
    assert not _yinyang.available(blocks, "cpu", 64)
    assert not _yinyang.available(blocks, "cuda", 256)
    assert not _yinyang.available(DaskBlocks([many_blobs], 8), "cpu", 256)
