"""Schemathesis against the jobs API's own OpenAPI document (issue 15: 39 of 12,320 requests were 5xx).

A live ``uvicorn`` on 127.0.0.1 (auth on, the suite's Dask cluster), every operation fuzzed
with a bounded, derandomized number of examples: no answer is a 5xx, and every answer
(status, content type, headers, body) is what the document says. The inputs that found bugs
are kept below as plain regression requests.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import schemathesis  # a dev dependency (pyproject.toml)
from hypothesis import HealthCheck, Phase, given, settings

from conftest import make_mixed_frame, write_hive
from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs_support import free_port, wait_for

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_EXAMPLES = 30


class LiveApi:
    """The jobs API served by uvicorn on 127.0.0.1 in a thread of this process."""

    def __init__(self, settings: ServiceSettings) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="jobs-api-fuzz", daemon=True)

    def __enter__(self) -> LiveApi:
        self.thread.start()
        wait_for(lambda: self.server.started, 60, "uvicorn to listen")
        wait_for(lambda: httpx.get(f"{self.url}/healthz").json()["dask"] == "ready", 60, "the runner to reach Dask")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory, dask_client):
    root = tmp_path_factory.mktemp("fuzz")
    write_hive(make_mixed_frame(200, seed=4), root / "data" / "customers", "region")
    settings = ServiceSettings(store=str(root / "state" / "jobs.db"), data_roots=[str(root / "data")],
                               scheduler=dask_client.scheduler.address, auth_token=TOKEN, max_queued_jobs=50,
                               max_concurrent_jobs=1)
    with LiveApi(settings) as api:
        yield api


@pytest.fixture(scope="module")
def jobs_schema(live_api):
    return schemathesis.openapi.from_url(f"{live_api.url}/openapi.json", headers=AUTH)


OPERATIONS = [
    "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}", "POST /v1/jobs/{job_id}/cancel",
    "GET /v1/jobs/{job_id}/leaderboard", "GET /v1/jobs/{job_id}/logs", "POST /v1/jobs/{job_id}/rerun",
    "POST /v1/jobs/{job_id}/models/{model_id}/rerun", "GET /healthz",
    "GET /v1/jobs/{job_id}/models/{model_id}/insights", "POST /v1/jobs/{job_id}/models/{model_id}/clusters/{cluster_id}/name",
    "GET /metrics",
]
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.negative_data_rejection,
]


def test_the_fuzzed_operations_are_the_documents(jobs_schema):
    labels = {result.ok().label for result in jobs_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


# every operation takes parameters but /healthz and /metrics, which have no invalid input to generate
FUZZED = [(label, mode) for label in OPERATIONS for mode in ("positive", "negative")
          if (label, mode) not in (("GET /healthz", "negative"), ("GET /metrics", "negative"))]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("label, mode", FUZZED, ids=[f"{label}-{mode}" for label, mode in FUZZED])
def test_no_5xx_and_every_answer_matches_the_document(jobs_schema, live_api, label, mode):
    """MAX_EXAMPLES derandomized cases per operation and mode (schema-valid, then schema-invalid inputs)."""
    operation = jobs_schema.find_operation_by_label(label)
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(base_url=live_api.url, headers=AUTH, checks=CHECKS, timeout=30)

    fuzz()


# -- what the fuzzers found, kept as regression requests ----------------------------------------------

FOUND = [
    ("GET", "/v1/jobs?offset=9223372036854775808", None, None, 422),
    ("GET", "/v1/jobs/abc/logs?after=99999999999999999999", None, None, 422),
    ("GET", "/v1/jobs?=false", None, None, 422),
    ("GET", "/v1/jobs?stat=queued", None, None, 422),
    ("GET", "/v1/jobs?parent=a&parent=b", None, None, 422),
    ("POST", "/v1/jobs", b"kind: train\ndata: customers\nk: " + b"[" * 500 + b"]" * 500, "application/yaml", 400),
    ("POST", "/v1/jobs", b'{"kind": "train", "data": "customers", "kinds": ' + b"[" * 5000 + b"]" * 5000 + b"}",
     "application/json", 400),
    ("POST", "/v1/jobs", b'{"kind": "train", "data": "customers", "include": ["a\\u0000"]}', "application/json", 422),
    ("POST", "/v1/jobs", b'{"kind": "train", "data": "customers", "kmeans_n_init": 1e20}', "application/json", 422),
    ("POST", "/v1/jobs", b'{"kind": "train", "data": "customers", "weights": {"spend": 1e308}}', "application/json",
     422),
]


@pytest.mark.parametrize("method, path, body, media, status", FOUND, ids=[f"{i}" for i in range(len(FOUND))])
def test_inputs_the_fuzzers_found(live_api, method, path, body, media, status):
    headers = {**AUTH, **({"content-type": media} if media else {})}
    started = time.perf_counter()
    response = httpx.request(method, f"{live_api.url}{path}", content=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"] and response.json()["message"] and time.perf_counter() - started < 5
    assert httpx.get(f"{live_api.url}/healthz").status_code == 200
