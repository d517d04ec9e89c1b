"""Settings of the jobs service (``clustra api``), documented once here.

Command-line flags set them; environment variables fill what a flag leaves unset
(``CLUSTRA_AUTH_TOKEN``, ``CLUSTRA_JOBS_STORE``, ``CLUSTRA_OUTPUT_ROOT``,
``CLUSTRA_DASK_SCHEDULER``, ``CLUSTRA_REGISTRY``).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cluster_core.registry import REGISTRY_ENV, default_registry_url
from cluster_core.validation import validated

from .store import DEFAULT_STORE

ENV_TOKEN = "CLUSTRA_AUTH_TOKEN"
ENV_STORE = "CLUSTRA_JOBS_STORE"
ENV_OUTPUT_ROOT = "CLUSTRA_OUTPUT_ROOT"
ENV_SCHEDULER = "CLUSTRA_DASK_SCHEDULER"
DEFAULT_PORT = 8080
MiB = 1 << 20


class ServiceSettings(BaseModel):
    """How the jobs service runs.

    ``data_roots``: where specs may read data and models (default: the current
    directory). ``model_roots``: where specs may read model weights (no default: without
    one, a spec naming ``text_model`` or ``image_model`` is refused). ``output_root``: where job outputs go (default: ``outputs/`` next to the
    store); it is readable and writable by jobs. ``scheduler``: a Dask scheduler address
    (default: an embedded LocalCluster of ``workers`` processes).
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    store: str = Field(DEFAULT_STORE, description="SQLite job store file")
    data_roots: list[str] = Field(default_factory=list)
    model_roots: list[str] = Field(default_factory=list, description="where specs may read model weights "
                                   "(text_model, image_model); none: specs naming weights are refused")
    output_root: str | None = None
    scheduler: str | None = None
    workers: int | None = Field(None, ge=1, description="processes of the embedded LocalCluster (default: cores, at most 8)")
    memory_limit: str = Field("auto", description="per embedded worker, e.g. 4GiB")
    device: str | None = Field(None, pattern="^(auto|cpu|cuda)$")
    max_concurrent_jobs: int = Field(2, ge=1, description="jobs running at once; the rest wait queued")
    max_queued_jobs: int = Field(1000, ge=1, description="queued jobs beyond which submissions get 429")
    max_request_bytes: int = Field(1 * MiB, ge=1024, description="largest request body accepted (413 above)")
    auth_token: str | None = Field(None, description="bearer token required on /v1 (None: no auth)")
    worker_wait_s: float = Field(300.0, gt=0, description="fail running jobs after this long with no Dask worker")
    resume: bool = Field(False, description="queue again the jobs a dead process left running (default: interrupted)")
    registry: str | None = Field(None, description="model registry that train specs with 'publish' write to "
                                 "(path or fsspec URL; default: CLUSTRA_REGISTRY, else ~/.clustra/registry)")

    @field_validator("auth_token")
    @classmethod
    def _token_not_blank(cls, value: str | None) -> str | None:
        return value if value else None

    @classmethod
    def from_env(cls, **values) -> ServiceSettings:
        """Settings from explicit values, the environment filling those left as None."""
        env_defaults = {
            "auth_token": os.environ.get(ENV_TOKEN),
            "store": os.environ.get(ENV_STORE),
            "output_root": os.environ.get(ENV_OUTPUT_ROOT),
            "scheduler": os.environ.get(ENV_SCHEDULER),
            "registry": os.environ.get(REGISTRY_ENV),
        }
        for name, value in env_defaults.items():
            if values.get(name) is None and value:
                values[name] = value
        return validated(cls, {k: v for k, v in values.items() if v is not None})

    @property
    def store_path(self) -> Path:
        """The store file, ``~`` expanded."""
        return Path(os.path.abspath(os.path.expanduser(self.store)))

    def resolved_data_roots(self) -> list[str]:
        """The data roots, the current directory when none is configured."""
        return list(self.data_roots) or [os.getcwd()]

    def resolved_output_root(self) -> str:
        """The output root (default: ``outputs/`` beside the store file)."""
        return self.output_root or str(self.store_path.parent / "outputs")

    def resolved_registry(self) -> str:
        """The model registry jobs publish to: ``registry``, else ``CLUSTRA_REGISTRY``, else ``~/.clustra/registry``."""
        return self.registry or default_registry_url()

    def protected_paths(self) -> list[str]:
        """Paths no job may write over, into or around: the store file and its side files
        (``-wal``, ``-shm``, ``.lock``) and the local model registry (``registry`` / ``CLUSTRA_REGISTRY``)."""
        store = str(self.store_path)
        paths = [store, f"{store}-wal", f"{store}-shm", f"{store}-journal", f"{store}.lock"]
        registry = self.resolved_registry()
        if "://" not in registry or registry.startswith("file://"):
            paths.append(os.path.abspath(os.path.expanduser(registry.removeprefix("file://"))))
        return paths


__all__ = ["ENV_OUTPUT_ROOT", "ENV_SCHEDULER", "ENV_STORE", "ENV_TOKEN", "ServiceSettings"]
