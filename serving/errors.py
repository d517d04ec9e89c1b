"""The assignment API's side of the HTTP contract: its FastAPI error handlers and the replicas' error answers.

Statuses, codes and bodies are :mod:`cluster_core.http_contract`'s (an exception's class gives
its status and code), so this API answers exactly as the jobs API does; nothing here keeps a
table. A model replica cannot raise into the ingress's handlers, so it answers a failed
request with :func:`error_result` (the JSON error body, built by the same code) and the
ingress sends that body as it is (:func:`replica_error_response`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cluster_core.errors import ClustraError
from cluster_core.http_contract import error_body, make_body, status_error_body, unexpected_error_body

logger = logging.getLogger("ray.serve")
_REQUEST_PARTS = ("query", "path", "header", "body")


def error_result(exc: ClustraError) -> tuple[int, bytes, int]:
    """A replica's answer to a request that failed: ``(status, JSON error body, 0 records)``.

    Parameters
    ----------
    exc : ClustraError
        The error; its status, code, message and field are :func:`error_body`'s.
    """
    status, body, _ = error_body(exc)
    return status, json.dumps(body).encode(), 0


def replica_error_response(status: int, payload: bytes) -> Response:
    """The ingress's answer to a replica's :func:`error_result`: the same status and body.

    Parameters
    ----------
    status : int
        The status the replica returned.
    payload : bytes
        The JSON error body the replica built.
    """
    return Response(payload, status_code=status, media_type="application/json")


def _json_response(answer: tuple[int, dict[str, Any], dict[str, str] | None]) -> JSONResponse:
    status, body, headers = answer
    return JSONResponse(body, status_code=status, headers=headers)


async def clustra_error_handler(request: Request, exc: ClustraError) -> JSONResponse:
    """An error Clustra raised on purpose: its class's status and code."""
    return _json_response(error_body(exc))


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """A status the framework chose (no such route: 404, wrong method: 405)."""
    status, body, headers = status_error_body(exc.status_code, str(exc.detail))
    return JSONResponse(body, status_code=status, headers={**(headers or {}), **(exc.headers or {})})


def _parameter(loc: tuple[Any, ...]) -> str | None:
    parts = loc[1:] if loc and loc[0] in _REQUEST_PARTS else loc
    return ".".join(str(part) for part in parts) or None


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 ``invalid_parameter`` naming the query or path parameter, as the jobs API answers."""
    errors = [{"field": _parameter(tuple(e.get("loc", ()))), "message": e.get("msg", ""), "type": e.get("type")}
              for e in exc.errors()]
    message = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
    field = errors[0]["field"] if errors else None
    return JSONResponse(make_body("invalid_parameter", message, field=field, errors=errors), status_code=422)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug (never bad input): 500 ``internal_error``, logged with its traceback."""
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return _json_response(unexpected_error_body(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app`` (the ingress's FastAPI application).

    Parameters
    ----------
    app : FastAPI
    """
    app.add_exception_handler(ClustraError, clustra_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
