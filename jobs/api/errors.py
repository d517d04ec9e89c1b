"""One place that turns errors into HTTP responses: 4xx with an :class:`ErrorBody`, never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cluster_core.errors import ClustraError, InvalidInputError
from cluster_core.http_contract import BadRequestError, error_body, make_body, status_error_body, unexpected_error_body

from ..specs import describe_errors, format_errors

log = logging.getLogger("clustra.jobs.api")

_REQUEST_PARTS = ("body", "query", "path", "header")


class InvalidYAMLError(BadRequestError):
    """A YAML request body that is not UTF-8 text or does not parse (400 ``invalid_yaml``)."""

    code = "invalid_yaml"


class UnknownParameterError(InvalidInputError):
    """A query parameter the route does not take, or given twice (422 ``invalid_parameter``)."""

    code = "invalid_parameter"


def error_response(status: int, code: str, message: str, *, field: str | None = None,
                   errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    """A JSON error response in the :class:`~cluster_core.http_contract.ErrorBody` shape."""
    return JSONResponse(make_body(code, message, field=field, errors=errors), status_code=status)


def _json_response(answer: tuple[int, dict[str, Any], dict[str, str] | None]) -> JSONResponse:
    status, body, headers = answer
    return JSONResponse(body, status_code=status, headers=headers)


def clustra_error_response(exc: ClustraError) -> JSONResponse:
    """The response for an error Clustra raised on purpose (status and code from its class)."""
    return _json_response(error_body(exc))


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
    spec = any(e.get("loc", ())[:1] == ("body",) for e in raw)
    errors = describe_errors(_strip_request_part(raw), values=spec)  # parameters: the same text as serving's
    code = "invalid_spec" if spec else "invalid_parameter"
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
        status, body, headers = status_error_body(exc.status_code, str(exc.detail))
        return JSONResponse(body, status_code=status, headers={**(headers or {}), **(exc.headers or {})})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _json_response(unexpected_error_body(exc))
