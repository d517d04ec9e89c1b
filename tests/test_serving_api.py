"""The assignment API on a real Ray Serve instance, started once for the session by ``clustra serve --config``
(the ``serving_service`` fixture of tests/conftest.py, shared with the other serving test files).

Two applications share the instance: ``open`` at ``/`` (no auth) and ``secured`` at
``/secured`` (bearer token). Both read the same registry, which the tests publish into.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from _serving_helpers import FEATURE_COLUMNS, MAX_BODY, MAX_RECORDS, TOKEN, json_records, record as _record
from serving.records import ARROW_STREAM_TYPE, write_arrow

pytestmark = pytest.mark.slow


@pytest.fixture
def service(serving_service):
    """The session's running service (tests/conftest.py)."""
    return serving_service


@pytest.fixture(scope="module")
def table(serving_service) -> pd.DataFrame:
    """The training table as `clustra apply` reads it (hive column included), in file order."""
    return pd.read_parquet(serving_service["data"])


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



def _assert_alike(a, b) -> None:
    """Equal JSON answers, floats up to float32 rounding (each process picks its own CPU
    matrix-product backend, numpy or torch, so the last bits may differ between replicas)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            _assert_alike(a[key], b[key])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_alike(x, y)
    else:
        assert a == b


def test_one_hop_and_model_deployment_answer_alike(service, table):
    """``open`` assigns in its ingress replica, ``secured`` through its model deployment: same bodies."""
    client, auth = service["client"], {"Authorization": f"Bearer {TOKEN}"}
    rows = json_records(table[FEATURE_COLUMNS].head(12))
    for params in ({}, {"explain": "true"}):
        one_hop = assign(client, "mixture", rows, **params)
        two_hop = client.post("/secured/v1/models/mixture/assign", params=params, json={"records": rows}, headers=auth)
        assert one_hop.status_code == two_hop.status_code == 200
        _assert_alike(one_hop.json(), two_hop.json())
    arrow = write_arrow(table[FEATURE_COLUMNS].head(50))
    answers = [client.post(prefix + "/v1/models/customers/assign", content=arrow,
                           headers={"Content-Type": ARROW_STREAM_TYPE, **auth}) for prefix in ("", "/secured")]
    assert answers[0].status_code == answers[1].status_code == 200
    # same columns and clusters; distances equal up to float32 rounding (each process picks its own
    # CPU matrix-product backend, numpy or torch, so the last bits may differ between replicas)
    one_hop, two_hop = (pa.ipc.open_stream(a.content).read_all().to_pandas() for a in answers)
    assert list(one_hop.columns) == list(two_hop.columns) and len(one_hop) == 50
    for column in one_hop.columns:
        if pd.api.types.is_float_dtype(one_hop[column]):
            np.testing.assert_allclose(one_hop[column], two_hop[column], rtol=1e-5, atol=1e-6)
        else:
            pd.testing.assert_series_equal(one_hop[column], two_hop[column])
    bad = [client.post(prefix + "/v1/models/customers/assign", json={"records": [_record(spend="lots")]}, headers=auth)
           for prefix in ("", "/secured")]
    assert bad[0].status_code == bad[1].status_code == 422 and bad[0].json() == bad[1].json()

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


def test_assignments_are_counted_per_model_version_and_cluster(service, table):
    client = service["client"]
    version = client.get("/v1/models/mixture").json()["version"]
    before = client.get("/metrics").text
    answered = [a["cluster_id"] for a in assign(client, "mixture", json_records(table.head(9))).json()["assignments"]]
    response = assign_arrow(client, "mixture", table.iloc[9:20])
    assert response.status_code == 200, response.text
    answered += arrow_ids(response)
    after = client.get("/metrics").text
    series = lambda cluster: f'clustra_assignments_total{{cluster="{cluster}",model="mixture",version="{version}"}}'
    moved = {c: _metric(after, series(c)) - _metric(before, series(c)) for c in range(-1, 3)}
    assert moved == {c: answered.count(c) for c in range(-1, 3)} and sum(moved.values()) == 20
    assert len(set(answered)) > 1  # more than one cluster's series moved
    other = 'clustra_assignments_total{cluster="0",model="customers",version="1"}'
    assert _metric(after, other) == _metric(before, other)  # another model's series stayed


# -- issue 15: safe under attack ---------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
def test_other_content_types_are_415(service, content_type):
    body = json.dumps({"records": [_record()]}).encode()
    response = service["client"].post("/v1/models/customers/assign", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    answer = response.json()
    assert answer["error"] == "unsupported_media_type" and content_type in answer["message"]
    assert "application/json" in answer["message"] and ARROW_STREAM_TYPE in answer["message"]
    for accepted in ("application/json", "application/json; charset=utf-8"):
        ok = service["client"].post("/v1/models/customers/assign", content=body, headers={"Content-Type": accepted})
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "change, message",
    [({"spend": "lots"}, "records[3]: column 'spend': value 'lots' is not a number"),
     ({"spend": "1.5"}, "records[3]: column 'spend': value '1.5' is not a number"),
     ({"visits": True}, "records[3]: column 'visits': value True is not a number"),
     ({"signup": "not a date"}, "records[3]: column 'signup': value 'not a date'")],
    ids=["word", "numeric-string", "boolean", "bad-date"],
)
def test_type_errors_name_the_record_over_http(service, change, message):
    records = [_record(), _record(), _record(), _record(**change)]
    response = assign(service["client"], "customers", records)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(message)


def test_arrow_zero_rows_and_duplicate_columns_are_422(service, table):
    empty = assign_arrow(service["client"], "customers", table.head(0))
    assert empty.status_code == 422 and "no rows" in empty.json()["message"]
    doubled = pa.Table.from_pandas(table.head(3), preserve_index=False)
    doubled = doubled.append_column("spend", pa.array([1.0, 2.0, 3.0]))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, doubled.schema) as writer:
        writer.write_table(doubled)
    response = service["client"].post("/v1/models/customers/assign", content=sink.getvalue().to_pybytes(),
                                      headers={"Content-Type": ARROW_STREAM_TYPE})
    assert response.status_code == 422, response.text
    assert "'spend' appears more than once" in response.json()["message"]


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_openapi_and_docs_need_the_token_when_auth_is_on(service, path):
    client = service["client"]
    missing = client.get(f"/secured{path}")
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert client.get(f"/secured{path}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    good = client.get(f"/secured{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    assert client.get(path).status_code == 200  # the open app has auth off
    if path == "/openapi.json":
        assert "/v1/models/{name}/assign" in good.json()["paths"]
    else:
        assert "/secured/openapi.json" in good.text


def _service_processes(service) -> list:
    import psutil

    root = psutil.Process(service["process"].pid)
    return [root, *root.children(recursive=True)]


def _listening_sockets(service) -> list:
    """(process name, address) of every listening TCP socket of `clustra serve` and the processes it started."""
    import psutil

    listening = []
    for process in _service_processes(service):
        try:
            listening += [(process.name(), c.laddr) for c in process.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return listening


def test_every_ray_socket_listens_on_loopback_only(service):
    """Issue 15: `clustra serve --host 127.0.0.1` left 16 Ray sockets on other addresses (GCS, raylet, agents).
    Issue 20: the default ingress on loopback is HAProxy where installed; its stats and metrics ports (Ray
    binds them to all interfaces) are moved to 127.0.0.1 too."""
    import ipaddress

    from serving.ingress import choose_ingress

    listening = _listening_sockets(service)
    names = {name for name, _ in listening}
    assert len(listening) >= 5 and any("gcs_server" in n for n in names) and any("raylet" in n for n in names), listening
    exposed = [(name, addr) for name, addr in listening
               if not ipaddress.ip_address(addr.ip.removeprefix("::ffff:")).is_loopback]
    assert exposed == []
    haproxy_ports = {addr.port for name, addr in listening if name == "haproxy"}
    port = int(service["base_url"].rpartition(":")[2])
    if choose_ingress("auto", "127.0.0.1").haproxy:  # what the service chose (it was started with the default)
        assert "ingress: HAProxy" in (service["root"] / "serve.log").read_text()
        assert port in haproxy_ports and len(haproxy_ports) >= 3, listening  # HTTP, stats, metrics
    else:
        assert haproxy_ports == set()


def test_moved_alias_is_served_within_the_refresh_interval_under_load(service, table):
    """Issue 15: a moved alias took ~9 s to be served (README: within refresh_interval_s)."""
    from _serving_helpers import REFRESH_INTERVAL_S

    client, registry, run = service["client"], service["registry"], service["run"]
    name = "moving"
    registry.publish(run / "models" / "kmeans-k3", name, alias="live")
    registry.publish(run / "models" / "gmm-k3", name)
    rows = json_records(table.head(1))
    assert _eventually(lambda: assign(client, name, rows, alias="live").status_code == 200)
    assert assign(client, name, rows, version=2).status_code == 200  # v2 loaded: only the alias move is timed
    stop = threading.Event()

    def load():  # ~20 requests/s of other traffic
        with httpx.Client(base_url=service["base_url"], timeout=60) as own:
            while not stop.is_set():
                assign(own, "customers", rows)
                time.sleep(0.05)

    loaders = [threading.Thread(target=load) for _ in range(2)]
    for thread in loaders:
        thread.start()
    try:
        time.sleep(1.0)
        moved_at = time.monotonic()
        registry.set_alias(name, "live", 2)
        seen_at = None
        while time.monotonic() - moved_at < 30:
            if assign(client, name, rows, alias="live").json()["version"] == 2:
                seen_at = time.monotonic()
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in loaders:
            thread.join()
    assert seen_at is not None
    # the documented bound is refresh_interval_s (0.3 s here); a loaded 2-core machine gets 1.5 s of slack
    assert seen_at - moved_at < REFRESH_INTERVAL_S + 1.5, f"picked up after {seen_at - moved_at:.1f} s"


def test_a_moved_alias_is_served_on_the_first_request_after_an_idle_spell(service, table):
    """The view was re-read only when a request found it old, and that request still got the old version."""
    from _serving_helpers import REFRESH_INTERVAL_S

    client, registry, run = service["client"], service["registry"], service["run"]
    registry.publish(run / "models" / "kmeans-k3", "idle", alias="live")
    registry.publish(run / "models" / "gmm-k3", "idle")
    rows = json_records(table.head(1))
    assert _eventually(lambda: assign(client, "idle", rows, alias="live").status_code == 200)
    assert assign(client, "idle", rows, version=2).status_code == 200
    time.sleep(3 * REFRESH_INTERVAL_S)  # idle
    registry.set_alias("idle", "live", 2)
    time.sleep(REFRESH_INTERVAL_S + 1.0)
    assert assign(client, "idle", rows, alias="live").json()["version"] == 2


def test_requests_on_a_killed_model_replica_are_retried_or_503_never_500(service, table):
    """Issue 15: killing the model replica failed the requests in flight with 500 ActorDiedError and stalled 13.5 s.
    (The ``secured`` application has a model deployment; ``open`` assigns in its ingress.)"""
    import psutil

    client = service["client"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bulk = write_arrow(pd.concat([table[FEATURE_COLUMNS]] * 20, ignore_index=True))  # 12,000 rows: busy replica
    assert len(bulk) < MAX_BODY
    answers: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def keep_asking():  # the replica always has requests in flight
        with httpx.Client(base_url=service["base_url"], timeout=120) as own:
            while not stop.is_set():
                response = own.post("/secured/v1/models/customers/assign", content=bulk,
                                    headers={"Content-Type": ARROW_STREAM_TYPE, **auth})
                answers.append((time.monotonic(), response.status_code, response.headers.get("retry-after")))

    replicas = [p for p in _service_processes(service)
                if any("ServeReplica:secured:AssignmentModel" in part for part in _cmdline(p))]
    assert len(replicas) == 1, [(_cmdline(p)) for p in _service_processes(service)]
    assert not [p for p in _service_processes(service)
                if any("ServeReplica:open:AssignmentModel" in part for part in _cmdline(p))]  # one hop
    before = client.get("/secured/metrics", headers=auth).text
    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    for thread in askers:
        thread.start()
    try:
        time.sleep(2.0)
        replicas[0].kill()
        killed_at = time.monotonic()
        assert _eventually(lambda: any(t > killed_at and s == 200 for t, s, _ in answers), timeout_s=60)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in askers:
            thread.join()
    statuses = [s for _, s, _ in answers]
    assert 500 not in statuses and set(statuses) <= {200, 503}, statuses
    assert all(retry and int(retry) >= 1 for _, s, retry in answers if s == 503)
    recovered = min(t for t, s, _ in answers if t > killed_at and s == 200) - killed_at
    assert recovered < 30, f"first answer after the kill took {recovered:.1f} s"
    after = client.get("/secured/metrics", headers=auth).text
    lost = sum(_metric(after, f'clustra_replica_loss_requests_total{{outcome="{o}"}}')
               - _metric(before, f'clustra_replica_loss_requests_total{{outcome="{o}"}}') for o in ("retried", "failed"))
    assert lost >= 1  # three clients kept the replica busy: the kill caught requests in flight
    assert psutil.pid_exists(service["process"].pid)


def _cmdline(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:
        return []
