import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM

from cluster_core.algorithms import GaussianMixture
from cluster_core.blocks import ArrayBlocks


@pytest.fixture
def data():
    x, _ = make_blobs(2000, n_features=4, centers=4, cluster_std=[0.5, 1.0, 1.5, 2.0], random_state=1)
    return x.astype(np.float64)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_same_init_same_likelihood_as_sklearn(data, covariance_type):
    init = {
        "means_init": data[[0, 10, 20, 30]],
        "weights_init": np.full(4, 0.25),
        "precisions_init": np.stack([np.eye(4)] * 4) if covariance_type == "full" else np.ones((4, 4)),
    }
    ours = GaussianMixture(4, covariance_type=covariance_type, max_iter=30, tol=0, **init).fit(data)
    with pytest.warns(ConvergenceWarning):
        theirs = SkGM(4, covariance_type=covariance_type, max_iter=30, tol=0, **init).fit(data)
    assert ours.score(data) == pytest.approx(theirs.score(data), abs=1e-6)
    assert np.allclose(np.sort(ours.weights_), np.sort(theirs.weights_), atol=1e-6)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_probabilities_and_assignment(data, covariance_type):
    model = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(data)
    proba = model.predict_proba(data)
    assert proba.shape == (2000, 4)
    assert np.allclose(proba.sum(1), 1.0)
    result = model.assign(data)
    assert np.array_equal(result.labels, proba.argmax(1))
    assert np.allclose(result.probability, proba.max(1))
    assert result.distance is None
    assert model.converged_


def test_blocked_fit_equals_whole(data):
    whole = GaussianMixture(3, random_state=5).fit(data)
    blocked = GaussianMixture(3, random_state=5).fit(ArrayBlocks(data.astype(np.float32), 333))
    assert whole.lower_bound_ == pytest.approx(blocked.lower_bound_, abs=1e-5)


def test_stable_far_from_origin(data):
    shifted = data + 1e6
    model = GaussianMixture(4, covariance_type="full", random_state=0).fit(shifted)
    reference = GaussianMixture(4, covariance_type="full", random_state=0).fit(data)
    assert model.score(shifted) == pytest.approx(reference.score(data), abs=0.05)


def test_ill_defined_covariance_message():
    x = np.zeros((20, 3))
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, reg_covar=0.0).fit(x)


def test_bic_prefers_true_count(data):
    bics = {k: GaussianMixture(k, random_state=0).fit(data).bic(data) for k in (1, 4)}
    assert bics[4] < bics[1]
