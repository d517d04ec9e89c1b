"""The jobs REST API in process (FastAPI TestClient), jobs running on the suite's Dask LocalCluster.

Every answer goes through an OpenAPI checker: its status is documented for the route and its
body validates against the documented schema, so the document matches the behaviour.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import make_mixed_frame, write_hive
from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs_support import CheckedClient, OpenAPIChecker, wait_for, wait_job

MINIMAL = {"kind": "train", "data": "customers", "algorithms": ["kmeans"], "k": [3, 5]}


@dataclass
class Api:
    http: CheckedClient
    raw: TestClient
    root: Path
    data: Path
    outputs: Path
    scheduler: str


@pytest.fixture(scope="module")
def api(tmp_path_factory, dask_client):
    root = tmp_path_factory.mktemp("jobs-api")
    data = root / "data"
    write_hive(make_mixed_frame(300, seed=2), data / "customers", "region")
    make_mixed_frame(60_000, seed=5).to_parquet(data / "big.parquet", index=False)
    outside = root / "outside"
    outside.mkdir()
    make_mixed_frame(50).to_parquet(outside / "secret.parquet", index=False)
    settings = ServiceSettings(
        store=str(root / "state" / "jobs.db"), data_roots=[str(data)], output_root=str(root / "outputs"),
        scheduler=dask_client.scheduler.address, max_concurrent_jobs=2, max_request_bytes=64 * 1024,
    )
    app = create_app(settings)
    with TestClient(app) as raw:
        yield Api(CheckedClient(raw, OpenAPIChecker(app.openapi())), raw, root, data, root / "outputs",
                  dask_client.scheduler.address)


@pytest.fixture(scope="module")
def trained(api):
    """The minimal train spec, run to completion (shared by the tests that read its results)."""
    response = api.http.post("/v1/jobs", json={**MINIMAL, "name": "minimal"})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"
    job = wait_job(api.http, response.json()["id"])
    assert job["state"] == "succeeded", job
    return job


def test_the_minimal_train_spec_runs_to_a_leaderboard(api, trained):
    assert trained["kind"] == "train" and trained["progress"] == 1.0 and trained["error"] is None
    assert trained["spec"]["k"] == [3, 5] and trained["spec"]["seed"] == 0  # defaults filled in and stored
    run_dir = Path(trained["result"]["run_dir"])
    assert run_dir == api.outputs / trained["id"] == Path(trained["output"])
    assert (run_dir / "leaderboard.json").is_file() and trained["result"]["n_rows"] == 300
    names = [s["name"] for s in trained["steps"]]
    assert names[0].startswith("reading ") and names[0].endswith("customers") and any(n.startswith("training 2 model(s)") for n in names)
    assert all(s["seconds"] is not None and s["seconds"] >= 0 for s in trained["steps"])
    assert trained["timings"]["running_seconds"] > 0 and trained["timings"]["queued_seconds"] >= 0
    board = api.http.get(f"/v1/jobs/{trained['id']}/leaderboard").json()
    on_disk = json.loads((run_dir / "leaderboard.json").read_text())
    assert board["best"] == on_disk["best"] == trained["result"]["best"]
    assert [m["model_id"] for m in board["models"]] == [m["model_id"] for m in on_disk["models"]]
    assert {m["model_id"] for m in board["models"]} == {"kmeans-k3", "kmeans-k5"}


def test_logs_and_the_after_cursor(api, trained):
    page = api.http.get(f"/v1/jobs/{trained['id']}/logs").json()
    texts = [line["text"] for line in page["lines"]]
    assert texts[:2] == ["queued", "running"] and texts[-1] == "succeeded"
    assert any(t.startswith("[2/2] kmeans-k") for t in texts)
    middle = page["lines"][3]["id"]
    later = api.http.get(f"/v1/jobs/{trained['id']}/logs", params={"after": middle}).json()
    assert [line["id"] for line in later["lines"]] == [line["id"] for line in page["lines"] if line["id"] > middle]
    assert api.http.get(f"/v1/jobs/{trained['id']}/logs", params={"after": page["next_after"]}).json()["lines"] == []


def test_list_filters_by_state_and_kind(api, trained):
    succeeded = api.http.get("/v1/jobs", params={"state": "succeeded"}).json()
    assert trained["id"] in [j["id"] for j in succeeded["jobs"]]
    assert all(j["state"] == "succeeded" for j in succeeded["jobs"]) and succeeded["total"] >= 1
    queued = api.http.get("/v1/jobs", params={"state": "queued"}).json()
    assert trained["id"] not in [j["id"] for j in queued["jobs"]]
    assert all(j["kind"] == "apply" for j in api.http.get("/v1/jobs", params={"kind": "apply"}).json()["jobs"])
    page = api.http.get("/v1/jobs", params={"limit": 1}).json()
    assert page["count"] == 1 and page["total"] >= 1


def test_apply_job_scores_with_a_train_jobs_model(api, trained):
    spec = {"kind": "apply", "job": trained["id"], "model_id": "kmeans-k5", "data": "customers", "output": "scored/k5"}
    job = wait_job(api.http, api.http.post("/v1/jobs", json=spec).json()["id"])
    assert job["state"] == "succeeded", job
    out = api.outputs / "scored" / "k5"
    assert job["result"]["out"] == str(out) and job["result"]["model_id"] == "kmeans-k5"
    scored = pd.read_parquet(out)
    assert len(scored) == 300 == job["result"]["n_rows"] and set(scored["cluster_id"]) <= set(range(5))
    again = api.http.post("/v1/jobs", json=spec)  # the output exists now
    assert again.status_code == 422 and again.json()["field"] == "output" and "already exists" in again.json()["message"]
    best = wait_job(api.http, api.http.post("/v1/jobs", json={"kind": "apply", "job": trained["id"], "data": "customers"})
                    .json()["id"])
    assert best["state"] == "succeeded" and best["result"]["model_id"] == trained["result"]["best"]
    assert best["result"]["out"] == str(api.outputs / best["id"])


def test_reruns_are_new_jobs_linked_to_the_original(api, trained):
    sweep = api.http.post(f"/v1/jobs/{trained['id']}/rerun", json={"k": [2, 4]})
    assert sweep.status_code == 201
    one = api.http.post(f"/v1/jobs/{trained['id']}/models/kmeans-k3/rerun", json={"k": 6})
    assert one.status_code == 201
    sweep, one = wait_job(api.http, sweep.json()["id"]), wait_job(api.http, one.json()["id"])
    assert sweep["state"] == one["state"] == "succeeded"
    assert sweep["parent_id"] == one["parent_id"] == trained["id"]
    assert sweep["rerun"] == {"of": trained["id"], "k": [2, 4]} and sweep["spec"]["k"] == [2, 4]
    assert one["rerun"] == {"of": trained["id"], "model_id": "kmeans-k3", "k": 6}
    assert one["spec"]["algorithms"] == ["kmeans"] and one["spec"]["k"] == [6]
    assert {m["model_id"] for m in api.http.get(f"/v1/jobs/{sweep['id']}/leaderboard").json()["models"]} == {
        "kmeans-k2", "kmeans-k4"}
    assert [m["model_id"] for m in api.http.get(f"/v1/jobs/{one['id']}/leaderboard").json()["models"]] == ["kmeans-k6"]
    assert Path(one["result"]["run_dir"]) == api.outputs / one["id"]  # its own output, the original's untouched
    original = api.http.get(f"/v1/jobs/{trained['id']}").json()
    assert {sweep["id"], one["id"]} <= set(original["reruns"])
    children = api.http.get("/v1/jobs", params={"parent": trained["id"]}).json()["jobs"]
    assert {sweep["id"], one["id"]} <= {j["id"] for j in children}


@pytest.mark.parametrize(
    "path, body, status, field, message",
    [
        ("rerun", {"k": [1]}, 422, "k", "cluster counts must be >= 2"),
        ("rerun", {"k": "x"}, 422, "k", "valid list"),
        ("rerun", {"colour": 1}, 422, "colour", "unknown field"),
        ("models/kmeans-k3/rerun", {"k": 500}, 422, "k", "k=500 exceeds `max_k`=100"),
        ("models/kmeans-k3/rerun", {}, 422, "k", "k is required"),
        ("models/nope/rerun", {"k": 4}, 404, None, "has no model 'nope'"),
    ],
)
def test_bad_reruns(api, trained, path, body, status, field, message):
    before = api.raw.get("/v1/jobs").json()["total"]
    response = api.http.post(f"/v1/jobs/{trained['id']}/{path}", json=body)
    assert response.status_code == status
    assert response.json()["field"] == field and message in response.json()["message"]
    assert api.raw.get("/v1/jobs").json()["total"] == before


def test_hdbscan_has_no_cluster_count_to_rerun(api):
    job = wait_job(api.http, api.http.post("/v1/jobs", json={"kind": "train", "data": "customers",
                                                                "algorithms": ["hdbscan"]}).json()["id"])
    assert job["state"] == "succeeded", job
    response = api.http.post(f"/v1/jobs/{job['id']}/models/hdbscan/rerun", json={"k": 4})
    assert response.status_code == 422 and response.json()["field"] == "k"
    assert "'hdbscan' (hdbscan) has no cluster count to change" in response.json()["message"]


def test_idempotency_key(api):
    spec = {**MINIMAL, "name": "idem"}
    first = api.http.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "abc-1"})
    again = api.http.post("/v1/jobs", json=spec, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = api.http.post("/v1/jobs", json={**spec, "k": [4]}, headers={"Idempotency-Key": "abc-1"})
    assert other.status_code == 409 and "already used for another spec" in other.json()["message"]
    wait_job(api.http, first.json()["id"])


def test_cancel_stops_the_dask_work(api):
    from distributed import Client

    spec = {"kind": "train", "data": "big.parquet", "algorithms": ["kmeans"], "k": [2, 3, 4, 5, 6, 7, 8],
            "kmeans_n_init": 5, "name": "long"}
    job_id = api.http.post("/v1/jobs", json=spec).json()["id"]
    with Client(api.scheduler, set_as_default=False) as observer:
        def tasks() -> int:
            return observer.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

        wait_for(lambda: (api.raw.get(f"/v1/jobs/{job_id}").json()["step"] or "").startswith("training"), 120,
                 "the job to train its models")
        assert tasks() > 0  # model tasks are queued or running on the workers
        response = api.http.post(f"/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["cancel_requested"]
        job = wait_job(api.http, job_id, timeout=30)
        assert job["state"] == "cancelled" and job["error"] == "cancelled by request"
        wait_for(lambda: tasks() == 0, 30, "the scheduler to drop the cancelled job's tasks", interval=0.2)
        # a task already executing runs to its end (Dask cannot interrupt a thread); nothing new starts
        wait_for(lambda: sum(observer.run(lambda dask_worker: len(dask_worker.state.executing)).values()) == 0, 90,
                 "the workers to be idle", interval=0.5)
    assert not (api.outputs / job_id).exists()
    assert not list(api.outputs.glob(f".{job_id}.tmp-*"))  # nothing half-written left behind
    texts = [line["text"] for line in api.http.get(f"/v1/jobs/{job_id}/logs").json()["lines"]]
    assert "cancel requested" in texts and "stopping: cancelled by request" in texts
    assert sum(t.startswith("[") for t in texts) < 7  # not every model was trained
    again = api.http.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["message"]


def test_timeout_fails_the_job(api):
    spec = {"kind": "train", "data": "big.parquet", "algorithms": ["gmm"], "k": [2, 3, 4, 5, 6, 7, 8], "timeout_s": 1}
    job = wait_job(api.http, api.http.post("/v1/jobs", json=spec).json()["id"], timeout=60)
    assert job["state"] == "failed" and job["error"] == "timed out after timeout_s=1.0s"


def test_a_job_whose_data_is_bad_fails_with_the_librarys_message(api):
    (api.data / "broken.parquet").write_bytes(b"not parquet at all")
    job = wait_job(api.http, api.http.post("/v1/jobs", json={**MINIMAL, "data": "broken.parquet"}).json()["id"])
    assert job["state"] == "failed" and "is not a readable Parquet file" in job["error"]
    leaderboard = api.http.get(f"/v1/jobs/{job['id']}/leaderboard")
    assert leaderboard.status_code == 409 and "is failed" in leaderboard.json()["message"]


def _symlinks(api: Api) -> None:
    outside = api.root / "outside"
    if not (api.data / "link.parquet").exists():
        os.symlink(outside / "secret.parquet", api.data / "link.parquet")
        os.symlink(outside, api.data / "linked-dir")
        (api.data / "sneaky").mkdir()
        make_mixed_frame(20).to_parquet(api.data / "sneaky" / "ok.parquet", index=False)
        os.symlink(outside / "secret.parquet", api.data / "sneaky" / "more.parquet")


BAD_SPECS = [
    ({}, 422, "kind"),
    ({"kind": "cluster", "data": "customers"}, 422, "kind"),
    ({"kind": "train"}, 422, "data"),
    ({**MINIMAL, "k": [1]}, 422, "k"),
    ({**MINIMAL, "k": [3, 500]}, 422, "k"),
    ({**MINIMAL, "algorithms": ["spectral"]}, 422, "algorithms"),
    ({**MINIMAL, "colour": "red"}, 422, "colour"),
    ({**MINIMAL, "version": 2}, 422, "version"),
    ({**MINIMAL, "validation_fraction": 2}, 422, "validation_fraction"),
    ({**MINIMAL, "data": "nope"}, 422, "data"),
    ({**MINIMAL, "data": "../outside/secret.parquet"}, 403, "data"),
    ({**MINIMAL, "data": "customers/../../outside"}, 403, "data"),
    ({**MINIMAL, "data": "/etc/passwd"}, 403, "data"),
    ({**MINIMAL, "data": "link.parquet"}, 403, "data"),
    ({**MINIMAL, "data": "linked-dir/secret.parquet"}, 403, "data"),
    ({**MINIMAL, "data": "sneaky"}, 403, "data"),
    ({**MINIMAL, "data": "s3://bucket/x"}, 403, "data"),
    ({**MINIMAL, "output": "../outside/run"}, 403, "output"),
    ({**MINIMAL, "output": "/tmp/clustra-elsewhere"}, 403, "output"),
    ({**MINIMAL, "output": "@data/linked-dir"}, 403, "output"),
    ({**MINIMAL, "output": "@data/linked-dir/new"}, 403, "output"),
    ({**MINIMAL, "output": "@data/customers"}, 403, "output"),
    ({"kind": "apply", "data": "customers"}, 422, "job"),
    ({"kind": "apply", "job": "nope", "data": "customers"}, 422, "job"),
    ({"kind": "apply", "model": "../outside", "data": "customers"}, 403, "model"),
    ({"kind": "apply", "model": "customers", "data": "customers", "output": "/etc"}, 403, "output"),
]


@pytest.mark.parametrize("spec, status, field", BAD_SPECS, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD_SPECS)])
def test_bad_specs_are_4xx_with_a_json_body_naming_the_field(api, spec, status, field):
    _symlinks(api)
    if spec.get("output", "").startswith("@data/"):  # absolute paths under the data root
        spec = {**spec, "output": str(api.data / spec["output"].removeprefix("@data/"))}
    before = api.raw.get("/v1/jobs").json()["total"]
    response = api.http.post("/v1/jobs", json=spec)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and body["message"] and body["error"] in ("invalid_spec", "path_not_allowed")
    assert str(api.root / "outside") not in body["message"] or status == 403
    assert api.raw.get("/v1/jobs").json()["total"] == before  # nothing recorded


def test_apply_of_a_train_job_that_has_not_succeeded_is_a_conflict(api):
    failed = wait_job(api.http, api.http.post("/v1/jobs", json={**MINIMAL, "data": "broken.parquet"}).json()["id"])
    response = api.http.post("/v1/jobs", json={"kind": "apply", "job": failed["id"], "data": "customers"})
    assert response.status_code == 409 and f"train job {failed['id']} is failed" in response.json()["message"]


@pytest.mark.parametrize(
    "method, path, kwargs, status, error",
    [
        ("POST", "/v1/jobs", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
         "invalid_json"),
        ("POST", "/v1/jobs", {"json": ["kind", "train"]}, 422, "invalid_spec"),
        ("POST", "/v1/jobs", {"json": {**MINIMAL, "name": "x" * 70_000}}, 413, "payload_too_large"),
        ("POST", "/v1/jobs", {"content": b"x" * 70_000, "headers": {"content-type": "application/json"}}, 413,
         "payload_too_large"),
        ("GET", "/v1/jobs?state=done", {}, 422, "invalid_parameter"),
        ("GET", "/v1/jobs?limit=0", {}, 422, "invalid_parameter"),
        ("GET", "/v1/jobs?limit=many", {}, 422, "invalid_parameter"),
        ("GET", "/v1/jobs/nope", {}, 404, "not_found"),
        ("POST", "/v1/jobs/nope/cancel", {}, 404, "not_found"),
        ("GET", "/v1/jobs/nope/leaderboard", {}, 404, "not_found"),
        ("GET", "/v1/jobs/nope/logs", {}, 404, "not_found"),
        ("GET", "/v1/jobs/nope/logs?after=-1", {}, 422, "invalid_parameter"),
        ("POST", "/v1/jobs/nope/rerun", {"json": {}}, 404, "not_found"),
        ("POST", "/v1/jobs/nope/models/kmeans-k3/rerun", {"json": {"k": 3}}, 404, "not_found"),
        ("GET", "/v1/nothing-here", {}, 404, "not_found"),
        ("DELETE", "/v1/jobs", {}, 405, "method_not_allowed"),
    ],
)
def test_bad_requests_are_4xx_with_a_json_body(api, method, path, kwargs, status, error):
    response = api.http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and response.json()["message"]


def test_a_yaml_spec_is_accepted(api):
    yaml_spec = "kind: train\ndata: customers\nalgorithms: [kmeans]\nk: [3, 4]\nname: from-yaml\n"
    response = api.http.post("/v1/jobs", content=yaml_spec.encode(), headers={"content-type": "application/yaml"})
    assert response.status_code == 201 and response.json()["spec"]["k"] == [3, 4] and response.json()["name"] == "from-yaml"
    bad = api.http.post("/v1/jobs", content=b"kind: [train\n", headers={"content-type": "application/yaml"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_yaml" and "line 2" in bad.json()["message"]
    invalid = api.http.post("/v1/jobs", content=b"kind: train\ndata: customers\nk: [1]\n",
                            headers={"content-type": "text/yaml"})
    assert invalid.status_code == 422 and invalid.json()["field"] == "k"
    wait_job(api.http, response.json()["id"])


def test_chunked_body_over_the_limit_is_413(api):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = api.raw.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def test_leaderboard_of_an_apply_job_is_a_conflict(api, trained):
    jobs = api.http.get("/v1/jobs", params={"kind": "apply"}).json()["jobs"]
    job_id = jobs[0]["id"] if jobs else wait_job(api.http, api.http.post(
        "/v1/jobs", json={"kind": "apply", "job": trained["id"], "data": "customers"}).json()["id"])["id"]
    response = api.http.get(f"/v1/jobs/{job_id}/leaderboard")
    assert response.status_code == 409 and "only train jobs have a leaderboard" in response.json()["message"]


def test_healthz(api):
    health = api.http.get("/healthz").json()
    assert health["status"] == "ok" and health["dask"] == "ready" and health["dask_address"] == api.scheduler
    assert health["auth"] is False and health["max_concurrent_jobs"] == 2


def test_insights_and_cluster_names(api, trained):
    job_id = trained["id"]
    response = api.http.get(f"/v1/jobs/{job_id}/models/kmeans-k3/insights")
    assert response.status_code == 200, response.text
    insights = response.json()
    assert {"profiles", "observations", "heatmap", "feature_impact", "associations"} <= set(insights)
    assert insights["model_id"] == "kmeans-k3" and len(insights["clusters"]) == 3
    response = api.http.post(f"/v1/jobs/{job_id}/models/kmeans-k3/clusters/2/name", json={"name": "Prospects"})
    assert response.status_code == 200, response.text
    assert response.json() == {"job_id": job_id, "model_id": "kmeans-k3", "cluster_id": 2, "name": "Prospects",
                               "name_source": "user"}
    renamed = api.http.get(f"/v1/jobs/{job_id}/models/kmeans-k3/insights").json()["clusters"][2]
    assert renamed["name"] == "Prospects" and renamed["name_source"] == "user"
    model_json = Path(trained["result"]["run_dir"]) / "models" / "kmeans-k3" / "model.json"
    assert json.loads(model_json.read_text())["clusters"][2]["name"] == "Prospects"


@pytest.mark.parametrize("path, body, status, field, message", [
    ("models/nope/insights", None, 404, None, "has no model 'nope'"),
    ("models/kmeans-k3/clusters/9/name", {"name": "x"}, 422, "cluster", "cluster=9 is not a cluster of model 'kmeans-k3'"),
    ("models/kmeans-k3/clusters/0/name", {"name": "   "}, 422, "name", "should have 1 to 100 characters"),
    ("models/kmeans-k3/clusters/0/name", {"name": ""}, 422, "name", ""),
    ("models/kmeans-k3/clusters/0/name", {"title": "x"}, 422, None, ""),
], ids=["unknown-model", "unknown-cluster", "blank-name", "empty-name", "unknown-field"])
def test_bad_insights_and_rename_requests(api, trained, path, body, status, field, message):
    url = f"/v1/jobs/{trained['id']}/{path}"
    response = api.http.post(url, json=body) if body is not None else api.http.get(url)
    assert response.status_code == status, response.text
    error = response.json()
    assert message in error["message"]
    if field:
        assert error["field"] == field


def test_openapi_document_lists_the_routes(api):
    document = api.raw.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    assert operations == {
        ("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/{job_id}"), ("POST", "/v1/jobs/{job_id}/cancel"),
        ("GET", "/v1/jobs/{job_id}/leaderboard"), ("GET", "/v1/jobs/{job_id}/logs"), ("POST", "/v1/jobs/{job_id}/rerun"),
        ("POST", "/v1/jobs/{job_id}/models/{model_id}/rerun"), ("GET", "/healthz"),
        ("GET", "/v1/jobs/{job_id}/models/{model_id}/insights"),
        ("POST", "/v1/jobs/{job_id}/models/{model_id}/clusters/{cluster_id}/name"), ("GET", "/metrics"),
    }
    body = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["discriminator"]["mapping"]) == {"train", "apply", "drift"}
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_every_answer_of_this_module_matched_the_document(api, request):
    """Runs last: the checker saw the main answers of every operation, each one valid."""
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    if selected != {name for name in dir(request.module) if name.startswith("test_")}:
        pytest.skip("the coverage of the OpenAPI document is checked when the whole module runs")
    seen = api.http.checker.seen
    for expected in [("POST", "/v1/jobs", 201), ("POST", "/v1/jobs", 200), ("POST", "/v1/jobs", 422),
                     ("POST", "/v1/jobs", 403), ("POST", "/v1/jobs", 413), ("POST", "/v1/jobs", 409),
                     ("GET", "/v1/jobs", 200), ("GET", "/v1/jobs/{job_id}", 200), ("GET", "/v1/jobs/{job_id}", 404),
                     ("POST", "/v1/jobs/{job_id}/cancel", 200), ("POST", "/v1/jobs/{job_id}/cancel", 409),
                     ("GET", "/v1/jobs/{job_id}/leaderboard", 200), ("GET", "/v1/jobs/{job_id}/logs", 200),
                     ("POST", "/v1/jobs/{job_id}/rerun", 201), ("POST", "/v1/jobs/{job_id}/models/{model_id}/rerun", 201),
                     ("GET", "/healthz", 200)]:
        assert expected in seen, f"{expected} was not exercised"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_jobs_by_state_and_time_them(api, trained):
    before = api.raw.get("/metrics")
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    was = _samples(before.text)
    done = (("kind", "apply"), ("state", "succeeded"))
    job = wait_job(api.http, api.http.post("/v1/jobs", json={"kind": "apply", "job": trained["id"], "data": "customers"})
                   .json()["id"])
    assert job["state"] == "succeeded", job
    now = _samples(api.raw.get("/metrics").text)
    succeeded = ("clustra_jobs", (("state", "succeeded"),))
    assert now[succeeded] >= was[succeeded] + 1  # reruns of earlier tests may end meanwhile
    assert now[("clustra_job_duration_seconds_count", done)] == was.get(("clustra_job_duration_seconds_count", done), 0) + 1
    assert now[("clustra_job_duration_seconds_sum", done)] > was.get(("clustra_job_duration_seconds_sum", done), 0)
    assert now[("clustra_job_queue_length", ())] == now[("clustra_jobs", (("state", "queued"),))]
    assert now[("clustra_dask_workers", ())] == 2  # the suite's LocalCluster
    assert now[("clustra_jobs_running_slots", ())] == 2
    states = {labels[0][1] for name, labels in now if name == "clustra_jobs"}
    assert states == {"queued", "running", "succeeded", "failed", "cancelled", "interrupted"}


def test_bearer_token(api, tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSTRA_AUTH_TOKEN", "s3cret")
    settings = ServiceSettings.from_env(store=str(tmp_path / "jobs.db"), data_roots=[str(tmp_path)],
                                        scheduler=api.scheduler)
    assert settings.auth_token == "s3cret"
    app = create_app(settings)
    with TestClient(app) as raw:
        http = CheckedClient(raw, OpenAPIChecker(app.openapi()))
        assert http.get("/healthz").json()["auth"] is True  # probes need no token
        missing = http.get("/v1/jobs")
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert missing.json()["error"] == "unauthorized"
        assert http.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/v1/jobs", headers={"Authorization": "Basic czNjcmV0"}).status_code == 401
        assert http.post("/v1/jobs", json=MINIMAL).status_code == 401
        assert raw.get("/metrics").status_code == 401  # like the assignment API's /metrics
        assert raw.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        ok = http.get("/v1/jobs", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["jobs"] == []
    overridden = ServiceSettings.from_env(store=str(tmp_path / "jobs.db"), auth_token="flag-token")
    assert overridden.auth_token == "flag-token"


def test_an_apply_spec_with_explain_writes_the_columns_of_apply_explain(api, trained, tmp_path):
    """``explain: true`` gives what ``clustra apply --explain`` writes for the same model and data."""
    from cluster_core.usecases import apply_run

    spec = {"kind": "apply", "job": trained["id"], "model_id": "kmeans-k3", "data": "customers", "explain": True}
    job = wait_job(api.http, api.http.post("/v1/jobs", json=spec).json()["id"])
    assert job["state"] == "succeeded", job
    assert job["spec"]["explain"] is True
    scored = pd.read_parquet(job["result"]["out"])
    assert {"runner_up", "margin", "explanation"} <= set(scored.columns)
    model_dir = Path(trained["result"]["run_dir"]) / "models" / "kmeans-k3"
    apply_run(str(model_dir), str(api.data / "customers"), tmp_path / "cli", cluster="inprocess", explain=True)
    local = pd.read_parquet(tmp_path / "cli")
    key = ["customer_id"]
    jobs_rows = scored.sort_values(key).reset_index(drop=True)
    local_rows = local.sort_values(key).reset_index(drop=True)
    for column in ("cluster_id", "runner_up", "explanation"):
        assert jobs_rows[column].tolist() == local_rows[column].tolist(), column
    assert json.loads(jobs_rows["explanation"].iloc[0])[0].keys() >= {"column", "contribution"}
    plain = wait_job(api.http, api.http.post("/v1/jobs", json={**spec, "explain": False}).json()["id"])
    assert not {"runner_up", "margin", "explanation"} & set(pd.read_parquet(plain["result"]["out"]).columns)


def test_an_apply_spec_with_columns_writes_those_and_the_cluster_columns(api, trained):
    spec = {"kind": "apply", "job": trained["id"], "model_id": "kmeans-k3", "data": "customers",
            "columns": ["customer_id"]}
    job = wait_job(api.http, api.http.post("/v1/jobs", json=spec).json()["id"])
    assert job["state"] == "succeeded", job
    assert list(pd.read_parquet(job["result"]["out"]).columns) == ["customer_id", "cluster_id", "distance", "cluster_name"]
    missing = wait_job(api.http, api.http.post("/v1/jobs", json={**spec, "columns": ["no_such"]}).json()["id"])
    assert missing["state"] == "failed" and "no_such" in json.dumps(missing)
    bad = api.http.post("/v1/jobs", json={**spec, "explain": "maybe"})
    assert bad.status_code == 422 and bad.json()["field"] == "explain"
