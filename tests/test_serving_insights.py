"""Serving answers carry the model's cluster names (renamed, then published as a new version),
explanations, and the published version's insights -- no Ray running."""

from __future__ import annotations

import json
import shutil

import pytest

from _serving_helpers import json_records, train_run
from cluster_core.errors import InvalidInputError, NotFoundError
from cluster_core.insights import rename_cluster
from cluster_core.registry import ModelRegistry
from conftest import make_mixed_frame
from serving.assign import ServedModel


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-insights")
    _, run = train_run(root, algorithms=("kmeans", "hdbscan"))
    registry = ModelRegistry(root / "registry")
    registry.publish(run / "models" / "kmeans-k3", "customers")
    rename_cluster(run / "models" / "kmeans-k3", 1, "Big spenders")
    registry.publish(run / "models" / "kmeans-k3", "customers")  # version 2: the new name
    registry.publish(run / "models" / "hdbscan", "density")
    return registry, run


def test_renamed_clusters_are_in_serving_answers_of_the_new_version(published):
    registry, _ = published
    records = json_records(make_mixed_frame(60, seed=4))
    renamed = ServedModel(registry.load("customers", 2), registry.resolve("customers", 2))
    answers = json.loads(renamed.assign_records(records))
    assert any(a["cluster_id"] == 1 for a in answers)
    assert all((a["cluster_name"] == "Big spenders") == (a["cluster_id"] == 1) for a in answers)
    before = ServedModel(registry.load("customers", 1), registry.resolve("customers", 1))
    assert "Big spenders" not in {a["cluster_name"] for a in json.loads(before.assign_records(records))}  # immutable
    assert registry.insights("customers", 2)["clusters"][1]["name"] == "Big spenders"
    assert registry.insights("customers", 1)["clusters"][1]["name"] != "Big spenders"


@pytest.mark.parametrize("name", ["customers", "density"])
def test_explained_answers_add_the_runner_up_and_contributions(published, name):
    registry, _ = published
    served = ServedModel(registry.load(name), registry.resolve(name))
    records = json_records(make_mixed_frame(20, seed=6))
    plain = json.loads(served.assign_records(records))
    explained = json.loads(served.explain_records(records))
    assert [{k: a[k] for k in p} for a, p in zip(explained, plain)] == plain  # the same answers, plus the explanation
    for answer in explained:
        assert set(answer) >= {"runner_up", "margin", "explanation"}
        columns = {e["column"] for e in answer["explanation"]}
        assert columns <= {"spend", "visits", "plan", "is_member", "signup", "region"}
        if answer["cluster_id"] >= 0 and answer["runner_up"] is not None:
            assert answer["runner_up"] != answer["cluster_id"] and answer["margin"] >= 0


def test_explain_checks_records_like_assign(published):
    registry, _ = published
    served = ServedModel(registry.load("customers"), registry.resolve("customers"))
    with pytest.raises(InvalidInputError, match="records\\[0\\]: column 'visits' is missing"):
        served.explain_records([{"spend": 1.0}])


def test_a_version_without_insights_is_not_found(published, tmp_path):
    registry, run = published
    copy = tmp_path / "old-model"
    shutil.copytree(run / "models" / "kmeans-k3", copy)
    (copy / "insights.json").unlink()
    version = registry.publish(copy, "legacy")["version"]
    with pytest.raises(NotFoundError, match="model 'legacy' version 1 has no insights"):
        registry.insights("legacy", version)
    with pytest.raises(NotFoundError, match="has no version 7"):
        registry.insights("customers", 7)
