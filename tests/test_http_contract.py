"""One HTTP contract for both APIs: every ClustraError's status and code, the same body from both apps, one bearer check."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from cluster_core.errors import ClustraError
from cluster_core.http_contract import ErrorBody, UnauthorizedError, check_bearer, error_body
from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs.specs import FieldError, SpecError
from serving.errors import install_error_handlers

README = Path(__file__).resolve().parents[1] / "README.md"

# every module that defines a ClustraError subclass
ERROR_MODULES = ["cluster_core.errors", "cluster_core.http_contract", "jobs.specs", "jobs.paths", "jobs.store",
                 "jobs.api.errors", "jobs.client", "jobs.tasks", "serving.errors", "serving.records", "clustra.cli._args"]

# class name -> (status, code): what the README's table says each one answers
EXPECTED = {
    "ClustraError": (400, "bad_request"),
    "BadRequestError": (400, "bad_request"),
    "InvalidYAMLError": (400, "invalid_yaml"),
    "StoreLockedError": (400, "bad_request"),
    "UsageError": (400, "bad_request"),
    "ApiError": (400, "bad_request"),
    "UnauthorizedError": (401, "unauthorized"),
    "PathNotAllowedError": (403, "path_not_allowed"),
    "NotFoundError": (404, "not_found"),
    "JobStateError": (409, "conflict"),
    "ArtifactError": (409, "artifact_unavailable"),
    "PublishError": (409, "artifact_unavailable"),
    "PayloadTooLargeError": (413, "payload_too_large"),
    "InvalidInputError": (422, "invalid_input"),
    "DataError": (422, "invalid_input"),
    "MemoryLimitError": (422, "invalid_input"),
    "FieldError": (422, "invalid_spec"),
    "PathMissingError": (422, "invalid_spec"),
    "SpecError": (422, "invalid_spec"),
    "UnsupportedMediaTypeError": (415, "unsupported_media_type"),
    "QueueFullError": (429, "queue_full"),
    "ProtectedPathError": (422, "invalid_spec"),
    "SpecYAMLError": (422, "invalid_input"),
    "UnknownParameterError": (422, "invalid_parameter"),
    "UnavailableError": (503, "unavailable"),
    "StoreUnavailableError": (503, "unavailable"),
    "StoreError": (503, "store_unusable"),
    "ConfigurationError": (500, "misconfigured"),
    "ServiceUnavailableError": (503, "service_unavailable"),
}
# answers to exceptions of the frameworks (routing, request validation) or to bugs
FRAMEWORK_ANSWERS = {(400, "invalid_json"), (404, "not_found"), (405, "method_not_allowed"), (422, "invalid_parameter"),
                     (500, "internal_error")}


def project_errors() -> list[type[ClustraError]]:
    """ClustraError and every subclass the project defines."""
    for module in ERROR_MODULES:
        importlib.import_module(module)
    found, todo = [], [ClustraError]
    while todo:
        cls = todo.pop()
        if cls.__module__.split(".")[0] in ("cluster_core", "jobs", "serving", "clustra"):
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


def readme_table() -> set[tuple[int, str]]:
    """(status, code) of each row of the README's "HTTP errors (both APIs)" table."""
    section = README.read_text().split("## HTTP errors (both APIs)", 1)[1].split("\n## ", 1)[0]
    return {(int(status), code) for status, code in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", section, re.M)}


def instance(cls: type[ClustraError]) -> ClustraError:
    """An error of ``cls`` as the code raises it, naming a field."""
    if issubclass(cls, SpecError):
        return cls([{"field": "k", "message": "cluster counts must be >= 2, got [1]", "type": "value_error"},
                    {"field": "data", "message": "data is required", "type": "missing"}])
    if issubclass(cls, FieldError):
        return cls("data", "'../secret' is outside the data roots")
    return cls("k=1 should be >= 2", field="k")


ERRORS = project_errors()


def raising_routes(app: FastAPI) -> FastAPI:
    """``GET /raise/{name}`` raises an instance of that error class; ``GET /bug`` raises RuntimeError."""
    by_name = {cls.__name__: cls for cls in ERRORS}

    def raise_error(name: str) -> None:
        raise instance(by_name[name])

    def bug() -> None:
        raise RuntimeError("unexpected")

    def count(n: int = Query(ge=1)) -> int:
        return n

    app.add_api_route("/raise/{name}", raise_error, methods=["GET"])
    app.add_api_route("/bug", bug, methods=["GET"])
    app.add_api_route("/count", count, methods=["GET"])
    return app


@pytest.fixture(scope="module")
def clients(tmp_path_factory) -> dict[str, TestClient]:
    """The jobs app (``create_app``; no lifespan, so no Dask) and an app with the ingress's error handlers."""
    root = tmp_path_factory.mktemp("http-contract")
    jobs_app = raising_routes(create_app(ServiceSettings(store=str(root / "jobs.db"), data_roots=[str(root)])))
    serving_app = FastAPI()
    install_error_handlers(serving_app)
    raising_routes(serving_app)
    return {"jobs": TestClient(jobs_app, raise_server_exceptions=False),
            "serving": TestClient(serving_app, raise_server_exceptions=False)}


def test_every_error_class_is_in_the_table():
    assert {cls.__name__ for cls in ERRORS} == set(EXPECTED)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_status_and_code_are_the_readmes(cls):
    assert (cls.http_status, cls.code) == EXPECTED[cls.__name__]
    assert EXPECTED[cls.__name__] in readme_table()


def test_the_readme_lists_nothing_else():
    assert readme_table() == set(EXPECTED.values()) | FRAMEWORK_ANSWERS


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_both_apps_answer_an_error_with_the_same_body(clients, cls):
    status, body, headers = error_body(instance(cls))
    answers = {name: client.get(f"/raise/{cls.__name__}") for name, client in clients.items()}
    for response in answers.values():
        assert response.status_code == status == cls.http_status
        assert response.json() == body
        assert response.headers.get("www-authenticate") == (headers or {}).get("WWW-Authenticate")
        assert response.headers.get("retry-after") == (headers or {}).get("Retry-After")
    assert answers["jobs"].json() == answers["serving"].json()
    ErrorBody.model_validate(body)
    assert body["error"] == cls.code and body["field"] in ("k", "data")


def test_service_unavailable_says_when_to_retry():
    from cluster_core.http_contract import ServiceUnavailableError

    status, body, headers = error_body(ServiceUnavailableError("the model replica restarted", retry_after_s=2))
    assert (status, body["error"], headers) == (503, "service_unavailable", {"Retry-After": "2"})
    assert error_body(ServiceUnavailableError("x", retry_after_s=0))[2] == {"Retry-After": "1"}


def test_a_spec_error_lists_each_field_and_names_the_first():
    _, body, _ = error_body(instance(SpecError))
    assert body["field"] == "k" and [e["field"] for e in body["errors"]] == ["k", "data"]
    assert body["message"] == "invalid job spec: k: cluster counts must be >= 2, got [1]; data: data is required"


def test_the_message_names_the_field_and_the_value():
    _, body, _ = error_body(instance(FieldError))
    assert body == {"error": "invalid_spec", "message": "data: '../secret' is outside the data roots", "field": "data"}


@pytest.mark.parametrize(
    "method, path, status, code",
    [("GET", "/nothing-here", 404, "not_found"), ("DELETE", "/bug", 405, "method_not_allowed"),
     ("GET", "/count?n=0", 422, "invalid_parameter"), ("GET", "/bug", 500, "internal_error")],
    ids=["no-route", "wrong-method", "bad-parameter", "bug"],
)
def test_both_apps_answer_framework_errors_alike(clients, method, path, status, code):
    answers = [client.request(method, path) for client in clients.values()]
    for response in answers:
        assert response.status_code == status and response.json()["error"] == code
        ErrorBody.model_validate(response.json())
    assert answers[0].json() == answers[1].json()
    assert answers[0].headers.get("allow") == answers[1].headers.get("allow")


def test_the_ingress_uses_these_handlers():
    pytest.importorskip("ray.serve")
    from serving import errors
    from serving.app import api

    assert api.exception_handlers[ClustraError] is errors.clustra_error_handler
    assert api.exception_handlers[Exception] is errors.unexpected_error_handler


def test_both_documents_share_the_error_body_schema(clients):
    pytest.importorskip("ray.serve")
    from serving.app import api

    jobs_schemas = clients["jobs"].app.openapi()["components"]["schemas"]
    serving_document = api.openapi()
    assert serving_document["components"]["schemas"]["ErrorBody"] == jobs_schemas["ErrorBody"]
    assign = serving_document["paths"]["/v1/models/{name}/assign"]["post"]["responses"]
    assert set(assign) >= {"400", "401", "404", "409", "413", "422"}
    assert assign["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


# -- the bearer check -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, words",
    [(None, "requires 'Authorization: Bearer TOKEN'"), ("", "requires"), ("   ", "requires"),
     ("Basic czNjcmV0", "another scheme"), ("s3cret", "another scheme"), ("Bearer wrong", "not valid"),
     ("Bearer", "not valid"), ("Bearer s3cret-and-more", "not valid")],
    ids=["missing", "empty", "blank", "basic", "no-scheme", "wrong-token", "no-token", "longer-token"],
)
def test_check_bearer_refuses(header, words):
    with pytest.raises(UnauthorizedError, match=words) as info:
        check_bearer(header, "s3cret")
    assert "s3cret" not in str(info.value)
    assert error_body(info.value)[2] == {"WWW-Authenticate": "Bearer"}


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret ", " Bearer s3cret"])
def test_check_bearer_accepts_the_token(header):
    check_bearer(header, "s3cret")


@pytest.mark.parametrize("header", [None, "", "Bearer anything", "Basic x"])
def test_check_bearer_with_auth_off_lets_everything_through(header):
    check_bearer(header, None)


def test_http_contract_imports_no_web_framework():
    code = ("import sys, cluster_core.http_contract; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
