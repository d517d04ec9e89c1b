"""Headless Chromium for the tests that look at pages as a person would (Playwright + Debian's chromium).

Every page a test opens fails the test on a console error, an uncaught page error, or a
request to any host but 127.0.0.1 / localhost (intercepted and aborted, so nothing leaves
the machine). Without /usr/bin/chromium or the playwright package the browser tests are
skipped with how to run them; ``make test`` installs both.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CLUSTRA_CHROMIUM", "/usr/bin/chromium")
HOW_TO_RUN = ("browser tests need Debian's chromium and the playwright package: `apt-get install -y chromium` and "
              "`pip install -e '.[dev]'` (or run `make test`, which installs both); never `playwright install`")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
WIDTH = 1280


def browser_available() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is missing; {HOW_TO_RUN}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"the playwright package is missing; {HOW_TO_RUN}"
    return None


@dataclass
class Watched:
    """What a page did that a test must not accept."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    allowed_console: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        errors = [e for e in self.console_errors if not any(a in e for a in self.allowed_console)]
        return ([f"console error: {e}" for e in errors] + [f"page error: {e}" for e in self.page_errors]
                + [f"request to another host: {u}" for u in self.foreign_requests])

    def check(self) -> None:
        problems = self.problems()
        assert not problems, "\n".join(problems)


def _is_local(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("data", "blob", "about", "file"):
        return True
    return parsed.hostname in LOOPBACK


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium for one test module (skips with how to run it when chromium or
    playwright is missing).

    Stopped at the end of the module: a sync Playwright driver keeps an event loop running
    on the main thread while it lives, and the tests of other modules that call
    ``asyncio.run`` there must not meet it.
    """
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    try:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()
    finally:
        driver.stop()


@pytest.fixture
def watched_page(chromium) -> Iterator[tuple[object, Watched]]:
    """A 1280 px wide page that records console errors, page errors and requests to other hosts."""
    context = chromium.new_context(viewport={"width": WIDTH, "height": 900})
    watched = Watched()

    def route(r):
        if _is_local(r.request.url):
            r.continue_()
        else:
            watched.foreign_requests.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.page_errors.append(str(e)))
    try:
        yield page, watched
    finally:
        context.close()


def screenshot(page, path: Path, *, full_page: bool = True) -> Path:
    """A PNG of the page at 1280 px wide (full height by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path
