import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import make_blobs

from cluster_core.algorithms import KMeans
from cluster_core.blocks import ArrayBlocks
from cluster_core.metrics import evaluate_clustering, sample_probabilities


@pytest.fixture
def labelled():
    x, _ = make_blobs(1500, n_features=4, centers=4, cluster_std=2.0, random_state=3)
    x = x.astype(np.float32)
    model = KMeans(4, random_state=0).fit(x)
    return x, model


def test_exact_when_the_sample_covers_every_row(labelled):
    x, model = labelled
    result = evaluate_clustering(ArrayBlocks(x, 400), model.predict, 4, sample_size=10_000)
    assert result["silhouette"] == pytest.approx(skm.silhouette_score(x, model.labels_), abs=1e-5)
    assert result["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(x, model.labels_), rel=1e-5)
    assert result["calinski_harabasz"] == pytest.approx(skm.calinski_harabasz_score(x, model.labels_), rel=1e-5)
    assert sum(result["cluster_sizes"].values()) == 1500


def test_sampled_estimate_within_a_hundredth():
    x, _ = make_blobs(12_000, n_features=8, centers=6, cluster_std=3.0, random_state=7)
    x = x.astype(np.float32)
    model = KMeans(6, random_state=0).fit(x)
    exact = skm.silhouette_score(x, model.labels_)
    for seed in range(3):
        estimate = evaluate_clustering(ArrayBlocks(x), model.predict, 6, sample_size=2000, seed=seed)
        assert estimate["silhouette_sample_size"] < 3000
        assert abs(estimate["silhouette"] - exact) <= 0.01


def test_noise_rows_score_zero_and_are_left_out(labelled):
    x, model = labelled
    noisy = np.where(np.arange(len(x)) % 10 == 0, -1, model.labels_)
    order = {tuple(r): i for i, r in enumerate(x)}

    def assign(block):
        return noisy[[order[tuple(r)] for r in np.asarray(block)]]

    result = evaluate_clustering(ArrayBlocks(x, 500), assign, 4)
    keep = noisy >= 0
    expected = skm.silhouette_score(x[keep], noisy[keep]) * keep.mean()
    assert result["silhouette"] == pytest.approx(expected, abs=1e-5)
    assert result["noise_fraction"] == pytest.approx(0.1, abs=0.001)
    assert result["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(x[keep], noisy[keep]), rel=1e-5)


def test_single_cluster_is_undefined():
    x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    result = evaluate_clustering(ArrayBlocks(x), lambda b: np.zeros(len(b), np.int64), 3)
    assert result["silhouette"] is None and result["davies_bouldin"] is None and result["calinski_harabasz"] is None
    assert result["n_clusters_found"] == 1


def test_allocation_keeps_small_clusters():
    p = sample_probabilities(np.array([100_000, 100]), 1000)
    assert p[1] * 100 >= 50
    assert p[0] * 100_000 == pytest.approx(1000 * 100_000 / 100_100, rel=1e-6)
    assert np.all(sample_probabilities(np.array([10, 10]), 1000) == 1.0)


def test_reference_sample_estimate_within_a_hundredth():
    x, _ = make_blobs(12_000, n_features=8, centers=6, cluster_std=3.0, random_state=7)
    x = np.vstack([x, np.full((30, 8), 40.0) + np.random.default_rng(0).normal(size=(30, 8))]).astype(np.float32)
    model = KMeans(7, random_state=0).fit(x)
    assert np.bincount(model.labels_).min() == 30  # a small cluster: all its rows are queries and references
    exact = skm.silhouette_score(x, model.labels_)
    for seed in range(3):
        estimate = evaluate_clustering(ArrayBlocks(x, 1000), model.predict, 7, sample_size=2000, reference_size=4000, seed=seed)
        assert 3000 < estimate["silhouette_reference_size"] < 6000
        assert abs(estimate["silhouette"] - exact) <= 0.01
    everything = evaluate_clustering(ArrayBlocks(x), model.predict, 7, sample_size=20_000, reference_size=0)
    assert everything["silhouette"] == pytest.approx(exact, abs=1e-5)


def test_reference_path_same_on_dask_blocks_as_in_memory():
    import dask

    from cluster_core.blocks import DaskBlocks

    x, _ = make_blobs(6000, n_features=5, centers=4, cluster_std=2.0, random_state=5)
    x = x.astype(np.float32)
    model = KMeans(4, random_state=0).fit(x)
    local = ArrayBlocks(x, 700)
    remote = DaskBlocks([dask.delayed(x[i : i + 700]) for i in range(0, 6000, 700)], n_features=5)
    options = {"sample_size": 1000, "reference_size": 2000, "seed": 2}
    a = evaluate_clustering(local, model.predict, 4, **options)
    b = evaluate_clustering(remote, model.predict, 4, **options)
    assert a["silhouette_reference_size"] == b["silhouette_reference_size"] < 6000
    assert a["silhouette"] == pytest.approx(b["silhouette"], abs=1e-9)
    assert abs(a["silhouette"] - skm.silhouette_score(x, model.labels_)) <= 0.01


def test_known_labels_read_each_view_and_assign_anything_else():
    from cluster_core.metrics import KnownLabels, assign_all

    x, _ = make_blobs(5000, n_features=3, centers=3, random_state=1)
    x = x.astype(np.float32)
    model = KMeans(3, random_state=0).fit(x)
    labels = assign_all(ArrayBlocks(x, 700), model.predict)
    np.testing.assert_array_equal(labels, model.predict(x))
    calls = []

    def fallback(block):
        calls.append(block.shape[0])
        return model.predict(block)

    known = KnownLabels(x, labels, fallback)
    np.testing.assert_array_equal(known(x[1234:2345]), labels[1234:2345])
    np.testing.assert_array_equal(known(x[4990:]), labels[4990:])
    assert calls == []  # row views: read, not assigned
    np.testing.assert_array_equal(known(x[100:200].copy()), labels[100:200])  # a copy: assigned
    np.testing.assert_array_equal(known(x[::2][:50]), labels[::2][:50])  # not consecutive rows: assigned
    moved = x[:300] + 5.0  # other rows (unit rows for the cosine metric, say): assigned
    np.testing.assert_array_equal(known(moved), model.predict(moved))
    assert calls == [100, 50, 300]
    with pytest.raises(ValueError, match="labels has 10 entries, expected one per row of data \\(5000\\)"):
        KnownLabels(x, labels[:10], fallback)


def test_metrics_from_labels_computed_once_equal_those_of_a_pass_each():
    from cluster_core.metrics import KnownLabels, assign_all

    x, _ = make_blobs(30_000, n_features=6, centers=5, cluster_std=2.0, random_state=4)
    x = x.astype(np.float32)
    model = KMeans(5, random_state=0).fit(x)
    blocks = ArrayBlocks(x, 4096)
    counted = []

    def predict(block):
        counted.append(block.shape[0])
        return model.predict(block)

    options = {"sample_size": 2000, "reference_size": 8000, "seed": 3}
    each_pass = evaluate_clustering(blocks, predict, 5, **options)
    assert sum(counted) == 2 * 30_000
    counted.clear()
    known = KnownLabels(x, assign_all(blocks, predict), predict)
    once = evaluate_clustering(blocks, known, 5, **options)
    assert sum(counted) == 30_000
    assert once == each_pass


@pytest.mark.parametrize("cosine", [False, True], ids=["euclidean", "cosine"])
def test_distance_sums_per_cluster_equal_brute_force_over_tiles(cosine):
    """Rows over several tiles, 40 label values with gaps and noise: each query's summed distance to
    every cluster's rows (rows are put in label order inside; the caller's order must not matter)."""
    from scipy.spatial.distance import cdist

    from cluster_core.metrics import TILE, _distance_sums

    rng = np.random.default_rng(5)
    rows = rng.normal(size=(2 * TILE + 333, 6)).astype(np.float32)
    sample = rng.normal(size=(TILE + 17, 6)).astype(np.float32)
    if cosine:
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    labels = rng.integers(-1, 40, rows.shape[0])
    labels[labels == 7] = 8  # a cluster without rows
    got = _distance_sums(rows, labels, sample, 40, "cpu", cosine)
    distances = cdist(sample.astype(np.float64), rows.astype(np.float64), "cosine" if cosine else "euclidean")
    expected = np.stack([distances[:, labels == c].sum(axis=1) for c in range(40)], axis=1)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-3)
    assert (got[:, 7] == 0).all()
