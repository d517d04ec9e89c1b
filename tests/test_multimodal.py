"""Kinds combined: one mixed table end to end (train -> run with embedding views -> apply / assign)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _real_data import airports, newsgroups_posts, write_digits
from sklearn.metrics import adjusted_rand_score

from cluster_core.config import TrainConfig
from cluster_core.data import read_dataset
from cluster_core.errors import InvalidInputError
from cluster_core.features import FeaturePipeline
from cluster_core.projection import VIEW_FILE, project_2d
from cluster_core.runs import load_model, write_run
from cluster_core.schema import infer_schema
from cluster_core.training import train_models


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> pd.DataFrame:
    """Real pieces joined by topic: a newsgroup post, a digit image (0 for atheism, 1 for space),
    an airport (north-east for atheism, west for space) and a noisy number."""
    root = tmp_path_factory.mktemp("mixed")
    posts = newsgroups_posts().groupby("group").head(60).reset_index(drop=True)
    digits = write_digits(root / "digits", 600, seed=1)
    places = airports()
    rng = np.random.default_rng(0)
    rows = []
    for topic, digit, region in (("alt.atheism", 0, "Northeast"), ("sci.space", 1, "West")):
        texts = posts[posts["group"] == topic]["text"].tolist()
        images = digits[digits["label"] == digit]["image"].tolist()
        ports = places[(places["region"] == region) & (places["longitude"] > -130)]
        for i, text in enumerate(texts):
            port = ports.iloc[int(rng.integers(len(ports)))]
            rows.append({"post": text, "scan": images[i % len(images)], "latitude": port["latitude"],
                         "longitude": port["longitude"], "spend": rng.normal(100, 20), "topic": topic})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_schema_detects_every_kind(mixed):
    schema = infer_schema(mixed.drop(columns="topic"))
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"post": "text", "scan": "image", "latitude": "geo", "longitude": "geo", "spend": "numeric"}
    forced = infer_schema(mixed.drop(columns="topic"), kinds={"scan": "categorical", "post": "categorical"})
    assert forced.column("scan").kind == forced.column("post").kind == "categorical"


def test_mixed_table_end_to_end(mixed, tmp_path):
    data = tmp_path / "mixed.parquet"
    mixed.to_parquet(data, index=False)
    config = TrainConfig(algorithms=["kmeans", "gmm-diag"], k=[2, 3], exclude=["topic"], text_method="tfidf", seed=0)
    result = train_models(read_dataset(str(data)), config)
    pipeline = result.data.pipeline
    kinds = sorted({f.kind for f in pipeline.featurizers_})
    assert kinds == ["geo", "image", "numeric", "text"]
    run = write_run(result, tmp_path / "run")
    model = load_model(run / "models" / "kmeans-k2")
    # the saved pipeline reused on plain records, as serving sends them
    records = mixed.drop(columns="topic").to_dict(orient="records")
    labels = model.assign(pd.DataFrame.from_records(records)).labels
    assert adjusted_rand_score(mixed["topic"], labels) >= 0.8
    np.testing.assert_array_equal(labels, result.models()[[m.model_id for m in result.models()].index("kmeans-k2")].assign(mixed).labels)
    # every model has its embedding view; the mixture's image gallery carries probabilities
    for entry in result.leaderboard()["models"]:
        view = json.loads((run / "models" / entry["model_id"] / VIEW_FILE).read_text())
        assert view["method"] == "pca" and len(view["x"]) == len(view["cluster"]) == len(mixed)
    view = json.loads((run / "models" / "gmm-diag-k2" / VIEW_FILE).read_text())
    gallery = view["galleries"]["scan"]
    assert [g["cluster_id"] for g in gallery] == [0, 1]
    first = gallery[0]["images"][0]
    assert (run / "models" / "gmm-diag-k2" / first["file"]).is_file() and 0.0 <= first["probability"] <= 1.0
    kmeans_view = json.loads((run / "models" / "kmeans-k2" / VIEW_FILE).read_text())
    assert "distance" in kmeans_view and kmeans_view["galleries"]["scan"][0]["images"][0]["distance"] >= 0


def test_balance_gives_each_multidimensional_block_one_column_of_variance(mixed):
    sample = mixed.drop(columns="topic")
    schema = infer_schema(sample)
    options = {"text": {"method": "tfidf"}}
    balanced = FeaturePipeline(schema, kind_options=options).fit(sample)
    features = balanced.transform(sample)
    names = balanced.feature_names_
    for prefix in ("post__", "scan__", "latitude__"):
        columns = [i for i, n in enumerate(names) if n.startswith(prefix)]
        assert features[:, columns].var(axis=0).sum() == pytest.approx(1.0, rel=0.05)
    doubled = FeaturePipeline(schema, kind_options=options, kind_weights={"image": 2.0}).fit(sample)
    scan = [i for i, n in enumerate(names) if n.startswith("scan__")]
    assert doubled.transform(sample)[:, scan].var(axis=0).sum() == pytest.approx(4.0, rel=0.05)
    raw = FeaturePipeline(schema, kind_options=options, balance="none").fit(sample)
    assert raw.transform(sample)[:, scan].var(axis=0).sum() > 50  # ~120 standardized image features would drown the rest
    with pytest.raises(InvalidInputError, match="balance='equal'"):
        FeaturePipeline(schema, balance="equal").fit(sample)


@pytest.mark.parametrize("method", ["pca", "svd"])
def test_reduction_is_fitted_on_a_sample_and_saved(mixed, method, tmp_path):
    from cluster_core._state import read_state, write_state

    sample = mixed.drop(columns="topic")
    pipeline = FeaturePipeline(
        infer_schema(sample), kind_options={"text": {"method": "tfidf"}}, reduce=method, reduce_components=8, stats_sample_rows=60
    ).fit(sample)
    features = pipeline.transform(sample)
    assert features.shape == (len(sample), 8) and pipeline.feature_names_ == [f"pc{i}" for i in range(1, 9)]
    if method == "pca":
        assert np.all(np.diff(features.var(axis=0)) <= 1e-3)  # components in order of variance
    write_state(tmp_path, "p", pipeline.get_state())
    restored = FeaturePipeline.from_state(read_state(tmp_path, "p"))
    np.testing.assert_allclose(restored.transform(sample.head(10)), features[:10], atol=1e-5)


def test_project_2d_pca_and_tsne():
    rng = np.random.default_rng(0)
    data = np.vstack([rng.normal(0, 1, (50, 5)), rng.normal(8, 1, (50, 5))])
    coords, info = project_2d(data)
    assert coords.shape == (100, 2) and info["explained_variance_ratio"][0] > 0.8
    assert abs(coords[:50, 0].mean() - coords[50:, 0].mean()) > 10
    coords, info = project_2d(data, "tsne")
    assert coords.shape == (100, 2) and info["method"] == "tsne"
    with pytest.raises(InvalidInputError, match="umap"):
        project_2d(data, "umap")


def test_view_values_are_python_rounded_floats_with_none_for_non_finite() -> None:
    from cluster_core.projection import _rounded

    values = np.array([1.234565, -0.000049, np.nan, np.inf, 2.5e-6, 12345.678905], np.float64)
    assert _rounded(values, 5) == [round(1.234565, 5), round(-0.000049, 5), None, None, round(2.5e-6, 5), round(12345.678905, 5)]
    float32 = np.array([0.1, 0.30000001], np.float32)
    assert _rounded(float32, 4) == [round(float(v), 4) for v in float32]
    assert all(type(v) is float for v in _rounded(values, 3) if v is not None)
