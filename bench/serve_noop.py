"""No-op Ray Serve applications: the framework's ceiling for bench/serve_load.py.

``build_noop_app`` has the same shape and settings as the Clustra app (FastAPI ingress ->
multiplexed, batched downstream deployment) but neither parses records nor assigns;
``build_noop_single_app`` is one FastAPI deployment answering a constant (one hop less).
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

ANSWER = b'{"model": "noop", "version": 1, "assignments": [{"cluster_id": 0, "cluster_name": null, "is_noise": false}]}'

noop_api = FastAPI()
single_api = FastAPI()


@serve.deployment(name="NoopModel")
class NoopModel:
    """Multiplexed and batched like AssignmentModel; returns a constant per request."""

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.assign_records.set_max_batch_size(int((config or {}).get("max_batch_size", 64)))
        self.assign_records.set_batch_wait_timeout_s(float((config or {}).get("batch_wait_timeout_s", 0.002)))

    @serve.multiplexed(max_num_models_per_replica=16)
    async def get_model(self, key: str) -> str:
        return key

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def assign_records(self, requests: list[bytes]) -> list[tuple[int, bytes, int]]:
        await self.get_model(serve.get_multiplexed_model_id())
        return [(200, b"[]", 1)] * len(requests)


@serve.deployment(name="NoopAPI")
@serve.ingress(noop_api)
class NoopAPI:
    """Reads the body and forwards it, like AssignmentAPI without auth, parsing or metrics."""

    def __init__(self, model: DeploymentHandle) -> None:
        self.model = model.options(multiplexed_model_id="noop/1")

    def reconfigure(self, config: dict[str, Any]) -> None:
        pass

    @noop_api.post("/v1/models/{name}/assign")
    async def assign(self, name: str, request: Request) -> Response:
        body = await request.body()
        await self.model.assign_records.remote(body)
        return Response(ANSWER, media_type="application/json")


@serve.deployment(name="NoopSingle")
@serve.ingress(single_api)
class NoopSingle:
    """One deployment, no downstream call."""

    def reconfigure(self, config: dict[str, Any]) -> None:
        pass

    @single_api.post("/v1/models/{name}/assign")
    async def assign(self, name: str, request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")


def build_noop_app(overrides: dict[str, dict[str, Any]]) -> Application:
    model = NoopModel.options(**overrides.get("AssignmentModel", {})).bind()
    return NoopAPI.options(**overrides.get("AssignmentAPI", {})).bind(model)


def build_noop_single_app(overrides: dict[str, dict[str, Any]]) -> Application:
    return NoopSingle.options(**overrides.get("AssignmentAPI", {})).bind()
