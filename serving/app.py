"""The Ray Serve application: a FastAPI ingress deployment that assigns itself, or hands off to a model deployment.

::

    HTTP ──► AssignmentAPI (FastAPI ingress)
             auth, body limits, JSON / Arrow decode, registry view: request -> NAME/VERSION,
             /v1/models, /healthz, /metrics
             default: assigns in this replica (serving.inprocess: LRU of loaded models,
                      requests merged while a call runs) -- one hop
             model_deployment=true: ──► AssignmentModel (N replicas, e.g. GPU)
                      @serve.multiplexed: models by NAME/VERSION (LRU)
                      @serve.batch: single requests merged per model

Both paths run the same code (:class:`serving.assign.ServedModel`, the calls ``clustra apply``
makes) and give the same answers and errors. Import path for ``serve deploy`` / ``serve run``:
``serving.app:build_app`` (an application builder taking the ``args`` of
:class:`serving.settings.ServeArgs`). Replicas, autoscaling, batching and ``ray_actor_options``
live in the Serve config YAML (see :mod:`serving.config`).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime.
import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cluster_core import __version__
from cluster_core._compat import require
from cluster_core.errors import ClustraError, InvalidInputError
from cluster_core.http_contract import ErrorBody, ServiceUnavailableError, check_bearer
from cluster_core.registry import ModelRef, ModelRegistry

from .assign import ServedModel
from .catalog import describe_version
from .loopback import confine_replica_sockets
from .config import INGRESS_DEPLOYMENT, MODEL_DEPLOYMENT
from .errors import error_result, install_error_handlers, replica_error_response
from .inprocess import InProcessAssigner, limit_math_threads
from .metrics import ServingMetrics, arrow_cluster_counts, json_cluster_counts
from .openapi import ASSIGN_OPENAPI, AssignResponse, DescribeResponse, Health, ModelList, prometheus_text
from .records import ARROW_STREAM_TYPE, body_format, check_declared_length, parse_records, read_limited
from .resolver import RegistryView
from .series_shape import ServedShapeModel, load_served
from .settings import HEALTH_CHECK_PERIOD_S, IngressOptions, ModelOptions, ServeArgs, max_models_per_replica

serve = require("ray.serve", "Clustra serving")
from ray.serve import Application  # noqa: E402
from ray.exceptions import RayActorError  # noqa: E402
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError  # noqa: E402
from ray.serve.handle import DeploymentHandle, DeploymentResponse  # noqa: E402

_HANDLE_CACHE_SIZE = 1024
logger = logging.getLogger("ray.serve")
_ERROR_DESCRIPTIONS = {
    400: "the body is not JSON, or not an Arrow IPC stream when it says it is one",
    401: "missing or wrong bearer token (when the service has one)",
    404: "no such model, version or alias",
    409: "the published version cannot be read (a missing part, an unknown format, corrupt)",
    413: "a body or a record count above the configured limit",
    415: "a Content-Type other than application/json or application/vnd.apache.arrow.stream",
    422: "a missing, unknown or mistyped column; a bad parameter",
    503: "the model replica died and no other was ready in time (header Retry-After, seconds)",
}
_RETRY_AFTER_HEADER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}

api = FastAPI(
    title="Clustra assignment API",
    version=__version__,
    description="Which cluster is this record in? Models come from the Clustra registry.",
    # served by AssignmentAPI below, behind the bearer token when the service has one
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
)
install_error_handlers(api)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses of a route (401 always): the shared ErrorBody."""
    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in (401, *codes)
    }
    if 503 in responses:
        responses[503]["headers"] = _RETRY_AFTER_HEADER
    return responses


def _root(request: Request) -> str:
    """The application's route prefix as the proxy passed it (``/secured``), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


async def _awaited(response: DeploymentResponse) -> Any:
    return await response


@serve.deployment(name=MODEL_DEPLOYMENT, ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256,
                  health_check_period_s=HEALTH_CHECK_PERIOD_S)
class AssignmentModel:
    """Loads published versions on demand (LRU per replica) and assigns batches of records."""

    def __init__(self, args: dict[str, Any]) -> None:
        confine_replica_sockets()
        limit_math_threads()
        self.registry = ModelRegistry(ServeArgs(**args).registry_url())
        self.reconfigure({})

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply ``user_config`` (batch sizes and waits) without restarting the replica."""
        options = ModelOptions(**(config or {}))
        self.assign_records.set_max_batch_size(options.max_batch_size)
        self.assign_records.set_batch_wait_timeout_s(options.batch_wait_timeout_s)
        self.assign_arrow.set_max_batch_size(options.bulk_max_batch_size)
        self.assign_arrow.set_batch_wait_timeout_s(options.bulk_batch_wait_timeout_s)

    @serve.multiplexed(max_num_models_per_replica=max_models_per_replica())
    async def get_model(self, key: str) -> ServedModel | ServedShapeModel:
        """The model ``NAME/VERSION`` (loaded from the registry on first use; a series shape model
        is served by :class:`~serving.series_shape.ServedShapeModel`)."""
        name, _, version = key.rpartition("/")
        ref = ModelRef(name, int(version))
        return await asyncio.to_thread(load_served, self.registry, ref)

    async def _current_model(self) -> ServedModel | ServedShapeModel:
        return await self.get_model(serve.get_multiplexed_model_id())

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def assign_records(self, requests: list[list[Any]]) -> list[tuple[int, bytes, int]]:
        """JSON records of several requests for one model; ``(status, JSON array or error body, n)`` each."""
        try:
            model = await self._current_model()
        except ClustraError as exc:
            return [error_result(exc)] * len(requests)
        return model.assign_batch(requests)

    async def explain_records(self, records: list[Any]) -> tuple[int, bytes, int]:
        """JSON records with explanations (``?explain=true``; not batched: explaining costs more than assigning)."""
        try:
            model = await self._current_model()
            return 200, await asyncio.to_thread(model.explain_records, records), len(records)
        except ClustraError as exc:
            return error_result(exc)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def assign_arrow(self, bodies: list[bytes]) -> list[tuple[int, bytes, int]]:
        """Arrow IPC bodies of several requests for one model; ``(status, Arrow stream or JSON error body, n)`` each."""
        try:
            model = await self._current_model()
        except ClustraError as exc:
            return [error_result(exc)] * len(bodies)
        return model.assign_arrow_batch(bodies)


@serve.deployment(name=INGRESS_DEPLOYMENT, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=512,
                  health_check_period_s=HEALTH_CHECK_PERIOD_S)
@serve.ingress(api)
class AssignmentAPI:
    """HTTP edge: authentication, limits, decoding, version resolution, metrics; assignment
    itself unless a model deployment handle is given (``model``)."""

    def __init__(self, model: DeploymentHandle | None, args: dict[str, Any]) -> None:
        confine_replica_sockets()
        settings = ServeArgs(**args)
        self.registry = ModelRegistry(settings.registry_url())
        self.token = settings.token()
        self.options = IngressOptions()
        self.view = RegistryView(self.registry, self.options.refresh_interval_s)
        self.metrics = ServingMetrics()
        self.model = model
        self.local: InProcessAssigner | None = None
        if model is None:
            limit_math_threads()
            self.local = InProcessAssigner(self.registry, max_models_per_replica(),
                                           self.options.max_batch_size, self.options.bulk_max_batch_size)
        self._handles: OrderedDict[str, DeploymentHandle] = OrderedDict()
        self._refresher: asyncio.Task | None = None
        self._assigning = 0  # assign requests in this replica now (a lone small one runs on the event loop)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply ``user_config`` (limits, registry refresh interval, batch limits) without a restart."""
        self.options = IngressOptions(**(config or {}))
        self.view.refresh_interval_s = self.options.refresh_interval_s
        if self.local is not None:
            self.local.set_batch_sizes(self.options.max_batch_size, self.options.bulk_max_batch_size)

    # -- helpers --------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        check_bearer(request.headers.get("authorization"), self.token)

    async def _resolve(self, name: str, version: str | None, alias: str | None) -> ModelRef:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._keep_view_fresh())
        if not self.view.models() and self.view.due():  # first request: wait for the view
            await asyncio.to_thread(self._refresh_view)
        ref = self.view.lookup(name, version, alias)
        if ref is None:
            await asyncio.to_thread(self.view.refresh_model, name)
            ref = self.view.lookup(name, version, alias)
        if ref is None:
            raise self.view.not_found(name, version, alias)
        return ref

    async def _keep_view_fresh(self) -> None:
        """Re-read the registry every ``refresh_interval_s``, whether requests come or not.

        A refresh started by a request (as before) answered that request from the old view
        and left the view stale after an idle spell; on a clock of its own, a moved alias is
        seen within ``refresh_interval_s`` of the move (plus one registry read).
        """
        while True:
            started = time.monotonic()
            await asyncio.to_thread(self._refresh_view)
            await asyncio.sleep(max(0.05, self.options.refresh_interval_s - (time.monotonic() - started)))

    def _refresh_view(self) -> None:
        """Re-read the registry; an unreachable registry keeps the last view (and is logged)."""
        try:
            self.view.refresh()
        except Exception as exc:  # noqa: BLE001 - a background refresh must not die silently
            logger.warning("re-reading the registry %s failed, keeping the last view: %s", self.registry.url, exc)

    def _handle(self, ref: ModelRef) -> DeploymentHandle:
        handle = self._handles.get(ref.key)
        if handle is None:
            handle = self._handles[ref.key] = self.model.options(multiplexed_model_id=ref.key)
            if len(self._handles) > _HANDLE_CACHE_SIZE:
                self._handles.popitem(last=False)
        return handle

    async def _body(self, request: Request) -> bytes:
        limit = self.options.max_body_bytes
        check_declared_length(request.headers.get("content-length"), limit)
        return await read_limited(request.stream(), limit)

    async def _call_model(self, call: Any) -> tuple[int, bytes, int]:
        """``await call()`` (a model deployment call); once more when its replica died, else 503.

        Assignment has no side effects, so a request whose replica died in flight (Ray's
        ``ActorDiedError``/``ActorUnavailableError``) is sent again: the router leaves the dead
        replica out and picks another, or waits for the replacement Serve starts within
        ``health_check_period_s``. A second loss, or no replica within ``replica_retry_timeout_s``,
        is a 503 with ``Retry-After`` -- never a 500.
        """
        try:
            return await call()
        except RayActorError as exc:
            logger.warning("a model replica died with a request in flight, retrying it once: %s", type(exc).__name__)
        except (BackPressureError, DeploymentUnavailableError) as exc:
            raise self._unavailable(f"the model deployment cannot take the request now ({type(exc).__name__})") from None
        self.metrics.replica_lost("retried")
        try:
            return await asyncio.wait_for(_awaited(call()), timeout=self.options.replica_retry_timeout_s)
        except (RayActorError, BackPressureError, DeploymentUnavailableError, asyncio.TimeoutError) as exc:
            self.metrics.replica_lost("failed")
            reason = "no model replica was ready" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            raise self._unavailable(f"the model replica serving this request died and its retry failed ({reason})") from None

    @staticmethod
    def _unavailable(message: str) -> ServiceUnavailableError:
        return ServiceUnavailableError(f"{message}; retry in a few seconds", retry_after_s=math.ceil(2 * HEALTH_CHECK_PERIOD_S))

    def _observe(self, route: str, started: float, status: int) -> None:
        self.metrics.observe(route, status, time.perf_counter() - started)

    async def _version_json(
        self, route: str, request: Request, name: str, version: str | None, alias: str | None,
        read: Callable[[ModelRef], Any],
    ) -> Response:
        """Authorize, resolve the chosen version, answer ``read(ref)`` (run in a thread) as JSON; observed under ``route``."""
        started, status = time.perf_counter(), 500
        try:
            self._authorize(request)
            ref = await self._resolve(name, version, alias)
            payload = await asyncio.to_thread(read, ref)
            status = 200
            return JSONResponse(payload)
        except ClustraError as exc:
            status = exc.http_status
            raise
        finally:
            self._observe(route, started, status)

    # -- routes ---------------------------------------------------------------------------
    # The assign route first: FastAPI tries the routes in the order they are declared, each a
    # regex match and a scope update, so the hot route declared last paid for all the others.
    @api.post("/v1/models/{name}/assign", openapi_extra=ASSIGN_OPENAPI,
              responses={200: {"model": AssignResponse, "description": "assignments in request order (JSON), or the "
                               "apply columns as an Arrow IPC stream (Arrow request)",
                               "content": {ARROW_STREAM_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
                         **_errors(400, 404, 409, 413, 415, 422, 503)})
    async def assign(
        self, name: str, request: Request, version: str | None = None, alias: str | None = None, explain: bool = False
    ) -> Response:
        """JSON ``{"records": [...]}`` or an Arrow IPC stream in; assignments in request order out.
        ``explain=true`` (JSON only) adds ``runner_up``, ``margin`` and ``explanation`` to each."""
        started, status = time.perf_counter(), 500
        self._assigning += 1
        try:
            self._authorize(request)
            arrow = body_format(request.headers.get("content-type")) == "arrow"
            ref = await self._resolve(name, version, alias)
            body = await self._body(request)
            if arrow:
                if explain:
                    raise InvalidInputError("explain=true works with JSON records, not Arrow streams", field="explain")
                response = await self._assign_arrow(ref, body)
            else:
                response = await self._assign_json(ref, body, explain)
            status = response.status_code
            return response
        except ClustraError as exc:
            status = exc.http_status
            raise
        finally:
            self._assigning -= 1
            self._observe("/v1/models/{name}/assign", started, status)

    async def _assign_json(self, ref: ModelRef, body: bytes, explain: bool = False) -> Response:
        records = parse_records(body, self.options.max_records)
        if records and self.local is not None:
            if explain:
                code, payload, n_records = await self.local.explain_records(ref, records)
            else:
                code, payload, n_records = await self.local.assign_records(ref, records, alone=self._assigning == 1)
        elif records:
            handle = self._handle(ref)
            method = handle.explain_records if explain else handle.assign_records
            code, payload, n_records = await self._call_model(lambda: method.remote(records))
        else:
            code, payload, n_records = 200, b"[]", 0
        if code != 200:
            return replica_error_response(code, payload)
        self.metrics.assigned(ref.name, "json", n_records)
        self.metrics.assigned_clusters(ref.name, ref.version, json_cluster_counts(payload))
        head = {"model": ref.name, "version": ref.version}
        if ref.alias:
            head["alias"] = ref.alias
        content = json.dumps(head)[:-1].encode() + b', "assignments": ' + payload + b"}"
        return Response(content, media_type="application/json")

    async def _assign_arrow(self, ref: ModelRef, body: bytes) -> Response:
        if self.local is not None:
            code, payload, n_records = await self.local.assign_arrow(ref, body)
        else:
            handle = self._handle(ref)
            code, payload, n_records = await self._call_model(lambda: handle.assign_arrow.remote(body))
        if code != 200:
            return replica_error_response(code, payload)
        self.metrics.assigned(ref.name, "arrow", n_records)
        self.metrics.assigned_clusters(ref.name, ref.version, arrow_cluster_counts(payload))
        headers = {"X-Clustra-Model": ref.name, "X-Clustra-Version": str(ref.version)}
        return Response(payload, media_type=ARROW_STREAM_TYPE, headers=headers)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi_document(self, request: Request) -> JSONResponse:
        """The OpenAPI document (needs the token when the service has one)."""
        self._authorize(request)
        return JSONResponse(api.openapi())

    @api.get("/docs", include_in_schema=False)
    async def swagger_docs(self, request: Request) -> HTMLResponse:
        """Swagger UI over ``/openapi.json`` (needs the token when the service has one)."""
        self._authorize(request)
        return get_swagger_ui_html(openapi_url=f"{_root(request)}/openapi.json", title=f"{api.title} - docs")

    @api.get("/redoc", include_in_schema=False)
    async def redoc_docs(self, request: Request) -> HTMLResponse:
        """ReDoc over ``/openapi.json`` (needs the token when the service has one)."""
        self._authorize(request)
        return get_redoc_html(openapi_url=f"{_root(request)}/openapi.json", title=f"{api.title} - ReDoc")

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> dict[str, str]:
        """Liveness and readiness (never needs a token)."""
        return {"status": "ok"}

    @api.get("/metrics", response_class=Response, responses={200: prometheus_text(), **_errors()})
    async def prometheus_metrics(self, request: Request) -> Response:
        """Prometheus text exposition of this replica's counters."""
        self._authorize(request)
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    @api.get("/v1/models", responses={200: {"model": ModelList, "description": "every published model"}, **_errors()})
    async def list_models(self, request: Request) -> Response:
        """Every published model: latest version, version count, aliases, algorithm."""
        started, status = time.perf_counter(), 500
        try:
            self._authorize(request)
            models = await asyncio.to_thread(self.registry.list_models)
            status = 200
            return JSONResponse({"models": models})
        except ClustraError as exc:
            status = exc.http_status
            raise
        finally:
            self._observe("/v1/models", started, status)

    @api.get("/v1/models/{name}", responses={200: {"model": DescribeResponse, "description": "the chosen version"}, **_errors(404, 409, 422)})
    async def describe_model(self, name: str, request: Request, version: str | None = None, alias: str | None = None) -> Response:
        """Versions, aliases, and for the chosen version: input schema, clusters, metrics."""
        return await self._version_json(
            "/v1/models/{name}", request, name, version, alias, lambda ref: describe_version(self.registry, ref)
        )

    @api.get("/v1/models/{name}/insights", responses=_errors(404, 409, 422))
    async def model_insights(self, name: str, request: Request, version: str | None = None, alias: str | None = None) -> Response:
        """The chosen version's ``insights.json`` (docs/insights.md)."""
        return await self._version_json(
            "/v1/models/{name}/insights", request, name, version, alias,
            lambda ref: self.registry.insights(ref.name, ref.version),
        )


def build_application(args: dict[str, Any], overrides: dict[str, dict[str, Any]] | None = None) -> Application:
    """The bound application; ``overrides`` maps a deployment name to ``.options()`` (the config YAML's ``deployments``).

    The ``AssignmentModel`` deployment is part of it only with ``model_deployment: true``.
    """
    settings = ServeArgs(**(args or {}))
    plain = settings.model_dump(exclude_none=True, exclude_defaults=True)
    overrides = overrides or {}
    model = AssignmentModel.options(**overrides.get(MODEL_DEPLOYMENT, {})).bind(plain) if settings.model_deployment else None
    return AssignmentAPI.options(**overrides.get(INGRESS_DEPLOYMENT, {})).bind(model, plain)


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for ``serve run`` / ``serve deploy`` (import path ``serving.app:build_app``).

    Parameters
    ----------
    args : dict
        ``registry`` (path or fsspec URL), ``auth_token`` and ``model_deployment``; see :class:`ServeArgs`.
    """
    return build_application(args)
