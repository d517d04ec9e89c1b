"""cluster_core.insights: profiles, observations, heatmap, names, feature impact, associations,
explanations and renaming (the schema is docs/insights.md)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cluster_core.algorithms import GaussianMixture, HDBSCAN, KMeans
from cluster_core.config import TrainConfig
from cluster_core.errors import InvalidInputError
from cluster_core.features import FeaturePipeline
from cluster_core.insights import (
    explain_frame, explanation_records, profile_clusters, read_insights, rename_cluster, run_insights, write_insights,
)
from cluster_core.model import ClusteringModel
from cluster_core.schema import infer_schema

TOP_KEYS = {"profiles", "observations", "heatmap", "feature_impact", "associations"}


def _model(frame: pd.DataFrame, estimator, model_id: str = "m", **pipeline_options) -> ClusteringModel:
    schema = infer_schema(frame, exclude=[c for c in ("segment_truth", "customer_id") if c in frame.columns])
    pipeline = FeaturePipeline(schema, **pipeline_options).fit(frame)
    estimator = estimator.fit(pipeline.transform(frame))
    return ClusteringModel(pipeline, estimator, model_id, metadata={"algorithm": estimator.algorithm})


def _insights(model: ClusteringModel, frame: pd.DataFrame, seed: int = 0) -> dict:
    documents, _ = run_insights([model], frame, impact_rows=len(frame), association_rows=len(frame), seed=seed)
    return documents[model.model_id]


# -- feature-space profiles (model.json top_features) ---------------------------------------
def test_feature_space_profiles_name_what_sets_clusters_apart():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (300, 3))
    x[:100, 0] += 3  # cluster 0: high spend
    x[100:200, 1] -= 3  # cluster 1: low visits
    labels = np.repeat([0, 1, 2], 100)
    profiles = profile_clusters(x, labels, ["spend", "visits", "plan=pro"], 3)
    assert profiles[0]["name"].startswith("high spend")
    assert profiles[1]["name"].startswith("low visits")
    assert [p["size"] for p in profiles] == [100, 100, 100]
    assert profiles[0]["top_features"][0]["feature"] == "spend"


def test_feature_space_names_speak_in_column_names():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, (200, 2))
    x[:100, 0] += 3
    names = [p["name"] for p in profile_clusters(x, np.repeat([0, 1], 100), ["signup__ordinal", "spend"], 2)]
    assert names[0].startswith("high signup") and not any("__" in n for n in names)


# -- the document -----------------------------------------------------------------------------
def test_insights_have_every_section_in_the_users_columns(mixed_frame):
    model = _model(mixed_frame, KMeans(3, random_state=0, device="cpu"))
    doc = _insights(model, mixed_frame)
    assert TOP_KEYS <= set(doc) and doc["format"] == "clustra-insights"
    columns = {"spend", "visits", "plan", "is_member", "signup", "region"}
    assert {c["name"] for c in doc["columns"]} == columns
    assert set(doc["profiles"]["columns"]) == columns
    assert {e["column"] for e in doc["feature_impact"]} == columns
    assert [e["impact"] for e in doc["feature_impact"]] == sorted((e["impact"] for e in doc["feature_impact"]), reverse=True)
    assert doc["feature_impact"][0]["impact"] == 1.0
    text = json.dumps({k: doc[k] for k in ("observations", "heatmap", "clusters")})
    assert "__" not in text  # never an internal feature name (signup__ordinal, plan=<other>)
    spend = doc["profiles"]["columns"]["spend"]
    edges = spend["overall"]["histogram"]["bin_edges"]
    assert all(len(p["histogram"]["counts"]) == len(edges) - 1 for p in spend["clusters"].values())
    assert spend["overall"]["min"] <= spend["overall"]["q1"] <= spend["overall"]["median"] <= spend["overall"]["q3"]
    assert 60 < spend["overall"]["mean"] < 200  # the data's own units, not robust-scaled
    signup = doc["profiles"]["columns"]["signup"]["overall"]
    assert signup["min"].startswith("2024") and len(signup["hour"]) == 24 and len(signup["weekday"]) == 7
    heat = doc["heatmap"]
    assert len(heat["values"]) == 3 and all(len(row) == len(heat["features"]) for row in heat["values"])
    assert "plan=pro" in heat["features"] and "spend" in heat["features"]
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_observations_and_names_describe_a_planted_segment(mixed_frame):
    model = _model(mixed_frame, KMeans(3, random_state=0, device="cpu"))
    doc = _insights(model, mixed_frame)
    labels = model.predict(mixed_frame)
    # the cluster holding segment 1 (spend ~160 vs ~120 overall, plan=pro, members)
    pro = int(pd.Series(labels[mixed_frame["segment_truth"].to_numpy() == 1]).mode()[0])
    sentences = [o["text"] for o in doc["observations"][str(pro)]]
    assert any("of the cluster has plan=pro" in s and "overall)" in s for s in sentences), sentences
    assert any(s.startswith("spend is on average") and "greater" in s for s in sentences), sentences
    scores = [o["score"] for o in doc["observations"][str(pro)]]
    assert scores == sorted(scores, reverse=True)
    name = next(c["name"] for c in doc["clusters"] if c["cluster_id"] == pro)
    assert any(part in name for part in ("high spend", "plan=pro", "is_member")), name
    names = [c["name"] for c in doc["clusters"]]
    assert len(set(names)) == 3
    assert model.cluster_names()[pro] == name  # model.json carries the same names


def test_feature_impact_ranks_the_informative_column_above_noise():
    rng = np.random.default_rng(3)
    n = 1200
    group = rng.integers(0, 2, n)
    frame = pd.DataFrame({"informative": group * 8.0 + rng.normal(0, 1, n), "noise": rng.normal(0, 1, n)})
    model = _model(frame, KMeans(2, random_state=0, device="cpu"))
    impact = _insights(model, frame)["feature_impact"]
    assert [e["column"] for e in impact] == ["informative", "noise"]
    assert impact[0]["impact"] == 1.0 and impact[1]["impact"] < 0.5
    assert impact[0]["changed_share"] > 0.3 > impact[1]["changed_share"]


def test_associations_flag_a_planted_duplicate(mixed_frame):
    frame = mixed_frame.copy()
    frame["spend_copy"] = frame["spend"] * 2 + 1
    model = _model(frame, KMeans(3, random_state=0, device="cpu"))
    assoc = _insights(model, frame)["associations"]
    matrix = np.array(assoc["matrix"], dtype=float)
    assert np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1.0)
    pairs = {frozenset((r["a"], r["b"])) for r in assoc["redundant"]}
    assert frozenset(("spend", "spend_copy")) in pairs
    assert not any("region" in p for p in pairs)  # region is unrelated to everything
    order = assoc["order"]
    assert sorted(order) == sorted(assoc["columns"]) and abs(order.index("spend") - order.index("spend_copy")) == 1


def test_association_matrix_equals_scikit_learns_nmi_bit_for_bit():
    from sklearn.metrics import normalized_mutual_info_score

    from cluster_core.insights.associations import association_matrix

    rng = np.random.default_rng(11)
    codes = [rng.integers(-1, int(rng.integers(2, 21)), 3000) for _ in range(12)]
    codes[1] = codes[0] * 3 + 7  # the same partition under other codes
    codes[2] = np.where(codes[0] > 4, codes[0], -1)  # a coarsening of it
    codes[3] = np.zeros(3000, np.int64)  # one value: 0 against everything
    codes[4] = (rng.random(3000) < 0.01).astype(np.int64)  # a rare flag
    matrix = association_matrix(codes)
    for i in range(12):
        for j in range(12):
            if i == j:
                expected = 1.0
            elif 3 in (i, j):
                expected = 0.0
            else:
                expected = normalized_mutual_info_score(codes[min(i, j)], codes[max(i, j)])  # the upper triangle's
            assert matrix[i, j] == expected, (i, j)  # exact: the same operations in the same order
    assert matrix[0, 1] == 1.0


def test_text_and_geo_profiles():
    rng = np.random.default_rng(5)
    n = 400
    group = rng.integers(0, 2, n)
    words = np.array(["refund late broken delivery", "great fast friendly service"])
    frame = pd.DataFrame({
        "spend": group * 5.0 + rng.normal(0, 1, n),
        "review": [f"{words[g]} order {i % 7}" for i, g in enumerate(group)],
        "lat": np.where(group == 1, 48.85, 40.7) + rng.normal(0, 0.05, n),
        "lon": np.where(group == 1, 2.35, -74.0) + rng.normal(0, 0.05, n),
    })
    schema = infer_schema(frame, kinds={"review": "text"}, geo_pairs=[("lat", "lon")])
    pipeline = FeaturePipeline(schema, kind_options={"text": {"method": "tfidf"}}).fit(frame)
    model = ClusteringModel(pipeline, KMeans(2, random_state=0, device="cpu").fit(pipeline.transform(frame)), "m",
                            metadata={"algorithm": "kmeans"})
    doc = _insights(model, frame)
    labels = model.predict(frame)
    paris = int(pd.Series(labels[group == 1]).mode()[0])
    geo = doc["profiles"]["columns"]["lat:lon"]
    assert geo["kind"] == "geo"
    assert geo["clusters"][str(paris)]["centroid"]["lat"] == pytest.approx(48.85, abs=0.1)
    assert geo["clusters"][str(paris)]["spread_km"] < 30 and 0 < len(geo["clusters"][str(paris)]["points"]) <= 200
    terms = [t["term"] for t in doc["profiles"]["columns"]["review"]["clusters"][str(paris)]["terms"][:4]]
    assert set(terms) <= {"great", "fast", "friendly", "service"} and terms, terms
    assert "lat:latitude" not in doc["heatmap"]["features"] and "lat:lon:latitude" in doc["heatmap"]["features"]
    assert {e["column"] for e in doc["feature_impact"]} == {"spend", "review", "lat:lon"}
    assert any(o["kind"] == "geo" and "km from the overall centre" in o["text"] for o in doc["observations"][str(paris)])


# -- why this cluster -------------------------------------------------------------------------
@pytest.mark.parametrize("estimator, reduce", [
    (KMeans(3, random_state=0, device="cpu"), "none"),
    (KMeans(3, random_state=0, device="cpu"), "pca"),
    (GaussianMixture(3, random_state=0, device="cpu"), "none"),
    (GaussianMixture(3, covariance_type="diag", random_state=0, device="cpu"), "none"),
    (GaussianMixture(3, random_state=0, device="cpu"), "pca"),
], ids=["kmeans", "kmeans-pca", "gmm-full", "gmm-diag", "gmm-pca"])
def test_explanations_decompose_the_margin_exactly(mixed_frame, estimator, reduce):
    model = _model(mixed_frame, estimator, reduce=reduce, reduce_components=4, stats_sample_rows=600)
    rows = mixed_frame.head(80)
    why = explain_frame(model, rows)
    features = model.featurize(rows).astype(np.float64)
    index = np.arange(len(rows))
    if isinstance(estimator, GaussianMixture) and reduce == "none":  # one-hot and flag columns: discrete emissions
        assert model.estimator.discrete_features_.size > 0 and (model.estimator.discrete_groups_ >= 0).any()
    assert np.array_equal(why.labels, model.predict(rows)) and (why.runner_up != why.labels).all()
    if isinstance(estimator, KMeans):
        distances = model.estimator.transform(features) ** 2
        expected = distances[index, why.runner_up] - distances[index, why.labels]
    else:
        log_post = model.estimator._log_resp(features)[0]  # log posteriors (probabilities underflow to 0)
        expected = log_post[index, why.labels] - log_post[index, why.runner_up]
    np.testing.assert_allclose(why.margin, expected, rtol=1e-3, atol=1e-3)
    total = why.contributions.sum(axis=1) + (why.prior if why.prior is not None else 0)
    np.testing.assert_allclose(total, why.margin, rtol=1e-9, atol=1e-9)
    assert (why.margin >= -1e-6).all()
    record = explanation_records(why)[0]
    assert len(record["explanation"]) == 5 and record["runner_up"] == int(why.runner_up[0])
    values = [abs(e["contribution"]) for e in record["explanation"]]
    assert values == sorted(values, reverse=True)


def test_the_column_that_separates_clusters_explains_the_assignment():
    rng = np.random.default_rng(9)
    n = 600
    group = rng.integers(0, 2, n)
    frame = pd.DataFrame({"informative": group * 8.0 + rng.normal(0, 1, n), "noise": rng.normal(0, 1, n)})
    for estimator in (KMeans(2, random_state=0, device="cpu"), HDBSCAN(min_cluster_size=30, device="cpu")):
        model = _model(frame, estimator)
        records = explanation_records(explain_frame(model, frame.head(40)))
        clustered = [r for r, label in zip(records, model.predict(frame.head(40))) if label >= 0 and r["runner_up"] is not None]
        assert clustered
        share = np.mean([r["explanation"][0]["column"] == "informative" for r in clustered])
        assert share > 0.9, (type(estimator).__name__, records[:3])


def test_apply_columns_carry_names_and_explanations(mixed_frame):
    model = _model(mixed_frame, KMeans(3, random_state=0, device="cpu"))
    _insights(model, mixed_frame)
    scored = model.score_frame(mixed_frame.head(20), explain=True)
    assert list(scored.columns[-6:]) == ["cluster_id", "distance", "cluster_name", "runner_up", "margin", "explanation"]
    names = model.cluster_names()
    assert scored["cluster_name"].tolist() == [names[c] for c in scored["cluster_id"]]
    first = json.loads(scored["explanation"].iloc[0])
    assert {e["column"] for e in first} <= {"spend", "visits", "plan", "is_member", "signup", "region"}


# -- renaming -----------------------------------------------------------------------------------
def test_rename_updates_model_and_insights(tmp_path, mixed_frame):
    model = _model(mixed_frame, KMeans(3, random_state=0, device="cpu"), model_id="kmeans-k3")
    doc = _insights(model, mixed_frame)
    path = model.save(tmp_path / "kmeans-k3")
    write_insights(path, doc)
    entry = rename_cluster(path, 1, "  FR   visitors ")
    assert entry == {**entry, "name": "FR visitors", "name_source": "user"}
    reloaded = ClusteringModel.load(path)
    assert reloaded.cluster_names()[1] == "FR visitors"
    assert reloaded.score_frame(mixed_frame)["cluster_name"].eq("FR visitors").sum() == (reloaded.predict(mixed_frame) == 1).sum()
    cluster = next(c for c in read_insights(path)["clusters"] if c["cluster_id"] == 1)
    assert cluster["name"] == "FR visitors" and cluster["name_source"] == "user"
    # a generated name does not replace a user's name when insights are computed again
    again = _insights(reloaded, mixed_frame)
    assert next(c for c in again["clusters"] if c["cluster_id"] == 1)["name"] == "FR visitors"


@pytest.mark.parametrize("cluster, name, field, message", [
    (7, "x", "cluster", "cluster=7 is not a cluster of model 'm' (expected 0..2)"),
    (-1, "x", "cluster", "cluster=-1 is not a cluster"),
    (0, "   ", "name", "should have 1 to 100 characters"),
    (0, "x" * 101, "name", "should have 1 to 100 characters"),
    (0, 5, "name", "name must be a string, got int"),
], ids=["too-large", "noise", "blank", "too-long", "not-a-string"])
def test_rename_errors_name_the_value(tmp_path, mixed_frame, cluster, name, field, message):
    path = _model(mixed_frame, KMeans(3, random_state=0, device="cpu")).save(tmp_path / "m")
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        rename_cluster(path, cluster, name)
    assert caught.value.field == field


def test_published_versions_are_immutable_and_carry_insights(tmp_path, mixed_frame):
    from cluster_core.registry import ModelRegistry

    model = _model(mixed_frame, KMeans(3, random_state=0, device="cpu"))
    path = model.save(tmp_path / "m")
    write_insights(path, _insights(model, mixed_frame))
    registry = ModelRegistry(str(tmp_path / "registry"))
    info = registry.publish(path, "customers")
    assert "insights.json" in info["files"]
    assert registry.insights("customers", info["version"])["clusters"] == read_insights(path)["clusters"]
    with pytest.raises(InvalidInputError, match="published registry version") as caught:
        rename_cluster(registry.local_dir("customers", info["version"]), 0, "x")
    assert caught.value.field == "model"


def test_no_insights_setting_writes_none(tmp_path, mixed_dataset):
    from cluster_core.data import read_dataset
    from cluster_core.runs import write_run
    from cluster_core.training import train_models

    base = {"algorithms": ["kmeans"], "k": [3], "exclude": ["segment_truth"], "view_sample_rows": 0}
    off = train_models(read_dataset(str(mixed_dataset)), TrainConfig(**base, insights=False))
    assert off.insights == {}
    run = write_run(off, tmp_path / "off")
    assert not (run / "models" / "kmeans-k3" / "insights.json").exists()
    on = train_models(read_dataset(str(mixed_dataset)), TrainConfig(**base, insights_sample_rows=300, impact_sample_rows=100))
    assert on.insights["kmeans-k3"]["n_rows"] == 300 and on.insights_seconds > 0


def test_a_model_whose_insights_fail_is_skipped_with_a_message(mixed_frame):
    from cluster_core.progress import Progress

    class Recorder(Progress):
        def __init__(self):
            super().__init__()
            self.messages = []

        def message(self, text: str) -> None:
            self.messages.append(text)

    good = _model(mixed_frame, KMeans(3, random_state=0, device="cpu"), model_id="good")
    broken = _model(mixed_frame, KMeans(2, random_state=0, device="cpu"), model_id="broken")

    def degenerate(features):
        raise ValueError("degenerate model")

    broken.estimator.assign = degenerate
    progress = Recorder()
    documents, _ = run_insights([broken, good], mixed_frame, impact_rows=200, association_rows=200, progress=progress)
    assert set(documents) == {"good"}
    assert len(progress.messages) == 1 and progress.messages[0].startswith("insights of broken skipped: ValueError")


def test_numeric_profiles_of_all_clusters_equal_each_clusters_profile():
    """The one-sort profiles give np.quantile's and np.histogram's numbers for every cluster: missing values,
    ties, a single value, an all-missing cluster, a cluster without rows, noise (-1) rows."""
    from cluster_core.insights._columns import clean
    from cluster_core.insights.profiles import numeric_edges, numeric_profile, numeric_profiles

    def reference(values, edges):  # one cluster's profile with np.quantile and np.histogram (the earlier code)
        missing = np.isnan(values)
        present = values[~missing]
        out = {"count": int(len(values) - missing.sum()), "missing_share": clean(missing.sum() / len(values)) if len(values) else 0.0}
        if len(present) == 0:
            return {**out, "histogram": {"counts": [0] * (len(edges) - 1)}}
        q = np.quantile(present, [0.0, 0.25, 0.5, 0.75, 1.0])
        counts, _ = np.histogram(present, bins=edges)
        out.update({"mean": clean(present.mean()), "std": clean(present.std()), "min": clean(q[0]), "q1": clean(q[1]),
                    "median": clean(q[2]), "q3": clean(q[3]), "max": clean(q[4]), "histogram": {"counts": counts.tolist()}})
        return out

    rng = np.random.default_rng(4)
    for n, scale in ((5000, 1.0), (300, 1e6), (50, 1e-3)):
        values = rng.normal(10, 3, n) * scale
        values[rng.random(n) < 0.1] = np.nan
        values[rng.random(n) < 0.2] = 7.0 * scale  # ties
        labels = rng.integers(-1, 9, n)
        labels[labels == 3] = 2  # cluster 3: no rows
        values[labels == 4] = np.nan  # cluster 4: every value missing
        single = np.flatnonzero(labels == 5)
        labels[single[1:]] = 6  # cluster 5: one row
        clusters = [0, 1, 2, 3, 4, 5, 6, 7, 8]
        edges = numeric_edges(values)
        assert numeric_profiles(values, labels, clusters, edges) == {c: reference(values[labels == c], edges) for c in clusters}
        assert numeric_profile(values, edges) == reference(values, edges)
