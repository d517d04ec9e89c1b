"""Request guards: the optional bearer token (401, before any body work), a body size limit
(413), bounded YAML (no aliases, limited nesting) read as JSON, and a nesting limit for JSON."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cluster_core.errors import ClustraError
from cluster_core.http_contract import BadRequestError, PayloadTooLargeError, check_bearer, error_body

from ..specs import SpecYAMLError, load_spec_yaml
from .errors import InvalidYAMLError

# documents the scheme in OpenAPI; the check itself is check_bearer's
_bearer = HTTPBearer(auto_error=False, description="the service's token (CLUSTRA_AUTH_TOKEN), when it has one")


def require_token(request: Request, _: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401 unless the request carries ``Authorization: Bearer TOKEN`` (no check when auth is off)."""
    check_bearer(request.headers.get("authorization"), request.app.state.settings.auth_token)


YAML_MEDIA_TYPES = (b"application/yaml", b"application/x-yaml", b"text/yaml", b"text/x-yaml")


PUBLIC_PATHS = frozenset({"/healthz"})
MAX_JSON_DEPTH = 64


def yaml_to_json(body: bytes) -> bytes:
    """A YAML document as JSON bytes; :class:`InvalidYAMLError` saying where it is malformed or
    which limit it goes beyond (aliases, nesting, size: :func:`jobs.specs.load_spec_yaml`)."""
    try:
        value = load_spec_yaml(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidYAMLError(f"the request body is not UTF-8 text: {exc}") from None
    except SpecYAMLError as exc:
        raise InvalidYAMLError(f"the request body {exc.message}") from None
    return json.dumps(value, default=str).encode()


def check_json_depth(body: bytes) -> None:
    """:class:`BadRequestError` for a JSON body nested more than :data:`MAX_JSON_DEPTH` levels
    (a parser would recurse into it); cheap for ordinary bodies (few brackets: no parse)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    try:
        value = json.loads(body)
    except RecursionError:
        raise BadRequestError(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:
        return  # not JSON: the route answers invalid_json
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequestError(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


async def send_error(send: Any, exc: ClustraError) -> None:
    """Answer an ASGI request with the error's JSON body (and close the connection: the body
    may be unread)."""
    status, answer, headers = error_body(exc)
    body = json.dumps(answer).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


UI_PREFIX = "/ui"


class BearerGate:
    """ASGI middleware: with a token configured, every path but :data:`PUBLIC_PATHS` (``/healthz``)
    needs ``Authorization: Bearer TOKEN``, checked before any byte of the body is read or parsed
    (the OpenAPI document and ``/docs`` included).

    The web UI (``/`` and :data:`UI_PREFIX`) is left to its own check (``jobs.ui.auth``): a
    browser cannot send a bearer header on navigation, so its pages take the same token from
    an HttpOnly cookie, and answer a missing one with the login page, not a JSON 401.
    """

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path") or ""
        is_ui = path == "/" or path == UI_PREFIX or path.startswith(UI_PREFIX + "/")
        if scope["type"] == "http" and self.token is not None and path not in PUBLIC_PATHS and not is_ui:
            header = dict(scope.get("headers") or []).get(b"authorization")
            try:
                check_bearer(header.decode("latin-1") if header is not None else None, self.token)
            except ClustraError as exc:
                await send_error(send, exc)
                return
        await self.app(scope, receive, send)


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
        await send_error(send, exc)

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
        elif body:
            try:
                check_json_depth(body)
            except ClustraError as exc:
                await self._reject(send, exc)
                return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
