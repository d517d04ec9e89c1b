"""Prometheus metrics of the ingress replica, served at ``GET /metrics``.

Each ingress replica counts what it handled (scrape every replica, or sum in PromQL);
Ray Serve's own replica and proxy metrics are exported separately by Ray's metrics agent.
"""

from __future__ import annotations

from cluster_core._compat import require

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServingMetrics:
    """Request counts, latencies and assigned records, in a registry of their own."""

    def __init__(self) -> None:
        prometheus = require("prometheus_client", "the /metrics endpoint")
        self._prometheus = prometheus
        self.registry = prometheus.CollectorRegistry()
        self.requests = prometheus.Counter(
            "clustra_requests", "HTTP requests handled, by route and status.", ["route", "status"], registry=self.registry
        )
        self.latency = prometheus.Histogram(
            "clustra_request_duration_seconds",
            "Time from request arrival in the ingress to the response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.records = prometheus.Counter(
            "clustra_assigned_records", "Records assigned, by model and body format.", ["model", "format"], registry=self.registry
        )

        self.replica_loss = prometheus.Counter(
            "clustra_replica_loss_requests",
            "Requests whose model replica died while they were in flight: retried (on another replica or "
            "after its restart) or failed (answered 503 with Retry-After).",
            ["outcome"],
            registry=self.registry,
        )

    def replica_lost(self, outcome: str) -> None:
        """Count a request caught by a model replica's death: ``retried`` or ``failed``."""
        self.replica_loss.labels(outcome).inc()

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def assigned(self, model: str, body_format: str, n_records: int) -> None:
        """Count records assigned by ``model`` through the ``json`` or ``arrow`` path."""
        self.records.labels(model, body_format).inc(n_records)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return self._prometheus.generate_latest(self.registry), self._prometheus.CONTENT_TYPE_LATEST
