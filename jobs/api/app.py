"""The jobs REST API (FastAPI): ``/v1/jobs``, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request, Response

from cluster_core import __version__
from cluster_core.http_contract import ErrorBody

from ..settings import ServiceSettings
from ..specs import JobSpec
from .errors import UnknownParameterError, install_error_handlers
from .limits import BearerGate, BodySizeLimit, require_token
from .schemas import (
    ClusterName, ClusterNameView, Health, JobKind, JobList, JobState, JobView, Leaderboard, LogPage, ModelRerun, SweepRerun,
)
from .service import JobService

_DESCRIPTIONS = {
    400: "malformed request (body not JSON, YAML with aliases or nested too deep, a bad Content-Length)",
    401: "missing or wrong bearer token (when the service has one)",
    403: "a spec path outside the configured roots ('..', absolute paths, symlinks)",
    404: "no such job (or model)",
    409: "the job is not in a state that allows this, or a stored run or model cannot be read",
    413: "request body larger than the limit",
    422: "invalid spec or parameter; 'field' names it",
    429: "too many queued jobs",
    503: "the job store cannot be written now (disk full, read-only); retry after the Retry-After seconds",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
            for code in sorted({400, 401, 413, 422, 503, *codes})}


SQLITE_MAX_INT = 2**63 - 1  # the largest integer SQLite stores

JobId = Annotated[str, Path(description="the job's id", min_length=1, max_length=64)]


def _service(request: Request) -> JobService:
    return request.app.state.service


ServiceDep = Annotated[JobService, Depends(_service)]


def _query_parameters(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    """``{(method, path template): query parameter names}``, from the app's OpenAPI document (made once)."""
    table = getattr(app.state, "query_parameters", None)
    if table is None:
        table = {(method, path): {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
                 for path, item in app.openapi()["paths"].items() for method, operation in item.items()}
        app.state.query_parameters = table
    return table


def refuse_unknown_query_parameters(request: Request) -> None:
    """422 for a query parameter the route does not take (``?stat=queued`` is a typo, not "all jobs")
    or one given several times (each takes one value)."""
    route = request.scope.get("route")
    if route is None or not request.query_params:
        return
    known = _query_parameters(request.app).get((request.method.lower(), route.path), set())
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise UnknownParameterError(f"unknown query parameter {unknown[0]!r}; this route takes: {expected}",
                                    field=unknown[0])
    repeated = [name for name in dict.fromkeys(request.query_params) if len(request.query_params.getlist(name)) > 1]
    if repeated:
        count = len(request.query_params.getlist(repeated[0]))
        raise UnknownParameterError(f"given {count} times; give it once", field=repeated[0])


router = APIRouter(prefix="/v1", dependencies=[Depends(require_token), Depends(refuse_unknown_query_parameters)],
                   tags=["jobs"])


_YAML_BODY = {"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"},
                                                                 "example": "kind: train\ndata: customers/\nk: [3, 5]\n"}}}}


@router.post("/jobs", status_code=201, response_model=JobView, openapi_extra=_YAML_BODY,
             responses={200: {"model": JobView, "description": "an Idempotency-Key seen before: the job it created"},
                        **_errors(400, 403, 409, 413, 429)})
def submit_job(
    service: ServiceDep,
    response: Response,
    spec: Annotated[JobSpec, Body(description="a train, apply or drift spec")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                                  description="retrying with the same key returns the same job")] = None,
) -> JobView:
    """Submit a job spec, JSON or YAML (queued at once; 201 with its Location)."""
    record, created = service.submit(spec, idempotency_key=idempotency_key)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/jobs/{record.id}"
    return service.view(record)


@router.get("/jobs", response_model=JobList, responses=_errors())
def list_jobs(
    service: ServiceDep,
    state: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
    kind: Annotated[JobKind | None, Query(description="only jobs of this kind")] = None,
    parent: Annotated[str | None, Query(description="only reruns of this job", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=SQLITE_MAX_INT, description="jobs to skip")] = 0,
) -> JobList:
    """Jobs, newest first, filtered by state / kind / parent."""
    records = service.store.list(state=state, kind=kind, parent_id=parent, limit=limit, offset=offset)
    jobs = [service.view(r) for r in records]
    total = service.store.count(state=state, kind=kind, parent_id=parent)
    return JobList(jobs=jobs, count=len(jobs), total=total)


@router.get("/jobs/{job_id}", response_model=JobView, responses=_errors(404))
def get_job(service: ServiceDep, job_id: JobId) -> JobView:
    """A job: state, progress, current step, step timings, error, result."""
    return service.get(job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobView, responses=_errors(404, 409))
def cancel_job(service: ServiceDep, job_id: JobId) -> JobView:
    """Cancel a queued or running job (a running one stops its Dask work and ends 'cancelled')."""
    service.runner.cancel(job_id)
    return service.get(job_id)


@router.get("/jobs/{job_id}/leaderboard", response_model=Leaderboard, responses=_errors(404, 409))
def get_leaderboard(service: ServiceDep, job_id: JobId) -> dict[str, Any]:
    """The leaderboard of a succeeded train job (best model first)."""
    return service.leaderboard(job_id)


@router.get("/jobs/{job_id}/logs", response_model=LogPage, responses=_errors(404))
def get_logs(
    service: ServiceDep,
    job_id: JobId,
    after: Annotated[int, Query(ge=0, le=SQLITE_MAX_INT, description="only lines with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> LogPage:
    """The job's log lines after a cursor."""
    import datetime as _dt

    lines = service.store.logs(job_id, after=after, limit=limit)
    state = service.store.get(job_id).state
    return LogPage(
        job_id=job_id, state=state,
        lines=[{"id": l["id"], "at": _dt.datetime.fromtimestamp(l["at"], _dt.timezone.utc), "text": l["text"]}
               for l in lines],
        next_after=lines[-1]["id"] if lines else after,
    )


@router.post("/jobs/{job_id}/rerun", status_code=201, response_model=JobView, responses=_errors(403, 404, 409, 413, 429))
def rerun_sweep(service: ServiceDep, job_id: JobId, body: Annotated[SweepRerun, Body()] = SweepRerun()) -> JobView:
    """Rerun a train job's whole sweep (optionally with a new list of counts ``k``) as a new linked job."""
    return service.view(service.rerun_sweep(job_id, body.k))


@router.post("/jobs/{job_id}/models/{model_id}/rerun", status_code=201, response_model=JobView,
             responses=_errors(403, 404, 409, 413, 429))
def rerun_model(
    service: ServiceDep, job_id: JobId, model_id: Annotated[str, Path(max_length=200)], body: ModelRerun
) -> JobView:
    """Rerun one model of a succeeded train job with another cluster count, as a new linked job."""
    return service.view(service.rerun_model(job_id, model_id, body.k))


ModelId = Annotated[str, Path(max_length=200, description="a model id of the job's leaderboard")]


@router.get("/jobs/{job_id}/models/{model_id}/insights", responses=_errors(404, 409))
def get_insights(service: ServiceDep, job_id: JobId, model_id: ModelId) -> dict[str, Any]:
    """The model's insights.json: profiles, observations, heatmap, feature impact, associations (docs/insights.md)."""
    return service.insights(job_id, model_id)


@router.post("/jobs/{job_id}/models/{model_id}/clusters/{cluster_id}/name", response_model=ClusterNameView,
             responses=_errors(404, 409))
def rename_cluster(
    service: ServiceDep, job_id: JobId, model_id: ModelId,
    cluster_id: Annotated[int, Path(ge=0, description="the cluster id")], body: ClusterName,
) -> dict[str, Any]:
    """Name a cluster; `clustra apply`, serving (once published again) and the insights use the name."""
    return service.rename_cluster(job_id, model_id, cluster_id, body.name)


def health(request: Request) -> Health:
    """Liveness for probes (no auth): the process answers and its store is readable."""
    service: JobService = request.app.state.service
    runner = service.runner.health()
    return Health(
        status="ok", store=str(service.store.path), queued_jobs=service.store.count(state="queued"),
        running_jobs=runner["running_jobs"], max_concurrent_jobs=runner["max_concurrent_jobs"], dask=runner["dask"],
        dask_address=runner["dask_address"], dask_error=runner["dask_error"], auth=service.settings.auth_token is not None,
    )


def metrics(request: Request) -> Response:
    """Prometheus text exposition: jobs by state, queue length, job durations, Dask workers (jobs/metrics.py).

    Behind the bearer token when the service has one, like the assignment API's ``/metrics``.
    """
    service: JobService = request.app.state.service
    body, content_type = service.metrics.exposition()
    return Response(body, media_type=content_type)


def create_app(settings: ServiceSettings | None = None, service: JobService | None = None) -> FastAPI:
    """The FastAPI application.

    Parameters
    ----------
    settings : ServiceSettings, optional
        Used to open a :class:`JobService` at startup when ``service`` is not given.
    service : JobService, optional
        An opened service (``clustra api`` opens it first so a bad setting is a one-line error).
    """
    if settings is None:
        settings = service.settings if service is not None else ServiceSettings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running = service or JobService(settings)
        app.state.service = running
        running.start()
        try:
            yield
        finally:
            running.stop()

    app = FastAPI(
        title="Clustra jobs API",
        version=__version__,
        description="Submit, watch and manage clustering jobs (train sweeps and apply runs) that run on Dask.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(BearerGate, token=settings.auth_token)  # outermost: before the body is read
    app.include_router(router)
    app.add_api_route("/healthz", health, methods=["GET"], response_model=Health, tags=["health"],
                      responses={503: {"model": ErrorBody, "description": _DESCRIPTIONS[503]}})
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=Response, tags=["health"],
                      dependencies=[Depends(require_token)],
                      responses={200: {"description": "Prometheus text exposition format",
                                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                                 401: {"model": ErrorBody, "description": _DESCRIPTIONS[401]},
                                 503: {"model": ErrorBody, "description": _DESCRIPTIONS[503]}})
    from ..ui import install_ui

    install_ui(app)  # the web UI at /ui/ (same token; jobs/ui)
    return app


__all__ = ["create_app"]
