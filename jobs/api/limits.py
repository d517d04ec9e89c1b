"""Request guards: a body size limit (413, YAML bodies read as JSON) and the optional bearer token (401)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cluster_core.errors import ClustraError
from cluster_core.http_contract import BadRequestError, PayloadTooLargeError, check_bearer, error_body

from .errors import InvalidYAMLError

# documents the scheme in OpenAPI; the check itself is check_bearer's
_bearer = HTTPBearer(auto_error=False, description="the service's token (CLUSTRA_AUTH_TOKEN), when it has one")


def require_token(request: Request, _: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401 unless the request carries ``Authorization: Bearer TOKEN`` (no check when auth is off)."""
    check_bearer(request.headers.get("authorization"), request.app.state.settings.auth_token)


YAML_MEDIA_TYPES = (b"application/yaml", b"application/x-yaml", b"text/yaml", b"text/x-yaml")


def yaml_to_json(body: bytes) -> bytes:
    """A YAML document as JSON bytes; :class:`InvalidYAMLError` saying where it is malformed."""
    import yaml

    try:
        value = yaml.safe_load(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidYAMLError(f"the request body is not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidYAMLError(f"the request body is not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from None
    return json.dumps(value, default=str).encode()


class BodySizeLimit:
    """ASGI middleware: reads at most ``max_bytes`` of a request body, else answers 413 (JSON).

    A declared ``Content-Length`` above the limit is refused before reading; a chunked
    body is counted as it arrives. The accepted body is replayed to the application; a
    YAML body (``Content-Type: application/yaml``) is replayed as JSON.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any, exc: ClustraError) -> None:
        status, answer, _ = error_body(exc)
        body = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = f"the request body exceeds the limit of {self.max_bytes} bytes"
        if declared is not None:
            if not declared.isdigit():
                await self._reject(send, BadRequestError(f"Content-Length {declared.decode(errors='replace')!r} is not a number"))
                return
            if int(declared) > self.max_bytes:
                await self._reject(send, PayloadTooLargeError(too_large))
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send, PayloadTooLargeError(too_large))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media in YAML_MEDIA_TYPES and body:
            try:
                body = yaml_to_json(body)
            except InvalidYAMLError as exc:
                await self._reject(send, exc)
                return
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
                     + [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
