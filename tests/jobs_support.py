"""Helpers of the jobs-service tests: waiting, an OpenAPI response checker, a `clustra api` process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_job(http: Any, job_id: str, timeout: float = 120, states: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until the job is in one of ``states``; the job."""

    def reached():
        job = http.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in states else None

    return wait_for(reached, timeout, f"job {job_id} to reach {states}", interval=0.2)


class OpenAPIChecker:
    """Checks a response against the OpenAPI document: its status is documented for the route,
    its body validates against the documented schema."""

    def __init__(self, document: dict[str, Any]):
        from jsonschema import Draft202012Validator

        self.document = document
        self._validator = Draft202012Validator
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"), template)
            for template in document["paths"]
        ]
        self.seen: set[tuple[str, str, int]] = set()

    def template(self, path: str) -> str | None:
        """The documented route template a concrete path matches."""
        return next((t for pattern, t in self.routes if pattern.match(path)), None)

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        """AssertionError when the response is not what the document says."""
        template = self.template(path.split("?")[0])
        operation = self.document["paths"].get(template, {}).get(method.lower()) if template else None
        if operation is None:  # not a documented operation: still a JSON error body
            assert status >= 400 and {"error", "message"} <= set(body), (method, path, status, body)
            return
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {template} answered {status}, documented: {sorted(responses)}"
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        root = {**schema, "components": self.document["components"]}
        errors = sorted(self._validator(root).iter_errors(body), key=str)
        assert not errors, f"{method} {template} {status}: {errors[0].message}"
        self.seen.add((method.upper(), template, status))


class CheckedClient:
    """A TestClient / httpx client whose every answer is checked by an :class:`OpenAPIChecker`."""

    def __init__(self, client: Any, checker: OpenAPIChecker):
        self.client = client
        self.checker = checker

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        body = response.json()
        self.checker.check(method, path, response.status_code, body)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


class ApiProcess:
    """``clustra api`` as a separate process (its own session, so its Dask workers die with it)."""

    def __init__(self, tmp: Path, *args: str, name: str = "api"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{name}-{self.port}.log"
        env = dict(os.environ, CLUSTRA_DEVICE="cpu", OMP_NUM_THREADS="1")
        env.pop("CLUSTRA_AUTH_TOKEN", None)
        command = [sys.executable, "-m", "clustra.cli", "api", "--port", str(self.port), "--log-level", "warning", *args]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        """Until /healthz says Dask is ready; the health document."""

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"clustra api exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                health = self.http.get("/healthz").json()
            except httpx.HTTPError:
                return None
            return health if health["dask"] == "ready" else None

        return wait_for(ready, timeout, f"clustra api on port {self.port}", interval=0.2)

    def kill(self) -> None:
        """SIGKILL the process and everything it started (its process group): a crash."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.http.close()

    def stop(self) -> int:
        """SIGTERM (graceful shutdown), then make sure nothing of it is left; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # orphans of the group, if any
        except ProcessLookupError:
            pass
        self.http.close()
        return self.proc.returncode
