"""Typed serving settings, defaults documented once here; environment variables override.

Three groups:

* :class:`ServeArgs` -- the application builder's ``args`` (``serving.app:build_app``):
  where the registry is, the optional bearer token, and whether a model deployment
  assigns (else the ingress does). Fixed for the life of a deployment.
* :class:`IngressOptions` -- ``user_config`` of the ``AssignmentAPI`` deployment (body
  limits, how often the registry is re-read, batch limits when it assigns itself);
  changed live by ``serve deploy``.
* :class:`ModelOptions` -- ``user_config`` of the ``AssignmentModel`` deployment
  (``@serve.batch`` size and wait); changed live as well.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from cluster_core.registry import default_registry_url

AUTH_TOKEN_ENV = "CLUSTRA_AUTH_TOKEN"
MAX_MODELS_ENV = "CLUSTRA_MAX_MODELS_PER_REPLICA"
DEFAULT_MAX_MODELS_PER_REPLICA = 16
# how often Serve checks that a replica is alive: a dead replica is replaced within this (Ray's default is 10 s)
HEALTH_CHECK_PERIOD_S = 2.0


class ServeArgs(BaseModel):
    """Arguments of ``serving.app:build_app``.

    ``registry``: local path or fsspec URL (default: ``CLUSTRA_REGISTRY``, else
    ``~/.clustra/registry``). ``auth_token``: bearer token required on every route but
    ``/healthz`` (default: ``CLUSTRA_AUTH_TOKEN``; unset or empty = no auth). Prefer the
    environment variable: args end up in the Serve config in plain text.
    ``model_deployment``: assign in a separate, multiplexed and batched ``AssignmentModel``
    deployment (GPU replicas, or models spread over many replicas) instead of in the ingress
    replica itself (default: one hop, the lowest latency; docs/benchmarks.md). The Serve
    config's ``deployments`` must list ``AssignmentModel`` exactly when this is true.
    """

    model_config = ConfigDict(extra="forbid")

    registry: str | None = None
    auth_token: str | None = None
    model_deployment: bool = False

    def registry_url(self) -> str:
        """The registry location after the environment default is applied."""
        return self.registry or default_registry_url()

    def token(self) -> str | None:
        """The bearer token after the environment default is applied (None = auth off)."""
        return self.auth_token or os.environ.get(AUTH_TOKEN_ENV) or None


class IngressOptions(BaseModel):
    """``user_config`` of the ingress deployment."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(64 << 20, ge=1024, description="larger bodies get 413")
    max_records: int = Field(100_000, ge=1, description="more records in one request get 413")
    refresh_interval_s: float = Field(
        2.0, gt=0, description="how often versions and aliases are re-read from the registry"
    )
    replica_retry_timeout_s: float = Field(
        10.0, gt=0, description="how long a request whose model replica died waits for another replica before 503"
    )
    max_batch_size: int = Field(
        64, ge=1, description="JSON requests merged into one assignment call while the previous one runs (ingress assigning)"
    )
    bulk_max_batch_size: int = Field(
        8, ge=1, description="Arrow requests featurized together while the previous call runs (ingress assigning)"
    )


class ModelOptions(BaseModel):
    """``user_config`` of the model deployment (``@serve.batch`` settings of the JSON and Arrow paths)."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(64, ge=1, description="single requests merged into one assignment call")
    batch_wait_timeout_s: float = Field(0.002, ge=0, description="how long a batch waits to fill up")
    bulk_max_batch_size: int = Field(8, ge=1, description="Arrow requests featurized together (same schema)")
    bulk_batch_wait_timeout_s: float = Field(0.002, ge=0, description="how long a bulk batch waits to fill up")


def max_models_per_replica() -> int:
    """Models one replica keeps loaded (LRU): ``CLUSTRA_MAX_MODELS_PER_REPLICA``, default 16."""
    value = os.environ.get(MAX_MODELS_ENV, "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else DEFAULT_MAX_MODELS_PER_REPLICA

