"""Prometheus metrics of the ingress replica, served at ``GET /metrics``.

Each ingress replica counts what it handled (scrape every replica, or sum in PromQL);
Ray Serve's own replica and proxy metrics are exported separately by Ray's metrics agent.

``clustra_assignments_total{model, version, cluster}`` counts the records assigned to each
cluster of each served version (``cluster="-1"``: HDBSCAN noise): the live view of segment
shares that ``clustra drift`` checks in batch. Its cardinality is bounded: a version has its
model's clusters plus noise (at most ``max_k`` + 1; ``max_k`` is 100 unless a train spec raised
it), and a replica keeps series for at most :data:`MAX_COUNTED_VERSIONS` versions, dropping the
series of the version it counted least recently beyond that (a dropped series that comes back
starts at 0, which ``rate()`` and ``increase()`` read as a counter reset). With the default
``max_k``: at most 32 x 101 series per ingress replica.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from typing import Any

from cluster_core._compat import require

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_COUNTED_VERSIONS = 32
# a JSON answer is the model replica's json.dumps of dicts whose first key is "cluster_id"; a
# quote inside a string value is escaped (\"), so this pattern only matches the real keys
_JSON_CLUSTER_ID = re.compile(rb'"cluster_id": (-?[0-9]+)')


def json_cluster_counts(payload: bytes) -> Counter:
    """``{cluster id: records}`` of a JSON array of assignments (the model replica's answer)."""
    return Counter(int(match) for match in _JSON_CLUSTER_ID.findall(payload))


def arrow_cluster_counts(payload: bytes) -> Counter:
    """``{cluster id: records}`` of an Arrow IPC answer (its ``cluster_id`` column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pa.ipc.open_stream(payload).read_all().column("cluster_id")
    counts = pc.value_counts(column).to_pylist()
    return Counter({int(row["values"]): int(row["counts"]) for row in counts if row["values"] is not None})


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
        self.assignments = prometheus.Counter(
            "clustra_assignments",
            "Records assigned to each cluster, by model, version and cluster id (-1: noise).",
            ["model", "version", "cluster"],
            registry=self.registry,
        )
        # (model, version) -> {cluster id: its labelled child}, least recently counted first
        self._counted: OrderedDict[tuple[str, str], dict[int, Any]] = OrderedDict()
        # labelled children of the series never removed, looked up once (``labels()`` locks and hashes per call)
        self._observed: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._assigned: dict[tuple[str, str], Any] = {}

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
        children = self._observed.get((route, status))
        if children is None:
            children = self._observed[(route, status)] = (self.requests.labels(route, str(status)), self.latency.labels(route))
        children[0].inc()
        children[1].observe(seconds)

    def assigned(self, model: str, body_format: str, n_records: int) -> None:
        """Count records assigned by ``model`` through the ``json`` or ``arrow`` path."""
        child = self._assigned.get((model, body_format))
        if child is None:
            child = self._assigned[(model, body_format)] = self.records.labels(model, body_format)
        child.inc(n_records)

    def assigned_clusters(self, model: str, version: int | str, counts: Counter | dict[int, int]) -> None:
        """Count records assigned to each cluster of ``model`` version ``version`` (``{cluster id: n}``).

        Series are kept for at most :data:`MAX_COUNTED_VERSIONS` versions (least recently counted dropped).
        """
        key = (model, str(version))
        clusters = self._counted.pop(key, None)
        if clusters is None:
            clusters = {}
        self._counted[key] = clusters
        for cluster, n in counts.items():
            child = clusters.get(cluster)
            if child is None:
                child = clusters[cluster] = self.assignments.labels(key[0], key[1], str(cluster))
            child.inc(n)
        while len(self._counted) > MAX_COUNTED_VERSIONS:
            (old_model, old_version), old_clusters = self._counted.popitem(last=False)
            for cluster in old_clusters:
                self.assignments.remove(old_model, old_version, str(cluster))

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return self._prometheus.generate_latest(self.registry), self._prometheus.CONTENT_TYPE_LATEST
