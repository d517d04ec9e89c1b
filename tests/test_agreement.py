"""The contingency-table scores equal scikit-learn's, value for value (cluster_core.agreement)."""

import numpy as np
import pytest
from sklearn import metrics as skm

from cluster_core.agreement import Contingency, adjusted_rand, codes


def _labellings():
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 7, 5000)
    yield "random", truth, rng.integers(0, 5, 5000)
    yield "close", truth, np.where(rng.random(5000) < 0.9, truth, rng.integers(-1, 9, 5000))
    yield "identical", truth, truth.copy()
    yield "relabelled", truth, (truth * 3 + 2) % 7
    yield "one cluster", truth, np.zeros(5000, np.int64)
    yield "one class", np.zeros(300, np.int64), rng.integers(0, 3, 300)
    yield "both one", np.zeros(300, np.int64), np.full(300, 4)
    yield "singletons", np.arange(50), rng.integers(0, 4, 50)
    yield "gaps and noise", rng.choice([0, 3, 9], 2000), rng.choice([-1, 2, 40], 2000)
    yield "sparse values", rng.integers(0, 3, 400), rng.choice([-5, 10**9], 400)


@pytest.mark.parametrize("name, truth, labels", list(_labellings()), ids=[case[0] for case in _labellings()])
def test_scores_equal_scikit_learn(name, truth, labels):
    scores = Contingency(codes(truth), codes(labels)).scores()
    homogeneity, completeness, _ = skm.homogeneity_completeness_v_measure(truth, labels)
    assert scores["ari"] == skm.adjusted_rand_score(truth, labels)
    assert scores["nmi"] == skm.normalized_mutual_info_score(truth, labels)
    assert scores["homogeneity"] == homogeneity
    assert scores["completeness"] == completeness
    assert adjusted_rand(truth, labels) == skm.adjusted_rand_score(truth, labels)


def test_empty_labellings_agree_fully_as_in_scikit_learn():
    empty = np.zeros(0, np.int64)
    assert Contingency(empty, empty).scores() == {"ari": 1.0, "nmi": 1.0, "homogeneity": 1.0, "completeness": 1.0}
    assert skm.adjusted_rand_score(empty, empty) == 1.0


def test_bad_labellings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="equal length"):
        Contingency(np.zeros(3, np.int64), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="non-negative"):
        Contingency(np.array([0, -1]), np.array([0, 1]))
