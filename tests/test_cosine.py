"""Cosine distance: spherical k-means against a reference, HDBSCAN/Genie on unit rows, the
cosine silhouette, the setting, the CLI, apply and serving, and text embeddings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, silhouette_score

from cluster_core.algorithms import HDBSCAN, Genie, KMeans
from cluster_core.blocks import ArrayBlocks, DaskBlocks
from cluster_core.config import TrainConfig
from cluster_core.distance import unit_rows
from cluster_core.errors import InvalidInputError
from cluster_core.metrics import evaluate_clustering
from cluster_core.validation import validated

CLUSTRA = [sys.executable, "-m", "clustra.cli"]


def directions(n_per: int = 150, k: int = 4, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows scattered around ``k`` directions with very different lengths (what cosine ignores)."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(k, d))
    rows = [(a + rng.normal(scale=0.5, size=(n_per, d))) * rng.uniform(0.2, 8.0, (n_per, 1)) for a in axes]
    return np.concatenate(rows).astype(np.float32), np.repeat(np.arange(k), n_per)


def reference_spherical_kmeans(X: np.ndarray, init: np.ndarray, max_iter: int = 300):
    """Textbook spherical k-means (Dhillon & Modha): unit rows, argmax of dot products,
    centroid = normalized sum of its rows; stops when the labels stop changing."""
    x = X / np.linalg.norm(X, axis=1, keepdims=True)
    c = init / np.linalg.norm(init, axis=1, keepdims=True)
    labels = None
    for _ in range(max_iter):
        new = np.argmax(x @ c.T, axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        sums = np.stack([x[labels == j].sum(axis=0) for j in range(c.shape[0])])
        c = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return labels, c


def matched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row permutation of ``b`` that best matches the rows of ``a``."""
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return linear_sum_assignment(cost)[1]


# -- spherical k-means ------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["array", "dask-blocks"])
def test_spherical_kmeans_matches_the_reference_from_the_same_start(layout, seed):
    X, _ = directions(seed=seed)
    init = X[np.random.default_rng(seed).choice(len(X), 4, replace=False)]
    ref_labels, ref_centers = reference_spherical_kmeans(X.astype(np.float64), init.astype(np.float64))
    model = KMeans(4, init=init, n_init=1, tol=0.0, metric="cosine", device="cpu")
    if layout == "array":
        model.fit(X)
    else:
        import dask

        blocks = [dask.delayed(lambda b: b)(X[i : i + 128]) for i in range(0, len(X), 128)]
        model.fit(DaskBlocks(blocks, X.shape[1]))
    labels = model.predict(X)
    assert adjusted_rand_score(ref_labels, labels) == 1.0
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model.cluster_centers_, ref_centers, atol=1e-4)


def test_spherical_kmeans_with_seeding_finds_the_same_partition_as_the_reference(seed):
    X, truth = directions(seed=seed + 1)
    model = KMeans(4, n_init=5, metric="cosine", random_state=seed, device="cpu").fit(X)
    ref_labels, ref_centers = reference_spherical_kmeans(X.astype(np.float64), model.cluster_centers_.astype(np.float64))
    assert adjusted_rand_score(ref_labels, model.labels_) == 1.0  # a fixed point of the reference
    order = matched(ref_centers, model.cluster_centers_)
    np.testing.assert_allclose(model.cluster_centers_[order], ref_centers, atol=1e-4)
    assert adjusted_rand_score(truth, model.labels_) > 0.95
    # Euclidean k-means is misled by the lengths of the rows
    assert adjusted_rand_score(truth, KMeans(4, n_init=5, random_state=seed, device="cpu").fit(X).labels_) < 0.6


def test_cosine_distances_and_scale_invariance(seed):
    X, _ = directions(seed=seed)
    model = KMeans(4, metric="cosine", random_state=seed, device="cpu").fit(X)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    expected = 1.0 - unit.astype(np.float64) @ model.cluster_centers_.T.astype(np.float64)
    np.testing.assert_allclose(model.transform(X), expected, atol=1e-5)
    result = model.assign(X)
    np.testing.assert_array_equal(result.labels, np.argmax(unit @ model.cluster_centers_.T, axis=1))
    np.testing.assert_allclose(result.distance, expected[np.arange(len(X)), result.labels], atol=1e-5)
    scaled = X * np.random.default_rng(seed).uniform(0.01, 100, (len(X), 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(scaled), result.labels)
    zero = model.assign(np.zeros((1, X.shape[1]), np.float32))
    assert zero.distance[0] == pytest.approx(1.0)  # no direction: cosine distance 1 to every centroid


def test_saved_state_keeps_the_metric():
    X, _ = directions()
    model = KMeans(4, metric="cosine", random_state=0, device="cpu").fit(X)
    state = model.get_state()
    assert state["params"]["metric"] == "cosine"
    restored = KMeans.from_state(state)
    np.testing.assert_array_equal(restored.predict(X * 3), model.predict(X))
    np.testing.assert_allclose(restored.transform(X), model.transform(X))


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="metric"):
        KMeans(2, metric="manhattan").fit(np.eye(4, dtype=np.float32))


# -- HDBSCAN and Genie ------------------------------------------------------------------
def test_genie_cosine_is_genieclust_with_cosine(seed):
    import genieclust

    X, _ = directions(n_per=80, seed=seed)
    ours = Genie(4, gini_threshold=0.3, metric="cosine", device="cpu").fit(X).labels_
    theirs = genieclust.Genie(n_clusters=4, gini_threshold=0.3, metric="cosine").fit_predict(X.astype(np.float64))
    assert adjusted_rand_score(theirs, ours) == 1.0


def test_hdbscan_cosine_ignores_row_lengths(seed):
    X, truth = directions(n_per=120, k=3, seed=seed)
    model = HDBSCAN(30, metric="cosine", device="cpu").fit(X)
    scaled = X * np.random.default_rng(seed).uniform(0.1, 10, (len(X), 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(scaled), model.labels_)
    member = model.labels_ >= 0
    assert member.mean() > 0.7 and adjusted_rand_score(truth[member], model.labels_[member]) > 0.9
    assert HDBSCAN.from_state(model.get_state()).metric == "cosine"


# -- metrics ----------------------------------------------------------------------------
def test_cosine_silhouette_is_scikit_learns(seed):
    X, truth = directions(n_per=60, seed=seed)
    labels = KMeans(4, metric="cosine", random_state=seed, device="cpu").fit(X).labels_
    predict = KMeans(4, metric="cosine", random_state=seed, device="cpu").fit(X).predict
    ours = evaluate_clustering(ArrayBlocks(X, block_rows=50), predict, 4, metric="cosine")
    assert ours["silhouette"] == pytest.approx(silhouette_score(X, labels, metric="cosine"), abs=1e-5)
    # DB and CH are the Euclidean indices of the unit rows
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    assert ours["davies_bouldin"] == pytest.approx(davies_bouldin_score(unit_rows(X), labels), rel=1e-4)
    assert ours["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(unit_rows(X), labels), rel=1e-4)
    euclidean = evaluate_clustering(ArrayBlocks(X, block_rows=50), predict, 4)
    assert euclidean["silhouette"] == pytest.approx(silhouette_score(X, labels), abs=1e-5)


# -- the setting ------------------------------------------------------------------------
def test_cosine_default_algorithms_are_those_that_support_it():
    assert TrainConfig().metric == "euclidean"
    assert TrainConfig(metric="cosine").algorithms == ["kmeans", "hdbscan", "genie"]
    assert TrainConfig(metric="cosine", algorithms=["kmeans"]).algorithms == ["kmeans"]


@pytest.mark.parametrize("settings, words", [
    ({"metric": "cosine", "algorithms": ["kmeans", "gmm"]}, ["'gmm'", "cosine", "kmeans"]),
    ({"metric": "manhattan"}, ["metric"]),
])
def test_bad_metric_settings_are_named(settings, words):
    with pytest.raises(InvalidInputError) as info:
        validated(TrainConfig, settings)
    for word in words:
        assert word in str(info.value)


# -- end to end: CLI train, apply, serving ----------------------------------------------
def clustra(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    return subprocess.run([*CLUSTRA, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cosine_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cosine")
    X, truth = directions(n_per=100, k=3, d=6, seed=3)
    frame = pd.DataFrame(X, columns=[f"e{i}" for i in range(X.shape[1])]).assign(topic=truth)
    frame.to_parquet(root / "emb.parquet")
    done = clustra("train", root / "emb.parquet", "--out", root / "run", "--metric", "cosine", "--algorithms", "kmeans",
                   "--k", "3", "--evaluate-against", "topic", "--no-insights", "--scheduler", "inprocess")
    assert done.returncode == 0, done.stderr
    return root, frame


def test_cli_cosine_run_records_the_metric_and_apply_uses_it(cosine_run):
    root, frame = cosine_run
    info = json.loads((root / "run" / "models" / "kmeans-k3" / "model.json").read_text())
    assert info["metadata"]["metric"] == "cosine"
    board = json.loads((root / "run" / "leaderboard.json").read_text())
    assert board["models"][0]["ari"] > 0.8  # of standardized columns (docs/series.md#cosine)
    new = frame.drop(columns="topic").head(50)
    new.to_parquet(root / "new.parquet")
    done = clustra("apply", root / "run", root / "new.parquet", "--out", root / "scored", "--scheduler", "inprocess")
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(root / "scored")
    from cluster_core.model import ClusteringModel

    model = ClusteringModel.load(root / "run" / "models" / "kmeans-k3")
    expected = model.score_frame(new)
    np.testing.assert_array_equal(scored["cluster_id"].to_numpy(), expected["cluster_id"].to_numpy())
    features = unit_rows(model.featurize(new))
    cosine = 1.0 - features.astype(np.float64) @ model.estimator.cluster_centers_.T.astype(np.float64)
    np.testing.assert_array_equal(scored["cluster_id"].to_numpy(), cosine.argmin(axis=1))
    np.testing.assert_allclose(scored["distance"].to_numpy(), cosine.min(axis=1), atol=1e-5)


def test_serving_answers_with_the_models_metric(cosine_run):
    from cluster_core.model import ClusteringModel
    from serving.assign import ServedModel

    root, frame = cosine_run
    model = ClusteringModel.load(root / "run" / "models" / "kmeans-k3")
    served = ServedModel(model, "emb/1")
    rows = frame.drop(columns="topic").head(20)
    answers = json.loads(served.assign_records(rows.to_dict(orient="records")))
    scored = model.score_frame(rows)
    assert [a["cluster_id"] for a in answers] == scored["cluster_id"].tolist()
    np.testing.assert_allclose([a["distance"] for a in answers], scored["distance"], rtol=1e-5, atol=1e-6)
    for answer in answers:
        assert int(np.argmin(answer["distances"])) == answer["cluster_id"]
        assert all(0.0 <= d <= 2.0 for d in answer["distances"])


def test_cli_refuses_cosine_with_gmm_in_one_line(tmp_path, cosine_run):
    root, _ = cosine_run
    done = clustra("train", root / "emb.parquet", "--out", tmp_path / "run", "--metric", "cosine", "--algorithms", "kmeans,gmm")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "gmm" in lines[0] and "cosine" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


# -- text embeddings (gensim's newsgroup posts) -----------------------------------------
@pytest.fixture(scope="module")
def post_embeddings():
    from _real_data import newsgroups_posts

    from cluster_core.features.text import TextFeaturizer

    posts = newsgroups_posts()
    embeddings = TextFeaturizer("text", method="embedding").fit(posts).transform(posts)
    return embeddings, posts["group"].to_numpy()


def _mean_ari(X, truth, metric):
    return float(np.mean([adjusted_rand_score(truth, KMeans(2, n_init=10, random_state=s, metric=metric, device="cpu")
                                              .fit(X).labels_) for s in range(4)]))


def test_cosine_on_text_embeddings_scores_at_least_euclidean(post_embeddings):
    """Embeddings whose lengths vary (a model that does not normalize them): cosine keeps the
    topics, Euclidean is misled by the lengths. Measured in docs/benchmarks.md."""
    embeddings, truth = post_embeddings
    lengths = np.random.default_rng(0).uniform(0.2, 5.0, (len(embeddings), 1)).astype(np.float32)
    raw = embeddings * lengths
    cosine, euclidean = _mean_ari(raw, truth, "cosine"), _mean_ari(raw, truth, "euclidean")
    assert cosine >= euclidean and cosine >= 0.8
    # the packaged model's embeddings are unit vectors already: both objectives agree within a post or two
    assert abs(_mean_ari(embeddings, truth, "cosine") - _mean_ari(embeddings, truth, "euclidean")) <= 0.05
