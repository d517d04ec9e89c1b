"""The assignment API on a real Ray Serve instance, started once for the module by ``clustra serve --config``.

Two applications share the instance: ``open`` at ``/`` (no auth) and ``secured`` at
``/secured`` (bearer token). Both read the same registry, which the tests publish into.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from _serving_helpers import FEATURE_COLUMNS, json_records, record as _record, train_run
from cluster_core.registry import ModelRegistry
from serving.config import serve_config, to_yaml
from serving.records import ARROW_STREAM_TYPE, write_arrow
from serving.settings import IngressOptions, ModelOptions

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token"
MAX_BODY = 1 << 20
MAX_RECORDS = 2_000
START_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_config(registry: str, port: int) -> dict:
    ingress = IngressOptions(max_body_bytes=MAX_BODY, max_records=MAX_RECORDS, refresh_interval_s=0.3)
    config = serve_config(registry=registry, host="127.0.0.1", port=port, model_replicas=1, model_num_cpus=0.4,
                          ingress_num_cpus=0.1, ingress_options=ingress, model_options=ModelOptions(batch_wait_timeout_s=0.005))
    open_app = config["applications"][0]
    secured = json.loads(json.dumps(open_app))
    secured.update(name="secured", route_prefix="/secured")
    secured["args"]["auth_token"] = TOKEN
    secured["deployments"][1]["ray_actor_options"]["num_cpus"] = 0.2
    open_app["name"] = "open"
    config["applications"].append(secured)
    return config


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Registry with three models, and `clustra serve` running on it (stopped with SIGINT at the end)."""
    root = tmp_path_factory.mktemp("serving-api")
    data, run = train_run(root)
    registry = ModelRegistry(root / "registry")
    registry.publish(run / "models" / "kmeans-k3", "customers", alias="production")
    registry.publish(run / "models" / "gmm-k3", "mixture")
    registry.publish(run / "models" / "hdbscan", "density")
    port = _free_port()
    config_file = root / "serve.yaml"
    config_file.write_text(to_yaml(_test_config(registry.url, port)))
    log = open(root / "serve.log", "w")
    env = dict(os.environ, CLUSTRA_DEVICE="cpu", RAY_DEDUP_LOGS="0")
    process = subprocess.Popen([sys.executable, "-m", "clustra.cli", "serve", "--config", str(config_file), "--num-cpus", "2"],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=60)
    try:
        _wait_ready(client, process, root / "serve.log")
        yield {"client": client, "registry": registry, "run": run, "data": data, "root": root}
    finally:
        client.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(client: httpx.Client, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"clustra serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if all(client.get(p).status_code == 200 for p in ("/healthz", "/secured/healthz")):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"clustra serve not ready after {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def table(service) -> pd.DataFrame:
    """The training table as `clustra apply` reads it (hive column included), in file order."""
    return pd.read_parquet(service["data"])


def assign(client, name, records, **params):
    return client.post(f"/v1/models/{name}/assign", params=params, json={"records": records})


def assign_arrow(client, name, frame, **params):
    return client.post(f"/v1/models/{name}/assign", params=params, content=write_arrow(frame),
                       headers={"Content-Type": ARROW_STREAM_TYPE})


def arrow_ids(response) -> list[int]:
    return pa.ipc.open_stream(response.content).read_all().column("cluster_id").to_pylist()


# -- catalogue ----------------------------------------------------------------------------
def test_health_list_and_describe(service):
    client = service["client"]
    assert client.get("/healthz").json() == {"status": "ok"}
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) >= {"customers", "mixture", "density"}
    assert models["customers"]["aliases"] == {"production": 1} and models["mixture"]["algorithm"] == "gmm"
    body = client.get("/v1/models/customers", params={"alias": "production"}).json()
    assert (body["name"], body["version"], body["alias"], body["algorithm"]) == ("customers", 1, "production", "kmeans")
    assert [c["name"] for c in body["input_schema"]] == FEATURE_COLUMNS
    assert all(c["name"] and c["size"] > 0 for c in body["clusters"]) and len(body["clusters"]) == 3
    assert body["metrics"]["silhouette"] is not None and body["versions"][0]["version"] == 1


def test_insights_and_explained_answers(service, table):
    client, registry = service["client"], service["registry"]
    insights = client.get("/v1/models/customers/insights", params={"alias": "production"})
    assert insights.status_code == 200, insights.text
    assert insights.json() == registry.insights("customers", 1)
    assert {"profiles", "observations", "heatmap", "feature_impact", "associations"} <= set(insights.json())
    records = json_records(table.head(5)[FEATURE_COLUMNS])
    plain = assign(client, "customers", records).json()["assignments"]
    explained = assign(client, "customers", records, explain="true").json()["assignments"]
    assert [a["cluster_id"] for a in explained] == [a["cluster_id"] for a in plain]
    assert all(a["runner_up"] != a["cluster_id"] and a["explanation"] and a["cluster_name"] for a in explained)
    refused = assign_arrow(client, "customers", table.head(2)[FEATURE_COLUMNS], explain="true")
    assert refused.status_code == 422 and refused.json()["field"] == "explain"
    assert client.get("/v1/models/nobody/insights").status_code == 404


# -- same answers everywhere ----------------------------------------------------------------
def test_api_bulk_and_clustra_apply_agree(service, table, tmp_path):
    client, registry = service["client"], service["registry"]
    out = tmp_path / "scored"
    result = subprocess.run([sys.executable, "-m", "clustra.cli", "apply", str(registry.local_dir("customers", 1)),
                             str(service["data"]), "--out", str(out)], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, CLUSTRA_DEVICE="cpu"))
    assert result.returncode == 0, result.stderr
    applied = pd.read_parquet(out)
    assert applied["customer_id"].tolist() == table["customer_id"].tolist()
    expected = applied["cluster_id"].tolist()

    records = json_records(table)  # every column, including those the model does not use
    json_ids = []
    for start in range(0, len(records), 250):
        response = assign(client, "customers", records[start : start + 250])
        assert response.status_code == 200, response.text
        json_ids += [a["cluster_id"] for a in response.json()["assignments"]]
    response = assign_arrow(client, "customers", table)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW_STREAM_TYPE and response.headers["x-clustra-version"] == "1"
    assert json_ids == expected
    assert arrow_ids(response) == expected
    distances = pa.ipc.open_stream(response.content).read_all().column("distance").to_pylist()
    assert distances == pytest.approx(applied["distance"].tolist(), rel=1e-6)


def test_two_models_multiplexed_and_small_requests_batched(service, table):
    client = service["client"]
    rows = json_records(table.head(24))
    expected = {}
    for name in ("customers", "mixture", "density"):
        response = assign(client, name, rows)
        assert response.status_code == 200, response.text
        expected[name] = [a["cluster_id"] for a in response.json()["assignments"]]
    results: dict[tuple[str, int], dict] = {}

    def one(name: str, i: int) -> None:
        results[(name, i)] = assign(client, name, [rows[i]]).json()

    threads = [threading.Thread(target=one, args=(name, i)) for i in range(len(rows)) for name in ("customers", "mixture")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (name, i), body in results.items():
        assert body["model"] == name and body["assignments"][0]["cluster_id"] == expected[name][i]
        assert ("distances" in body["assignments"][0]) == (name == "customers")
        assert ("probabilities" in body["assignments"][0]) == (name == "mixture")


# -- input rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, kwargs, status, words",
    [
        ("post", "/v1/models/nobody/assign", {"json": {"records": [_record()]}}, 404, ["'nobody'"]),
        ("post", "/v1/models/customers/assign?version=9", {"json": {"records": [_record()]}}, 404, ["version 9"]),
        ("post", "/v1/models/customers/assign?alias=staging", {"json": {"records": [_record()]}}, 404, ["'staging'"]),
        ("get", "/v1/models/nobody", {}, 404, ["'nobody'"]),
        ("post", "/v1/models/customers/assign?version=abc", {"json": {"records": []}}, 422, ["'abc'"]),
        ("post", "/v1/models/customers/assign", {"json": {"records": [_record(visits="DROP")]}}, 422, ["'visits'", "missing"]),
        ("post", "/v1/models/customers/assign", {"json": {"records": [_record(colour="red")]}}, 422, ["'colour'", "unknown"]),
        ("post", "/v1/models/customers/assign", {"json": {"records": [_record(spend="lots")]}}, 422, ["'spend'", "'lots'"]),
        ("post", "/v1/models/customers/assign", {"json": {"records": [_record(signup=[2024])]}}, 422, ["'signup'"]),
        ("post", "/v1/models/customers/assign", {"json": {"rows": []}}, 422, ["'records'"]),
        ("post", "/v1/models/customers/assign", {"content": b"spend=1&visits=2"}, 400, ["not valid JSON"]),
        ("post", "/v1/models/customers/assign", {"content": b"\x00\x01", "headers": {"Content-Type": ARROW_STREAM_TYPE}}, 400, ["Arrow"]),
        ("post", "/v1/models/customers/assign", {"content": b" " * (MAX_BODY + 1)}, 413, ["limit"]),
        ("post", "/v1/models/customers/assign", {"json": {"records": [_record()] * (MAX_RECORDS + 1)}}, 413, ["records"]),
    ],
    ids=["unknown-model", "unknown-version", "unknown-alias", "describe-unknown", "bad-version", "missing-column",
         "unknown-column", "mistyped-column", "nested-value", "no-records", "not-json", "not-arrow", "body-too-large",
         "too-many-records"],
)
def test_error_codes(service, method, path, kwargs, status, words):
    response = getattr(service["client"], method)(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "field"}
    assert body["error"] == {400: "bad_request", 404: "not_found", 413: "payload_too_large", 422: "invalid_input"}[status]
    for word in words:
        assert word in body["message"]


def test_a_version_that_cannot_be_read_is_409_from_the_model_replica(service):
    registry, run = service["registry"], service["run"]
    published = registry.publish(run / "models" / "kmeans-k3", "unreadable")
    (registry.local_dir("unreadable", published["version"]) / "estimator.json").unlink()
    response = service["client"].post("/v1/models/unreadable/assign", json={"records": [_record()]})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "artifact_unavailable" and body["field"] is None
    assert "estimator.json" in body["message"] and "missing" in body["message"]
    no_route = service["client"].get("/v1/nothing-here")
    assert no_route.status_code == 404 and no_route.json() == {"error": "not_found", "message": "Not Found", "field": None}


def test_bad_input_is_never_a_500(service):
    client = service["client"]
    bodies = [b"null", b"[]", b"1e999", b"[" * 50_000, b'{"records": [null]}', b'{"records": [[1, 2]]}',
              b'{"records": [{"spend": 1e999, "visits": null, "plan": null, "is_member": null, "signup": null, "region": null}]}',
              json.dumps({"records": [_record(spend=10**400)]}).encode(), "{\"records\": [\"\u00e9\"]}".encode("latin-1")]
    for body in bodies:
        response = client.post("/v1/models/customers/assign", content=body)
        assert 200 <= response.status_code < 500, (body[:40], response.status_code, response.text)
        if response.status_code >= 400:
            assert response.json()["message"]


def test_missing_values_are_imputed(service, table):
    rows = json_records(table.head(5))
    for row in rows:
        row.update(spend=None, plan=None, signup=None)
    response = assign(service["client"], "customers", rows)
    assert response.status_code == 200 and len(response.json()["assignments"]) == 5


# -- reload without restart --------------------------------------------------------------------
def test_new_versions_and_moved_aliases_are_served_without_restart(service, table):
    client, registry, run = service["client"], service["registry"], service["run"]
    rows = json_records(table.head(3))
    statuses, versions, stop = [], set(), threading.Event()

    def keep_asking():
        with httpx.Client(base_url=str(client.base_url), timeout=60) as own:
            while not stop.is_set():
                response = assign(own, "customers", rows[:1], alias="production")
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.add(response.json()["version"])

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        time.sleep(1.0)
        published = registry.publish(run / "models" / "gmm-k3", "customers")
        assert published["version"] == 2
        response = assign(client, "customers", rows, version=2)  # a new version answers at once
        assert response.status_code == 200 and "probabilities" in response.json()["assignments"][0]
        assert _eventually(lambda: assign(client, "customers", rows).json()["version"] == 2)  # latest moves
        assert assign(client, "customers", rows, alias="production").json()["version"] == 1
        registry.set_alias("customers", "production", 2)
        assert _eventually(lambda: assign(client, "customers", rows, alias="production").json()["version"] == 2)
        time.sleep(0.5)
    finally:
        stop.set()
        asker.join()
    assert statuses and set(statuses) == {200}  # no request failed while versions changed
    assert versions == {1, 2}
    described = client.get("/v1/models/customers").json()
    assert described["aliases"] == {"production": 2} and described["latest"] == 2


def _eventually(check, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


# -- auth and metrics -------------------------------------------------------------------------
def test_bearer_token_on_every_route_but_health(service):
    client = service["client"]
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/secured/healthz").status_code == 200
    for method, path, kwargs in [("get", "/secured/v1/models", {}), ("get", "/secured/v1/models/customers", {}),
                                 ("get", "/secured/metrics", {}),
                                 ("post", "/secured/v1/models/customers/assign", {"json": {"records": [_record()]}})]:
        call = getattr(client, method)
        missing = call(path, **kwargs)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"] == "unauthorized"
        assert call(path, headers={"Authorization": "Bearer wrong"}, **kwargs).status_code == 401
        assert call(path, headers=good, **kwargs).status_code == 200
    assert client.get("/v1/models").status_code == 200  # the open app has auth off


def _metric(text: str, line_start: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start + " ")]
    return values[0] if values else 0.0


def test_prometheus_metrics(service, table):
    client = service["client"]
    json_count = 'clustra_assigned_records_total{format="json",model="density"}'
    arrow_count = 'clustra_assigned_records_total{format="arrow",model="density"}'
    rejected = 'clustra_requests_total{route="/v1/models/{name}/assign",status="422"}'
    before = client.get("/metrics").text
    assert assign(client, "density", json_records(table.head(2))).status_code == 200
    assert assign_arrow(client, "density", table.head(7)).status_code == 200
    assert assign(client, "density", [_record(spend="lots")]).status_code == 422
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert _metric(after, json_count) - _metric(before, json_count) == 2
    assert _metric(after, arrow_count) - _metric(before, arrow_count) == 7
    assert _metric(after, rejected) - _metric(before, rejected) == 1
    assert "clustra_request_duration_seconds_bucket" in after
