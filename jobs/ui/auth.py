"""Who may see the web UI: the service's bearer token, from a header or from a cookie.

Browsers send no ``Authorization`` header when they follow a link, so the UI also takes the
token from an HttpOnly cookie, set by the login form (``/ui/login``) or by one visit to a
``/ui/`` page with ``?token=TOKEN`` (the token is then dropped from the address). The cookie
is ``SameSite=Strict`` and every form post must come from the same origin, so another site
cannot make a signed-in browser submit or rename anything.
"""

from __future__ import annotations

import urllib.parse

from fastapi import Request

from cluster_core.http_contract import UnauthorizedError, check_bearer

COOKIE = "clustra_ui_token"
COOKIE_PATH = "/ui"


class LoginRequired(Exception):
    """A page asked for without a valid token: the UI answers with the login form (or 401 JSON)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ForeignOrigin(Exception):
    """A form post from another origin (refused with 403)."""


def token_of(request: Request) -> str | None:
    """The service's token (None: auth is off)."""
    return request.app.state.settings.auth_token


def authorized(request: Request, candidate: str | None = None) -> bool:
    """Whether the request carries the token: header, cookie or ``candidate`` (e.g. ``?token=``)."""
    token = token_of(request)
    if token is None:
        return True
    headers = [request.headers.get("authorization")]
    cookie = request.cookies.get(COOKIE)
    for value in (cookie, candidate):
        if value:
            headers.append(f"Bearer {value}")
    for header in headers:
        if not header:
            continue
        try:
            check_bearer(header, token)
            return True
        except UnauthorizedError:
            continue
    return False


def require_ui_token(request: Request) -> None:
    """Dependency of every UI route but the login form and the static files."""
    if not authorized(request):
        had = request.cookies.get(COOKIE) or request.headers.get("authorization")
        raise LoginRequired("the token is not valid; enter it again" if had else "this service requires its token")
    if request.method == "POST":
        check_same_origin(request)


def check_same_origin(request: Request) -> None:
    """Refuse a post whose ``Origin`` (or ``Referer``) names another host than the one it was sent to."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return  # same-origin navigations may omit it; SameSite=Strict keeps the cookie off cross-site posts
    host = urllib.parse.urlsplit(source).netloc
    if host != request.headers.get("host"):
        raise ForeignOrigin(f"a form post from {source!r} to {request.headers.get('host')!r} is refused")


def safe_next(value: str | None) -> str:
    """Where to go after the login: a /ui/ path of this service, never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


def set_token_cookie(response, token: str, secure: bool) -> None:
    """The HttpOnly, same-site cookie that carries the token on the UI's pages."""
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path=COOKIE_PATH, secure=secure)
