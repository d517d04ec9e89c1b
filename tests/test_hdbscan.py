import hdbscan
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from cluster_core.algorithms import HDBSCAN
from cluster_core.algorithms.hdbscan import default_min_cluster_size


@pytest.fixture
def blobs():
    x, y = make_blobs(3000, n_features=3, centers=4, cluster_std=[0.5, 1.0, 0.7, 1.5], random_state=4)
    return x.astype(np.float32), y


def test_fit_labels_match_the_hdbscan_package(blobs):
    x, _ = blobs
    ours = HDBSCAN(30, min_samples=8).fit(x)
    theirs = hdbscan.HDBSCAN(min_cluster_size=30, min_samples=8).fit(x.astype(np.float64))
    assert np.array_equal(ours.labels_, theirs.labels_)
    assert ours.n_clusters_ == theirs.labels_.max() + 1


def test_assign_matches_approximate_predict(blobs):
    x, _ = blobs
    rng = np.random.default_rng(0)
    near = x[rng.choice(len(x), 800)] + rng.normal(0, 1.0, (800, 3))
    new = np.vstack([near, rng.uniform(200, 300, (20, 3))]).astype(np.float32)
    ours = HDBSCAN(30, min_samples=8).fit(x)
    theirs = hdbscan.HDBSCAN(min_cluster_size=30, min_samples=8, prediction_data=True).fit(x.astype(np.float64))
    labels, probability = hdbscan.approximate_predict(theirs, new.astype(np.float64))
    result = ours.assign(new)
    assert (result.labels == labels).mean() >= 0.995
    same = result.labels == labels
    assert np.allclose(result.probability[same], probability[same], atol=1e-4)
    assert (result.labels[-20:] == -1).all(), "far-away points are noise"
    assert (result.probability[-20:] == 0).all()


def test_sampled_fit_assigns_every_row(blobs):
    x, y = blobs
    model = HDBSCAN(20, max_fit_samples=500, random_state=0).fit(x)
    assert model.fit_data_.shape[0] < 700
    assert model.labels_.shape == (3000,)
    from sklearn.metrics import adjusted_rand_score

    full = HDBSCAN(20).fit(x)
    assert adjusted_rand_score(full.labels_, model.labels_) > 0.95


def test_state_round_trip(blobs):
    x, _ = blobs
    model = HDBSCAN(30).fit(x)
    again = HDBSCAN.from_state(model.get_state())
    assert np.array_equal(model.predict(x[:500]), again.predict(x[:500]))


def test_no_clusters_means_all_noise():
    x = np.random.default_rng(0).uniform(size=(60, 2)).astype(np.float32)
    model = HDBSCAN(50, min_samples=5).fit(x)
    if model.n_clusters_ == 0:
        assert (model.predict(x) == -1).all()
    else:
        assert model.n_clusters_ >= 1


def test_default_min_cluster_size_rule():
    assert default_min_cluster_size(100) == 5
    assert default_min_cluster_size(100_000) == 500


def test_state_from_tree_matches_prediction_data(blobs):
    from cluster_core.algorithms.hdbscan import state_from_tree

    x, _ = blobs
    reference = hdbscan.HDBSCAN(min_cluster_size=30, min_samples=8, prediction_data=True).fit(x.astype(np.float64))
    state = state_from_tree(reference.condensed_tree_.to_numpy(), reference.labels_, x, 8)
    data = reference.prediction_data_
    n = x.shape[0]
    assert np.allclose(state["core_distances_"], data.core_distances, rtol=1e-4)
    for node, label in data.cluster_map.items():
        assert state["cluster_label_"][node - n] == label
        assert state["cluster_max_lambda_"][node - n] == pytest.approx(data.max_lambdas[node])
    mapped = {node - n for node in data.cluster_map}
    others = [i for i in range(state["cluster_label_"].shape[0]) if i not in mapped]
    assert (state["cluster_label_"][others] == -1).all()
