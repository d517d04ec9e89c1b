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
        GaussianMixture(2, reg_covar=0.0, discrete_features=None).fit(x)


def test_constant_columns_are_two_valued_and_fit_without_regularisation():
    x = np.zeros((20, 3))
    model = GaussianMixture(2, reg_covar=0.0, random_state=0).fit(x)
    assert model.discrete_features_.tolist() == [0, 1, 2]
    assert model.covariances_.shape == (2, 0, 0)


def test_bic_prefers_true_count(data):
    bics = {k: GaussianMixture(k, random_state=0).fit(data).bic(data) for k in (1, 4)}
    assert bics[4] < bics[1]


# -- two-valued columns: Bernoulli emissions (a mixed mixture) ---------------------------------


def _mixed_table(seed=0, n=900):
    """Three groups: two overlapping Gaussian columns, a flag whose rate differs by group,
    a one-hot column block and a missing-value indicator set on 3 rows only."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    continuous = rng.normal(0.0, 1.0, (n, 2)) + truth[:, None] * 1.5
    flag = rng.random(n) < np.array([0.1, 0.5, 0.9])[truth]
    one_hot = np.eye(3)[np.where(rng.random(n) < 0.8, truth, rng.integers(0, 3, n))]
    indicator = np.zeros(n)
    indicator[:3] = 1.0
    return np.column_stack([continuous, flag, one_hot, indicator]).astype(np.float32), truth


def test_auto_finds_the_two_valued_columns_and_models_them_as_bernoulli():
    x, _ = _mixed_table()
    model = GaussianMixture(3, random_state=0).fit(x)
    assert model.discrete_features_.tolist() == [2, 3, 4, 5, 6]
    assert model.covariances_.shape == (3, 2, 2)
    assert model.bernoulli_.shape == (3, 5)
    assert np.all((model.bernoulli_ > 0) & (model.bernoulli_ < 1))
    # the one-hot block (columns 3-5) is one categorical variable; the flags are Bernoullis
    assert model.discrete_groups_.tolist() == [-1, 0, 0, 0, -1]
    np.testing.assert_allclose(model.bernoulli_[:, 1:4].sum(axis=1), 1.0)
    # means_ of a two-valued column is the component's rate of its upper value
    np.testing.assert_allclose(model.means_[:, 2:], model.bernoulli_)
    # parameters: full covariances and means of 2 columns, 2 flag rates + 2 free category
    # shares per component, 2 free weights
    assert model.n_parameters() == 3 * (3 + 2 + 2 + 2) + 2


def test_bernoulli_columns_recover_groups_a_gaussian_on_flags_misses():
    x, truth = _mixed_table()
    from sklearn.metrics import adjusted_rand_score

    mixed = GaussianMixture(3, n_init=3, random_state=0).fit(x)
    gaussian = GaussianMixture(3, n_init=3, random_state=0, discrete_features=None).fit(x)
    assert adjusted_rand_score(truth, mixed.predict(x)) > adjusted_rand_score(truth, gaussian.predict(x)) + 0.1
    # the Gaussian's likelihood is dominated by the near-constant columns; the mixed one is not
    assert mixed.bic(x) > 0 > gaussian.bic(x)


def test_bic_chooses_the_planted_count_on_a_mixed_table():
    x, _ = _mixed_table()
    bics = {k: GaussianMixture(k, n_init=2, random_state=0).fit(x).bic(x) for k in range(2, 7)}
    assert min(bics, key=bics.get) == 3


def test_bernoulli_log_likelihood_matches_a_direct_computation():
    x, _ = _mixed_table(n=300)
    model = GaussianMixture(3, random_state=1).fit(x)
    from scipy.stats import multivariate_normal

    continuous, binary = x[:, :2].astype(np.float64), x[:, 2:].astype(np.float64)
    flags, one_hot = [0, 4], [1, 2, 3]
    joint = np.column_stack([
        np.log(model.weights_[c])
        + multivariate_normal(model.means_[c, :2], model.covariances_[c]).logpdf(continuous)
        + binary[:, flags] @ np.log(model.bernoulli_[c, flags]) + (1 - binary[:, flags]) @ np.log1p(-model.bernoulli_[c, flags])
        + binary[:, one_hot] @ np.log(model.bernoulli_[c, one_hot])
        for c in range(3)
    ])
    np.testing.assert_allclose(model.score_samples(x), np.logaddexp.reduce(joint, axis=1), rtol=1e-6)


def test_two_valued_columns_found_across_blocks_and_saved_without_pickle(tmp_path):
    x, _ = _mixed_table()
    x[:, 3] *= 0.5  # a weighted one-hot column: values 0 and 0.5
    whole = GaussianMixture(3, random_state=2).fit(x)
    blocked = GaussianMixture(3, random_state=2).fit(ArrayBlocks(x, 100))
    assert blocked.discrete_features_.tolist() == whole.discrete_features_.tolist() == [2, 3, 4, 5, 6]
    assert whole.discrete_scale_[1] == pytest.approx(0.5)
    np.testing.assert_allclose(blocked.predict_proba(x), whole.predict_proba(x), atol=1e-5)
    restored = GaussianMixture.from_state(whole.get_state())
    np.testing.assert_array_equal(restored.predict(x), whole.predict(x))
    np.testing.assert_allclose(restored.score_samples(x), whole.score_samples(x))


def test_a_column_with_three_values_is_gaussian_and_given_columns_are_checked():
    x, _ = _mixed_table()
    x[0, 2] = 0.5  # the flag now has three values
    assert 2 not in GaussianMixture(3, random_state=0).fit(x).discrete_features_
    with pytest.raises(ValueError, match="column 2 has more than two distinct values"):
        GaussianMixture(3, discrete_features=[2]).fit(x)
    with pytest.raises(ValueError, match="outside 0..6"):
        GaussianMixture(3, discrete_features=[9]).fit(x)
    model = GaussianMixture(3, discrete_features=[3, 4], random_state=0).fit(x)
    assert model.discrete_features_.tolist() == [3, 4]


def test_models_saved_before_bernoulli_columns_load_as_all_gaussian():
    x, _ = _mixed_table()
    state = GaussianMixture(3, random_state=0, discrete_features=None).fit(x).get_state()
    assert "bernoulli_" not in state["fitted"]
    assert GaussianMixture.from_state(state).discrete_features_.size == 0


def test_a_restart_within_tol_of_the_kept_one_does_not_replace_it(monkeypatch):
    """Restarts that reach the same optimum differ in the last bits between processes (thread counts,
    GEMM backends), often with the components in another order: the first of them is kept."""
    x, _ = _mixed_table()

    def kept_restart(bounds):
        model = GaussianMixture(3, n_init=len(bounds), tol=1e-3, random_state=0)
        real, runs = model._em, []

        def em(blocks, rng, device):
            out = real(blocks, rng, device)
            out["lower_bound_"] = bounds[len(runs)]
            runs.append(out)
            out["n_iter_"] = len(runs)  # tags which restart this was
            return out

        monkeypatch.setattr(model, "_em", em)
        return model.fit(x).n_iter_

    assert kept_restart([-1.0, -1.0 + 1e-12, -1.0 + 5e-4]) == 1
    assert kept_restart([-1.0, -0.5, -0.5 + 1e-12]) == 2
