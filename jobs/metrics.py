"""Prometheus metrics of the jobs service, served at ``GET /metrics`` (text exposition format).

* ``clustra_jobs{state}``: jobs in the store by state (gauge, read from the store at scrape time,
  so it is right after a restart and across the store's whole history);
* ``clustra_job_queue_length``: jobs waiting for a slot (gauge);
* ``clustra_jobs_running_slots``: ``max_concurrent_jobs`` (gauge; compare with ``clustra_jobs{state="running"}``);
* ``clustra_job_duration_seconds{kind, state}``: running time of the jobs this process ran, by
  kind and final state (histogram; from ``started_at`` to ``finished_at``; counts start at 0 when
  the process starts, as Prometheus counters do);
* ``clustra_dask_workers``: workers of the attached Dask cluster (0 while none is attached).

Every label takes a bounded set of values (job kinds and states), so the series count is fixed.
Like the assignment API's ``/metrics``, the route needs the bearer token when the service has
one (the chart's ServiceMonitor sends it from the same Secret).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .store import JobRecord, JobStore

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)


class _ServiceCollector:
    """Gauges read when Prometheus scrapes: jobs by state, queue length, Dask workers."""

    def __init__(self, store: JobStore, runner: Any) -> None:
        self.store = store
        self.runner = runner

    def describe(self) -> list[Any]:
        return []  # collected lazily: nothing is read at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        counts = self.store.count_by_state()
        by_state = GaugeMetricFamily("clustra_jobs", "Jobs in the store, by state.", labels=["state"])
        for state, n in counts.items():
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily("clustra_job_queue_length", "Jobs queued, waiting for a free slot.", value=counts["queued"])
        yield GaugeMetricFamily("clustra_jobs_running_slots", "Jobs that may run at once (max_concurrent_jobs).",
                                value=self.runner.settings.max_concurrent_jobs)
        yield GaugeMetricFamily("clustra_dask_workers", "Workers of the attached Dask cluster (0 when none is attached).",
                                value=self.runner.dask.n_workers())


class JobMetrics:
    """The jobs service's metrics, in a registry of their own.

    Parameters
    ----------
    store : JobStore
    runner : jobs.runner.Runner
        Its ``settings`` and Dask connection are read at scrape time.
    """

    def __init__(self, store: JobStore, runner: Any) -> None:
        import prometheus_client

        self._prometheus = prometheus_client
        self.registry = prometheus_client.CollectorRegistry()
        self.durations = prometheus_client.Histogram(
            "clustra_job_duration_seconds", "Running time of finished jobs (started to finished), by kind and final state.",
            ["kind", "state"], buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.registry.register(_ServiceCollector(store, runner))

    def job_finished(self, job: JobRecord) -> None:
        """Observe a job that ended after running (a job cancelled while queued never ran: not observed)."""
        if job.started_at is None or job.finished_at is None:
            return
        self.durations.labels(job.kind, job.state).observe(max(0.0, job.finished_at - job.started_at))

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return self._prometheus.generate_latest(self.registry), self._prometheus.CONTENT_TYPE_LATEST


__all__ = ["DURATION_BUCKETS", "JobMetrics"]
