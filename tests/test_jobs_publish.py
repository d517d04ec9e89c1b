"""A train job spec with ``publish:`` puts its model in the registry, and serving answers for it.

The jobs API runs in process (FastAPI TestClient, jobs on the suite's Dask LocalCluster); the
end-to-end test publishes into the registry of the session's ``clustra serve`` (tests/conftest.py
``serving_service``) and asks it for an assignment: jobs API -> registry -> serving, on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from _serving_helpers import record
from conftest import make_mixed_frame, write_hive
from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs_support import CheckedClient, OpenAPIChecker, wait_job

TRAIN = {"kind": "train", "data": "customers", "algorithms": ["kmeans"], "k": [3], "exclude": ["segment_truth"]}
JOB_TIMEOUT_S = 180


@dataclass
class Api:
    http: CheckedClient
    registry: Path


def _start(root: Path, registry: str, scheduler: str):
    write_hive(make_mixed_frame(300, seed=4), root / "data" / "customers", "region")
    settings = ServiceSettings(store=str(root / "state" / "jobs.db"), data_roots=[str(root / "data")],
                               output_root=str(root / "outputs"), scheduler=scheduler, registry=registry)
    app = create_app(settings)
    return app, TestClient(app)


@pytest.fixture(scope="module")
def api(tmp_path_factory, dask_client):
    root = tmp_path_factory.mktemp("jobs-publish")
    app, client = _start(root, str(root / "registry"), dask_client.scheduler.address)
    with client as raw:
        yield Api(CheckedClient(raw, OpenAPIChecker(app.openapi())), root / "registry")


def _run(http: CheckedClient, spec: dict) -> dict:
    response = http.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return wait_job(http, response.json()["id"], timeout=JOB_TIMEOUT_S)


def test_publish_puts_the_recommended_model_in_the_registry(api):
    from cluster_core.registry import ModelRegistry
    from cluster_core.runs import chosen_model, read_leaderboard

    job = _run(api.http, {**TRAIN, "algorithms": ["kmeans", "gmm"], "publish": {"name": "segments", "alias": "production"}})
    assert job["state"] == "succeeded", job
    published = job["result"]["published"]
    recommended = chosen_model(read_leaderboard(job["result"]["run_dir"]))
    assert published == {"name": "segments", "version": 1, "alias": "production", "model_id": recommended,
                         "registry": str(api.registry)}
    registry = ModelRegistry(api.registry)
    assert registry.resolve("segments", alias="production").version == 1
    assert registry.version_info("segments", 1)["model_id"] == recommended
    logs = [line["text"] for line in api.http.get(f"/v1/jobs/{job['id']}/logs").json()["lines"]]
    assert any(text.startswith("published ") for text in logs), logs

    again = _run(api.http, {**TRAIN, "publish": {"name": "segments", "model_id": "kmeans-k3"}})
    assert again["state"] == "succeeded", again
    assert again["result"]["published"]["version"] == 2 and again["result"]["published"]["alias"] is None
    assert registry.resolve("segments", alias="production").version == 1  # no alias named: none moved
    rerun = api.http.post(f"/v1/jobs/{again['id']}/rerun", json={})
    assert rerun.status_code == 201 and rerun.json()["spec"]["publish"] is None  # a rerun publishes nothing


def test_a_model_id_the_sweep_did_not_make_fails_the_job_and_keeps_the_run(api):
    job = _run(api.http, {**TRAIN, "publish": {"name": "segments", "model_id": "gmm-k9"}})
    assert job["state"] == "failed"
    assert "'gmm-k9' is not a usable model of this sweep" in job["error"] and "kmeans-k3" in job["error"]
    assert job["output"] in job["error"] and Path(job["output"], "leaderboard.json").is_file()


@pytest.mark.parametrize("publish, field, words", [
    ({"alias": "production"}, "publish.name", "is required"),
    ({"name": "has space"}, "publish.name", "is not valid"),
    ({"name": "ok", "alias": "latest"}, "publish.alias", "reserved"),
    ({"name": "ok", "alias": "7"}, "publish.alias", "reserved"),
    ({"name": "ok", "model_id": ""}, "publish.model_id", "at least 1"),
    ({"name": "x" * 129}, "publish.name", "at most 128"),
    ({"name": "ok", "version": 3}, "publish.version", "unknown field"),
    ("segments", "publish", "valid dictionary"),
])
def test_bad_publish_fields_are_422_naming_the_field(api, publish, field, words):
    response = api.http.post("/v1/jobs", json={**TRAIN, "publish": publish})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and words in body["message"], body


@pytest.mark.slow
def test_train_publish_serve_end_to_end(serving_service, tmp_path, dask_client):
    """jobs API -> registry -> `clustra serve`: the published model answers an assignment."""
    registry = serving_service["registry"]
    app, client = _start(tmp_path, registry.url, dask_client.scheduler.address)
    with client as raw:
        http = CheckedClient(raw, OpenAPIChecker(app.openapi()))
        job = _run(http, {**TRAIN, "publish": {"name": "from-a-job", "alias": "live"}})
    assert job["state"] == "succeeded", job
    published = job["result"]["published"]
    assert (published["name"], published["version"], published["alias"]) == ("from-a-job", 1, "live")
    serving = serving_service["client"]
    response = serving.post("/v1/models/from-a-job/assign", params={"alias": "live"},
                            json={"records": [record(), record(spend=160.0, plan="pro", is_member=True)]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"], body["alias"]) == ("from-a-job", 1, "live")
    assert len(body["assignments"]) == 2 and all(0 <= a["cluster_id"] < 3 for a in body["assignments"])
