import dask
import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from cluster_core.algorithms import KMeans
from cluster_core.blocks import ArrayBlocks, DaskBlocks
from cluster_core.kernels.kmeans import assign_nearest, farthest_points, kmeans_plusplus, lloyd_partial_sums


@pytest.fixture
def blobs():
    x, y = make_blobs(3000, n_features=6, centers=5, cluster_std=1.5, random_state=0)
    return x.astype(np.float32), y


def test_partial_sums_match_numpy(blobs):
    x, _ = blobs
    centers = x[:7]
    counts, sums, inertia = lloyd_partial_sums(x, centers)
    d2 = ((x[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(-1)
    labels = d2.argmin(1)
    assert np.array_equal(counts, np.bincount(labels, minlength=7))
    for j in range(7):
        assert np.allclose(sums[j], x[labels == j].sum(0), rtol=1e-5, atol=1e-3)
    assert inertia == pytest.approx(d2.min(1).sum(), rel=1e-4)
    far_d, far_x = farthest_points(x, centers)
    assert far_d[0] == pytest.approx(d2.min(1).max(), rel=1e-4)
    assert np.array_equal(far_x[0], x[d2.min(1).argmax()])


def test_same_init_same_result_as_sklearn(blobs):
    x, _ = blobs
    init = x[[0, 500, 1000, 1500, 2000]]
    ours = KMeans(5, init=init, n_init=1, max_iter=50, tol=0).fit(x)
    theirs = SkKMeans(5, init=init, n_init=1, max_iter=50, tol=0, algorithm="lloyd").fit(x)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-4)
    assert adjusted_rand_score(ours.labels_, theirs.labels_) == pytest.approx(1.0)


def test_recovers_blobs_and_predicts_consistently(blobs):
    x, y = blobs
    model = KMeans(5, random_state=0).fit(x)
    assert adjusted_rand_score(y, model.labels_) > 0.95
    assert np.array_equal(model.predict(x), model.labels_)
    assert model.transform(x).shape == (3000, 5)
    assert model.score(x) == pytest.approx(-model.inertia_, rel=1e-4)


def test_dask_blocks_give_the_same_model(blobs):
    x, _ = blobs
    parts = [dask.delayed(x[i : i + 700]) for i in range(0, len(x), 700)]
    local = KMeans(5, random_state=3, n_init=2).fit(ArrayBlocks(x, 700))
    remote = KMeans(5, random_state=3, n_init=2).fit(DaskBlocks(parts, n_features=6))
    assert np.allclose(local.cluster_centers_, remote.cluster_centers_, atol=1e-4)
    # in memory the inertia is summed from exact per-row distances; Dask blocks take it from the
    # float32 GEMM scores (||c||^2 - 2 c.x + ||x||^2), whose rounding is ~1e-6 of the total
    exact = ((x[:, None, :].astype(np.float64) - local.cluster_centers_[None].astype(np.float64)) ** 2).sum(-1).min(1).sum()
    assert local.inertia_ == pytest.approx(exact, rel=1e-9)
    assert remote.inertia_ == pytest.approx(exact, rel=1e-5)


def test_empty_cluster_is_reseeded():
    x = np.vstack([np.zeros((50, 2)), np.ones((50, 2)) * 10]).astype(np.float32)
    x += np.random.default_rng(0).normal(0, 0.1, x.shape).astype(np.float32)
    init = np.array([[0, 0], [10, 10], [1000, 1000]], np.float32)  # third center attracts nothing
    model = KMeans(3, init=init, n_init=1).fit(x)
    assert np.bincount(model.labels_, minlength=3).min() > 0
    assert np.all(np.abs(model.cluster_centers_) < 20)


def test_kmeans_plusplus_spreads_seeds():
    x = np.repeat(np.eye(4, dtype=np.float32) * 100, 50, axis=0)
    seeds = kmeans_plusplus(x, 4, np.random.default_rng(0))
    assert len({tuple(s) for s in seeds}) == 4


def test_chunked_assignment_matches_unchunked(monkeypatch, blobs):
    import cluster_core.kernels._torch as torch_kernels

    x, _ = blobs
    centers = x[:9]
    whole = assign_nearest(x, centers)
    monkeypatch.setattr(torch_kernels, "CHUNK_BYTES", 4096)
    chunked = assign_nearest(x, centers)
    assert np.array_equal(whole[0], chunked[0])


def test_many_clusters(blobs):
    x, _ = blobs
    model = KMeans(1000, n_init=1, max_iter=5, random_state=0).fit(x)
    assert model.cluster_centers_.shape == (1000, 6)


@pytest.mark.parametrize(
    "params, data, message",
    [
        ({"n_clusters": 10}, np.zeros((3, 2)), "n_samples=3 should be >= n_clusters=10."),
        ({"n_clusters": 0}, np.zeros((3, 2)), "'n_clusters' parameter of KMeans must be an int in the range [1, inf)"),
        ({"n_clusters": 2, "init": "bogus"}, np.zeros((3, 2)), "'init' parameter of KMeans must be"),
    ],
)
def test_errors_name_the_value(params, data, message):
    with pytest.raises(ValueError) as info:
        KMeans(**params).fit(data)
    assert message in str(info.value)


def test_data_far_from_the_origin(blobs):
    x, y = blobs
    near = KMeans(5, random_state=0, n_init=5).fit(x)
    far = KMeans(5, random_state=0, n_init=5).fit(x.astype(np.float64) + 1e6)
    assert adjusted_rand_score(y, far.labels_) > 0.95
    assert far.inertia_ == pytest.approx(near.inertia_, rel=0.02)  # float32 storage of 1e6 costs a little


def test_cpu_primitives_match_torch():
    import torch

    from cluster_core.kernels._cpu import column_argmin, row_argmin
    from cluster_core.kernels._torch import matmul, row_min

    rng = np.random.default_rng(0)
    scores = rng.standard_normal((1001, 37)).astype(np.float32)
    bias = rng.standard_normal(37).astype(np.float32)
    scores[5, 3] = scores[5, 30] = -100.0 - bias[3]  # a tie goes to the first index
    scores[5, 30] -= bias[30] - bias[3]
    best, labels = row_argmin(scores, bias)
    expected = scores + bias
    assert np.array_equal(labels, expected.argmin(axis=1)) and np.array_equal(best, expected.min(axis=1))
    assert labels[5] == 3
    values, indices = row_min(torch.from_numpy(scores), torch.from_numpy(bias))
    assert torch.equal(indices, torch.from_numpy(labels)) and torch.equal(values, torch.from_numpy(best))
    column_best, column_labels = column_argmin(np.ascontiguousarray(expected.T))
    assert np.array_equal(column_labels, labels) and np.array_equal(column_best, best)
    a, b = torch.randn(5, 7), torch.randn(9, 7)
    assert torch.allclose(matmul(a, b.T), a @ b.T, atol=1e-5)


@pytest.mark.parametrize("n_clusters", [5, 300])  # both score layouts (see ROW_LAYOUT_MAX_K)
def test_assignment_and_lloyd_sums_match_brute_force(n_clusters):
    from cluster_core.kernels.kmeans import assign_nearest, lloyd_partial_sums

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3000, 7)) * 3 + 50).astype(np.float32)
    centers = x[rng.choice(3000, n_clusters, replace=False)] + 0.01
    sqdist = ((x.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None]) ** 2).sum(axis=2)
    expected = sqdist.argmin(axis=1)
    labels, distances = assign_nearest(x, centers, "cpu")
    assert (labels == expected).mean() > 0.999
    np.testing.assert_allclose(distances, sqdist.min(axis=1), rtol=1e-3, atol=1e-2)
    counts, sums, inertia = lloyd_partial_sums(x, centers, "cpu")
    assert np.array_equal(counts, np.bincount(labels, minlength=n_clusters))
    np.testing.assert_allclose(sums, np.stack([x[labels == j].sum(axis=0) for j in range(n_clusters)]), rtol=1e-4, atol=1e-2)
    assert inertia == pytest.approx(sqdist.min(axis=1).sum(), rel=1e-4)


@pytest.mark.parametrize("make_blocks", [lambda x: ArrayBlocks(x, 700), lambda x: DaskBlocks(np.array_split(x, 3), 6)], ids=["array", "dask"])
def test_tol_zero_stops_when_the_assignment_stops_changing(blobs, make_blocks):
    """Strict convergence (scikit-learn's rule for tol=0): the sums are taken around one fixed
    shift, so an unchanged assignment reproduces the centers exactly and Lloyd stops."""
    x, _ = blobs
    model = KMeans(5, n_init=1, max_iter=300, tol=0, random_state=0).fit(make_blocks(x))
    assert model.n_iter_ < 50
    # restarted from its own centers: one iteration reproduces them up to rounding, the next exactly
    again = KMeans(5, init=model.cluster_centers_, n_init=1, max_iter=300, tol=0).fit(make_blocks(x))
    assert again.n_iter_ <= 2


def test_a_restart_within_float_rounding_of_the_kept_one_does_not_replace_it(monkeypatch):
    """Restarts that reach the same optimum differ in the last bits of the float32 inertia between
    processes and thread counts (often with the clusters in another order): the first is kept."""
    import cluster_core.algorithms.kmeans as module
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(600, centers=4, n_features=3, random_state=0)
    real = module.fit_centers

    def kept_restart(inertias):
        calls = []

        def fit_centers(*args, **kwargs):
            centers, inertia, n_iter, labels = real(*args, **kwargs)
            calls.append(len(calls) + 1)
            return centers, inertias[len(calls) - 1], calls[-1], labels  # n_iter tags the restart

        monkeypatch.setattr(module, "fit_centers", fit_centers)
        return module.KMeans(4, n_init=len(inertias), random_state=0, device="cpu").fit(x.astype(np.float32)).n_iter_

    assert kept_restart([100.0, 100.0 * (1 - 1e-8), 100.0 * (1 - 5e-7)]) == 1
    assert kept_restart([100.0, 90.0, 90.0 * (1 - 1e-9)]) == 2
