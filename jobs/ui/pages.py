"""Rendering the UI's pages: one jinja2 environment over the UI's templates and the report's sections."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


@lru_cache(maxsize=1)
def environment() -> Any:
    """The UI's templates first, then the report's (``_sections.html.j2``), autoescaped."""
    import jinja2

    from cluster_core.report import TEMPLATE_DIR as REPORT_TEMPLATES
    from cluster_core.report import install_filters

    loader = jinja2.FileSystemLoader([str(TEMPLATE_DIR), str(REPORT_TEMPLATES)])
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    install_filters(env)
    env.filters["short_time"] = lambda v: (v or "")[:19].replace("T", " ")
    return env


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """A page of the UI."""
    auth = request.app.state.settings.auth_token is not None
    html = environment().get_template(template).render(request_path=request.url.path, auth=auth, **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def render_error(request: Request, status: int, message: str, back: str | None = None) -> HTMLResponse:
    """A friendly error page: what went wrong (the library's message names the value) and a way back."""
    return render(request, "error.html.j2", {"status": status, "message": message, "back": back or "/ui/"}, status=status)
