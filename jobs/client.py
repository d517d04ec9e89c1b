"""A small synchronous client of the jobs API (used by ``clustra jobs`` and by tests)."""

from __future__ import annotations

import time
from typing import Any

from cluster_core.errors import ClustraError

ENV_SERVER = "CLUSTRA_SERVER"
DEFAULT_SERVER = "http://127.0.0.1:8080"
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


class ApiError(ClustraError):
    """The jobs API answered with an error, or could not be reached."""


class JobsClient:
    """A small synchronous client of the jobs API.

    Parameters
    ----------
    server : str
        Base URL, e.g. ``http://127.0.0.1:8080``.
    token : str, optional
        Bearer token (``CLUSTRA_AUTH_TOKEN``).
    timeout : float
        Seconds per request.
    """

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer; :class:`ApiError` with the server's message otherwise."""
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the jobs API at {self.server}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            raise ApiError(message or f"HTTP {response.status_code} from {self.server}{path}: {response.text[:200]}")
        return body

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /v1/jobs; retried once on a connection error with the same key (no duplicate)."""
        import uuid

        key = idempotency_key or uuid.uuid4().hex
        try:
            return self.request("POST", "/v1/jobs", json=spec, headers={"Idempotency-Key": key})
        except ApiError as exc:
            if "cannot reach" not in str(exc):
                raise
            time.sleep(1.0)
            return self.request("POST", "/v1/jobs", json=spec, headers={"Idempotency-Key": key})

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id}."""
        return self.request("GET", f"/v1/jobs/{job_id}")

    def leaderboard(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id}/leaderboard."""
        return self.request("GET", f"/v1/jobs/{_segment(job_id)}/leaderboard")

    def recommended_model(self, job_id: str) -> str:
        """The model a train job stands for: its leaderboard's recommended model (the best before there was one)."""
        board = self.leaderboard(job_id)
        chosen = board.get("recommended") or board.get("best")
        if not chosen:
            raise ApiError(f"job {job_id} has no successful model")
        return chosen

    def insights(self, job_id: str, model_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id}/models/{model_id}/insights: the model's ``insights.json``."""
        return self.request("GET", f"/v1/jobs/{_segment(job_id)}/models/{_segment(model_id)}/insights")

    def rename_cluster(self, job_id: str, model_id: str, cluster_id: int, name: str) -> dict[str, Any]:
        """POST /v1/jobs/{id}/models/{model_id}/clusters/{cluster_id}/name: name a cluster."""
        path = f"/v1/jobs/{_segment(job_id)}/models/{_segment(model_id)}/clusters/{int(cluster_id)}/name"
        return self.request("POST", path, json={"name": name})

    def wait(self, job_id: str, *, timeout: float | None = None, interval: float = 1.0,
             on_update: Any = None) -> dict[str, Any]:
        """Poll until the job is finished (or ``timeout`` seconds passed); its last state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["state"] in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return job
            time.sleep(interval)


def _segment(value: str) -> str:
    """``value`` quoted as one path segment (a model id with a slash or a space stays one segment)."""
    import urllib.parse

    return urllib.parse.quote(str(value), safe="")


__all__ = ["DEFAULT_SERVER", "ENV_SERVER", "TERMINAL", "ApiError", "JobsClient"]
