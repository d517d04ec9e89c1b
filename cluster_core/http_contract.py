"""The HTTP contract both Clustra APIs keep (the jobs API and the assignment API), framework-free.

Every error answer has the body :class:`ErrorBody`::

    {"error": CODE, "message": TEXT, "field": NAME or null}

plus ``errors`` (one entry per field) when a job spec has several problems. The status and
the code of an answer are the ``http_status`` and ``code`` of the exception's class (see
:mod:`cluster_core.errors`), so the same exception gets the same answer from both APIs and
no API keeps a table of its own. A 401 carries ``WWW-Authenticate: Bearer``.

Each API registers a few lines of FastAPI handlers around :func:`error_body`,
:func:`status_error_body` and :func:`unexpected_error_body`, and wraps :func:`check_bearer`
in its own dependency; nothing here imports a web framework.
"""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import BaseModel, Field

from .errors import ClustraError, UnavailableError

BEARER_HINT = "'Authorization: Bearer TOKEN'"

# codes of answers that no ClustraError raised: routing, methods, a bug
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class BadRequestError(ClustraError):
    """The request cannot be read at all: a body that is not JSON or Arrow, a malformed header."""

    http_status = 400
    code = "bad_request"


class UnauthorizedError(ClustraError):
    """Authentication is on and the request lacks the right bearer token."""

    http_status = 401
    code = "unauthorized"


class PayloadTooLargeError(ClustraError):
    """The body, or its number of records, is above the configured limit."""

    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(ClustraError):
    """The body's Content-Type is not one the route reads (the message names those it does)."""

    http_status = 415
    code = "unsupported_media_type"


class ServiceUnavailableError(UnavailableError):
    """The service cannot answer now but will soon (e.g. a worker restarting): 503 + ``Retry-After``.

    Parameters
    ----------
    message : str
    retry_after_s : int
        Seconds the client should wait before retrying (the ``Retry-After`` header).
    """

    http_status = 503
    code = "service_unavailable"

    def __init__(self, message: str = "", *, retry_after_s: int = 1, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = max(1, int(retry_after_s))

    def http_headers(self) -> dict[str, str]:
        """``Retry-After`` in whole seconds."""
        return {"Retry-After": str(self.retry_after_s)}


class ErrorDetail(BaseModel):
    """One problem with a request."""

    field: str | None = Field(None, description="the spec field or parameter, e.g. 'k' or 'data'")
    message: str
    type: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx response: a code, one readable message, the field when one is to blame."""

    error: str = Field(description="machine-readable code, e.g. invalid_input, invalid_spec, not_found, unauthorized")
    message: str
    field: str | None = None
    errors: list[ErrorDetail] | None = None


def make_body(code: str, message: str, *, field: str | None = None,
              errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An :class:`ErrorBody` as a plain dict (``errors`` only when given).

    Parameters
    ----------
    code : str
        Machine-readable code, e.g. ``invalid_input``.
    message : str
        What was wrong and what was expected.
    field : str, optional
        The setting, spec field or parameter to blame.
    errors : list of dict, optional
        One ``{"field", "message", "type"}`` per problem, when there are several.
    """
    body: dict[str, Any] = {"error": code, "message": message, "field": field}
    if errors is not None:
        body["errors"] = errors
    return body


def _headers(status: int, exc: ClustraError | None = None) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status == 503:
        return {"Retry-After": str(getattr(exc, "retry_after_s", None) or 5)}
    return None


def error_body(exc: ClustraError) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """The answer to an error Clustra raised on purpose.

    Parameters
    ----------
    exc : ClustraError
        Its class gives the status and code; ``str(exc)`` is the message, ``exc.field`` the
        field. An error listing several problems (an ``errors`` attribute, as the jobs API's
        ``SpecError``) returns them, and names the first one's field when it has none.

    Returns
    -------
    status : int
    body : dict
        ``{"error", "message", "field"}`` and, for several problems, ``errors``.
    headers : dict or None
        ``WWW-Authenticate: Bearer`` on 401; ``Retry-After`` on 503 (the error's
        ``retry_after_s``, else 5 seconds).
    """
    errors = getattr(exc, "errors", None)
    field = exc.field
    if field is None and errors:
        field = errors[0].get("field")
    body = make_body(exc.code, str(exc), field=field, errors=errors)
    return exc.http_status, body, _headers(exc.http_status, exc)


def status_error_body(status: int, message: str) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """The answer for a plain HTTP status no Clustra error raised (no such route: 404, 405, ...).

    Parameters
    ----------
    status : int
        The status the web framework chose.
    message : str
        Its text, e.g. ``Not Found``.

    Returns
    -------
    status, body, headers
        As :func:`error_body`; the code is :data:`HTTP_CODES`'s (``error`` for a status it lacks).
    """
    return status, make_body(HTTP_CODES.get(status, "error"), message), _headers(status)


def unexpected_error_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """The 500 answer for an exception nobody expected (a bug, never bad input).

    Parameters
    ----------
    exc : BaseException
        Named in the message as ``TYPE: TEXT``.
    """
    return status_error_body(500, f"{type(exc).__name__}: {exc}")


def check_bearer(authorization_header: str | None, token: str | None) -> None:
    """Refuse a request without ``Authorization: Bearer TOKEN`` (no check when ``token`` is None).

    The token is compared in constant time; the scheme is case-insensitive.

    Parameters
    ----------
    authorization_header : str or None
        The request's ``Authorization`` header as received.
    token : str or None
        The service's token; None turns authentication off.

    Raises
    ------
    UnauthorizedError
        The header is missing, uses another scheme, or carries another token.
    """
    if token is None:
        return
    scheme, _, credentials = (authorization_header or "").strip().partition(" ")
    if not scheme:
        raise UnauthorizedError(f"this service requires {BEARER_HINT}")
    if scheme.lower() != "bearer":
        raise UnauthorizedError(f"the Authorization header uses another scheme than Bearer; send {BEARER_HINT}")
    if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        raise UnauthorizedError("the bearer token is not valid")


__all__ = [
    "BadRequestError", "ErrorBody", "ErrorDetail", "HTTP_CODES", "PayloadTooLargeError", "ServiceUnavailableError",
    "UnauthorizedError", "UnsupportedMediaTypeError", "check_bearer", "error_body", "make_body", "status_error_body", "unexpected_error_body",
]
