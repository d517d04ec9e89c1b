"""scikit-learn's own estimator checks run against Clustra's estimators (STYLE: the estimator contract)."""

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from cluster_core.algorithms import HDBSCAN, GaussianMixture, KMeans


@parametrize_with_checks(
    [
        KMeans(3, n_init=1, device="cpu"),
        KMeans(device="cpu"),
        KMeans(3, n_init=1, device="cpu", metric="cosine"),
        GaussianMixture(2, device="cpu"),
        GaussianMixture(device="cpu"),
        HDBSCAN(5, device="cpu"),
        HDBSCAN(device="cpu"),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the checks feed degenerate data on purpose
        check(estimator)
