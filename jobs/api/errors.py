"""One place that turns errors into HTTP responses: 4xx with an :class:`ErrorBody`, never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cluster_core.errors import ArtifactError, ClustraError, InvalidInputError, NotFoundError

from ..paths import PathNotAllowedError
from ..specs import FieldError, SpecError, describe_errors, format_errors
from ..store import JobStateError, QueueFullError

log = logging.getLogger("clustra.jobs.api")

_REQUEST_PARTS = ("body", "query", "path", "header")

# (type, status, code), most specific first
_ERROR_STATUS: list[tuple[type[BaseException], int, str]] = [
    (SpecError, 422, "invalid_spec"),
    (PathNotAllowedError, 403, "path_not_allowed"),
    (FieldError, 422, "invalid_spec"),
    (JobStateError, 409, "conflict"),
    (QueueFullError, 429, "queue_full"),
    (NotFoundError, 404, "not_found"),
    (ArtifactError, 409, "artifact_unavailable"),
    (InvalidInputError, 422, "invalid_input"),
    (ClustraError, 400, "bad_request"),
]

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "request_too_large", 415: "unsupported_media_type", 429: "too_many_requests"}


class Unauthorized(ClustraError):
    """Missing or wrong bearer token (HTTP 401)."""


def error_response(status: int, code: str, message: str, *, field: str | None = None,
                   errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error response in the :class:`~jobs.api.schemas.ErrorBody` shape."""
    body: dict[str, Any] = {"error": code, "message": message, "field": field}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def clustra_error_response(exc: ClustraError) -> JSONResponse:
    """The response for an error Clustra raised on purpose."""
    if isinstance(exc, Unauthorized):
        return error_response(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    status, code = next((s, c) for t, s, c in _ERROR_STATUS if isinstance(exc, t))
    if isinstance(exc, SpecError):
        first = exc.errors[0]["field"] if exc.errors else None
        return error_response(status, code, str(exc), field=first, errors=exc.errors)
    return error_response(status, code, str(exc), field=getattr(exc, "field", None))


def _strip_request_part(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        out.append({**error, "loc": loc[1:] if loc and loc[0] in _REQUEST_PARTS else loc})
    return out


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """422 naming each field (spec fields without the ``body``/``train`` prefix); 400 for a body that is not JSON."""
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        detail = next(e for e in raw if e.get("type") == "json_invalid")
        reason = detail.get("ctx", {}).get("error", "JSON decode error")
        return error_response(400, "invalid_json", f"the request body is not valid JSON: {reason}")
    if any(e.get("loc", ())[:1] == ("body",) and e.get("type") in ("missing", "model_attributes_type", "dict_type")
           and len(e.get("loc", ())) == 1 for e in raw):
        return error_response(422, "invalid_spec", "the request body must be a JSON object (a job spec)", field=None,
                              errors=describe_errors(_strip_request_part(raw)))
    errors = describe_errors(_strip_request_part(raw))
    code = "invalid_spec" if any(e.get("loc", ())[:1] == ("body",) for e in raw) else "invalid_parameter"
    return error_response(422, code, format_errors(errors), field=errors[0]["field"] if errors else None, errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ClustraError)
    async def _clustra(request: Request, exc: ClustraError) -> JSONResponse:
        return clustra_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")
