"""Request and response bodies of the jobs API (they make the OpenAPI document)."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..store import JobRecord

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
JobKind = Literal["train", "apply", "drift"]


class StepTiming(BaseModel):
    """A step of a job and how long it took (``seconds`` is None while it runs)."""

    name: str
    started_at: _dt.datetime
    finished_at: _dt.datetime | None = None
    seconds: float | None = None


class Timings(BaseModel):
    """Seconds spent queued and running (up to now while the job is not finished)."""

    queued_seconds: float | None = None
    running_seconds: float | None = None


class JobView(BaseModel):
    """A job: its spec, state, progress, timings, error and result."""

    id: str
    kind: JobKind
    state: JobState
    name: str | None = None
    spec: dict[str, Any] = Field(description="the validated spec, defaults filled in")
    output: str | None = Field(None, description="the run directory (train) or scored dataset (apply) it writes")
    progress: float = Field(ge=0.0, le=1.0)
    step: str | None = Field(None, description="the current (or last) step")
    steps: list[StepTiming] = Field(default_factory=list)
    timings: Timings
    created_at: _dt.datetime
    started_at: _dt.datetime | None = None
    finished_at: _dt.datetime | None = None
    updated_at: _dt.datetime
    error: str | None = None
    result: dict[str, Any] | None = Field(
        None, description="train: run_dir, best, recommended, n_rows, n_models, n_failed, published (with publish), "
                          "series (with series: method, counts, dropped, model_id, n_clusters, segment_sizes, outputs); "
                          "apply: out, n_rows, cluster_counts, model_id (on a series run: n_series, n_series_dropped, "
                          "outputs); drift: verdict (drift or pass), reasons, clusters, features, out, report_file"
    )
    cancel_requested: bool = False
    attempts: int = Field(0, description="times the job was started")
    parent_id: str | None = Field(None, description="the job this one reruns")
    rerun: dict[str, Any] | None = Field(None, description="what the rerun changed: {k} or {model_id, k}")
    reruns: list[str] = Field(default_factory=list, description="jobs that rerun this one")
    links: dict[str, str] = Field(default_factory=dict)


class JobList(BaseModel):
    """A page of jobs, newest first."""

    jobs: list[JobView]
    count: int = Field(description="jobs in this page")
    total: int = Field(description="jobs matching the filter")


class LogLine(BaseModel):
    """A line of a job's log; ``id`` increases (pass the last one as ``after``)."""

    id: int
    at: _dt.datetime
    text: str


class LogPage(BaseModel):
    """Log lines after a cursor."""

    job_id: str
    state: JobState
    lines: list[LogLine]
    next_after: int = Field(description="pass as ?after= to get the lines that follow")


class LeaderboardEntry(BaseModel):
    """A model of the sweep, with its validation metrics."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    rank: int
    model_id: str
    algorithm: str
    status: Literal["ok", "failed"]
    n_clusters: int | None = None
    requested_clusters: int | None = None
    silhouette: float | None = None
    davies_bouldin: float | None = None
    calinski_harabasz: float | None = None
    noise_fraction: float | None = None
    fit_seconds: float | None = None
    error: str | None = None


class Leaderboard(BaseModel):
    """A train job's leaderboard (best first)."""

    job_id: str
    run_dir: str
    best: str | None
    metric: str
    models: list[LeaderboardEntry]


class SweepRerun(BaseModel):
    """Rerun a train job's whole sweep, optionally with another list of cluster counts."""

    model_config = ConfigDict(extra="forbid")

    k: list[int] | None = Field(None, description="new cluster counts (default: the original's)")


class ModelRerun(BaseModel):
    """Rerun one model of a train job with another cluster count."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(description="the new cluster count")


class ClusterName(BaseModel):
    """A new name for one cluster of a model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="the cluster's new name, e.g. 'FR visitors'")


class ClusterNameView(BaseModel):
    """A cluster's name after a rename."""

    job_id: str
    model_id: str
    cluster_id: int
    name: str
    name_source: str = Field(description="'user' once renamed, 'generated' when named by the observations")


class Health(BaseModel):
    """Liveness and what the service is doing."""

    status: Literal["ok"]
    store: str
    queued_jobs: int
    running_jobs: int
    max_concurrent_jobs: int
    dask: Literal["starting", "ready", "error"]
    dask_address: str | None = None
    dask_error: str | None = None
    auth: bool


def _time(value: float | None) -> _dt.datetime | None:
    return None if value is None else _dt.datetime.fromtimestamp(value, _dt.timezone.utc)


def job_view(job: JobRecord, reruns: list[str], now: float) -> JobView:
    """The API's view of a stored job."""
    steps = [
        StepTiming(
            name=s["name"], started_at=_time(s["started_at"]), finished_at=_time(s.get("finished_at")),
            seconds=None if s.get("finished_at") is None else round(s["finished_at"] - s["started_at"], 3),
        )
        for s in job.steps
    ]
    queued_until = job.started_at or job.finished_at or now
    timings = Timings(
        queued_seconds=round(queued_until - job.created_at, 3),
        running_seconds=None if job.started_at is None else round((job.finished_at or now) - job.started_at, 3),
    )
    links = {"self": f"/v1/jobs/{job.id}", "logs": f"/v1/jobs/{job.id}/logs"}
    if job.kind == "train":
        links["leaderboard"] = f"/v1/jobs/{job.id}/leaderboard"
    return JobView(
        id=job.id, kind=job.kind, state=job.state, name=job.name, spec=job.spec, output=job.output,
        progress=job.progress, step=job.step, steps=steps, timings=timings, created_at=_time(job.created_at),
        started_at=_time(job.started_at), finished_at=_time(job.finished_at), updated_at=_time(job.updated_at),
        error=job.error, result=job.result, cancel_requested=job.cancel_requested, attempts=job.attempts,
        parent_id=job.parent_id, rerun=job.rerun, reruns=reruns, links=links,
    )
