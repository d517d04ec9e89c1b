"""The Ray Serve application: a FastAPI ingress deployment and a multiplexed, batched model deployment.

::

    HTTP ──► AssignmentAPI (FastAPI ingress)          AssignmentModel (N replicas)
             auth, body limits, JSON / Arrow decode ──► @serve.multiplexed: models by NAME/VERSION (LRU)
             registry view: request -> NAME/VERSION    @serve.batch: single requests merged per model
             /v1/models, /healthz, /metrics            featurize + assign (same code as `clustra apply`)

Import path for ``serve deploy`` / ``serve run``: ``serving.app:build_app`` (an application
builder taking the ``args`` of :class:`serving.settings.ServeArgs`). Replicas, autoscaling,
batching and ``ray_actor_options`` live in the Serve config YAML (see :mod:`serving.config`).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime.
import asyncio
import json
import logging
import os
import time
from collections import OrderedDict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from cluster_core import __version__
from cluster_core._compat import require
from cluster_core.errors import ClustraError, InvalidInputError
from cluster_core.http_contract import ErrorBody, check_bearer
from cluster_core.model import ClusteringModel
from cluster_core.registry import ModelRef, ModelRegistry

from .assign import ServedModel
from .catalog import describe_version
from .config import INGRESS_DEPLOYMENT, MODEL_DEPLOYMENT
from .errors import error_result, install_error_handlers, replica_error_response
from .metrics import ServingMetrics
from .records import ARROW_STREAM_TYPE, check_declared_length, is_arrow, parse_records, read_limited
from .resolver import RegistryView
from .settings import IngressOptions, ModelOptions, ServeArgs, max_models_per_replica

serve = require("ray.serve", "Clustra serving")
from ray.serve import Application  # noqa: E402
from ray.serve.handle import DeploymentHandle  # noqa: E402

_HANDLE_CACHE_SIZE = 1024
logger = logging.getLogger("ray.serve")
_ERROR_DESCRIPTIONS = {
    400: "the body is not JSON, or not an Arrow IPC stream when it says it is one",
    401: "missing or wrong bearer token (when the service has one)",
    404: "no such model, version or alias",
    409: "the published version cannot be read (a missing part, an unknown format, corrupt)",
    413: "a body or a record count above the configured limit",
    422: "a missing, unknown or mistyped column; a bad parameter",
}

api = FastAPI(
    title="Clustra assignment API",
    version=__version__,
    description="Which cluster is this record in? Models come from the Clustra registry.",
)
install_error_handlers(api)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses of a route (401 always): the shared ErrorBody."""
    return {code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in (401, *codes)}


@serve.deployment(name=MODEL_DEPLOYMENT, ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256)
class AssignmentModel:
    """Loads published versions on demand (LRU per replica) and assigns batches of records."""

    def __init__(self, args: dict[str, Any]) -> None:
        import torch
        from threadpoolctl import threadpool_limits

        # one math thread per replica core (Ray sets OMP_NUM_THREADS from num_cpus): on small
        # batches, oversubscribed torch/BLAS threads cost 10-50x
        threads = max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))
        torch.set_num_threads(threads)
        threadpool_limits(threads)
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
    async def get_model(self, key: str) -> ServedModel:
        """The model ``NAME/VERSION`` (loaded from the registry on first use)."""
        name, _, version = key.rpartition("/")
        ref = ModelRef(name, int(version))
        model = await asyncio.to_thread(lambda: ClusteringModel.load(self.registry.local_dir(ref.name, ref.version)))
        return ServedModel(model, ref)

    async def _current_model(self) -> ServedModel:
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


@serve.deployment(name=INGRESS_DEPLOYMENT, ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=512)
@serve.ingress(api)
class AssignmentAPI:
    """HTTP edge: authentication, limits, decoding, version resolution, metrics."""

    def __init__(self, model: DeploymentHandle, args: dict[str, Any]) -> None:
        settings = ServeArgs(**args)
        self.registry = ModelRegistry(settings.registry_url())
        self.token = settings.token()
        self.options = IngressOptions()
        self.view = RegistryView(self.registry, self.options.refresh_interval_s)
        self.metrics = ServingMetrics()
        self.model = model
        self._handles: OrderedDict[str, DeploymentHandle] = OrderedDict()
        self._refreshing: asyncio.Task | None = None

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply ``user_config`` (limits, registry refresh interval) without a restart."""
        self.options = IngressOptions(**(config or {}))
        self.view.refresh_interval_s = self.options.refresh_interval_s

    # -- helpers --------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        check_bearer(request.headers.get("authorization"), self.token)

    async def _resolve(self, name: str, version: str | None, alias: str | None) -> ModelRef:
        if self.view.due() and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(asyncio.to_thread(self._refresh_view))
            if not self.view.models():  # first request: wait for the view
                await self._refreshing
        ref = self.view.lookup(name, version, alias)
        if ref is None:
            await asyncio.to_thread(self.view.refresh_model, name)
            ref = self.view.lookup(name, version, alias)
        if ref is None:
            raise self.view.not_found(name, version, alias)
        return ref

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

    def _observe(self, route: str, started: float, status: int) -> None:
        self.metrics.observe(route, status, time.perf_counter() - started)

    # -- routes ---------------------------------------------------------------------------
    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """Liveness and readiness (never needs a token)."""
        return {"status": "ok"}

    @api.get("/metrics", responses=_errors())
    async def prometheus_metrics(self, request: Request) -> Response:
        """Prometheus text exposition of this replica's counters."""
        self._authorize(request)
        body, content_type = self.metrics.exposition()
        return Response(body, media_type=content_type)

    @api.get("/v1/models", responses=_errors())
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

    @api.get("/v1/models/{name}", responses=_errors(404, 409, 422))
    async def describe_model(self, name: str, request: Request, version: str | None = None, alias: str | None = None) -> Response:
        """Versions, aliases, and for the chosen version: input schema, clusters, metrics."""
        started, status = time.perf_counter(), 500
        try:
            self._authorize(request)
            ref = await self._resolve(name, version, alias)
            payload = await asyncio.to_thread(describe_version, self.registry, ref)
            status = 200
            return JSONResponse(payload)
        except ClustraError as exc:
            status = exc.http_status
            raise
        finally:
            self._observe("/v1/models/{name}", started, status)

    @api.get("/v1/models/{name}/insights", responses=_errors(404, 409, 422))
    async def model_insights(self, name: str, request: Request, version: str | None = None, alias: str | None = None) -> Response:
        """The chosen version's ``insights.json`` (docs/insights.md)."""
        started, status = time.perf_counter(), 500
        try:
            self._authorize(request)
            ref = await self._resolve(name, version, alias)
            payload = await asyncio.to_thread(self.registry.insights, ref.name, ref.version)
            status = 200
            return JSONResponse(payload)
        except ClustraError as exc:
            status = exc.http_status
            raise
        finally:
            self._observe("/v1/models/{name}/insights", started, status)

    @api.post("/v1/models/{name}/assign", responses=_errors(400, 404, 409, 413, 422))
    async def assign(
        self, name: str, request: Request, version: str | None = None, alias: str | None = None, explain: bool = False
    ) -> Response:
        """JSON ``{"records": [...]}`` or an Arrow IPC stream in; assignments in request order out.
        ``explain=true`` (JSON only) adds ``runner_up``, ``margin`` and ``explanation`` to each."""
        started, status = time.perf_counter(), 500
        try:
            self._authorize(request)
            ref = await self._resolve(name, version, alias)
            body = await self._body(request)
            if is_arrow(request.headers.get("content-type")):
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
            self._observe("/v1/models/{name}/assign", started, status)

    async def _assign_json(self, ref: ModelRef, body: bytes, explain: bool = False) -> Response:
        records = parse_records(body, self.options.max_records)
        method = self._handle(ref).explain_records if explain else self._handle(ref).assign_records
        code, payload, n_records = (await method.remote(records)) if records else (200, b"[]", 0)
        if code != 200:
            return replica_error_response(code, payload)
        self.metrics.assigned(ref.name, "json", n_records)
        head = {"model": ref.name, "version": ref.version}
        if ref.alias:
            head["alias"] = ref.alias
        content = json.dumps(head)[:-1].encode() + b', "assignments": ' + payload + b"}"
        return Response(content, media_type="application/json")

    async def _assign_arrow(self, ref: ModelRef, body: bytes) -> Response:
        code, payload, n_records = await self._handle(ref).assign_arrow.remote(body)
        if code != 200:
            return replica_error_response(code, payload)
        self.metrics.assigned(ref.name, "arrow", n_records)
        headers = {"X-Clustra-Model": ref.name, "X-Clustra-Version": str(ref.version)}
        return Response(payload, media_type=ARROW_STREAM_TYPE, headers=headers)


def build_application(args: dict[str, Any], overrides: dict[str, dict[str, Any]] | None = None) -> Application:
    """The bound application; ``overrides`` maps a deployment name to ``.options()`` (the config YAML's ``deployments``)."""
    settings = ServeArgs(**(args or {}))
    plain = settings.model_dump(exclude_none=True)
    overrides = overrides or {}
    model = AssignmentModel.options(**overrides.get(MODEL_DEPLOYMENT, {})).bind(plain)
    return AssignmentAPI.options(**overrides.get(INGRESS_DEPLOYMENT, {})).bind(model, plain)


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for ``serve run`` / ``serve deploy`` (import path ``serving.app:build_app``).

    Parameters
    ----------
    args : dict
        ``registry`` (path or fsspec URL) and ``auth_token``; see :class:`ServeArgs`.
    """
    return build_application(args)
