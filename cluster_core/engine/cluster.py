"""Where Dask work runs: an in-process LocalCluster (LocalCUDACluster with GPUs) or a scheduler address."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from .._compat import require
from ..device import Device, resolve_device
from ..errors import InvalidInputError

CONNECT_TIMEOUT_S = 20

# Dask's nannies export MALLOC_TRIM_THRESHOLD_=65536 to their workers (to return freed memory
# to the OS sooner). Setting it also freezes glibc's mmap threshold at 128 KiB, so every
# temporary above that size is a fresh mmap: page faults on each use. Measured in a worker:
# a (8192 x 16) @ (16 x 8) matmul 3.5x slower, a 512 KiB tensor subtraction 10x slower, a
# whole KMeans fit 3x slower than in a plain process. Workers Clustra starts itself keep
# glibc's adaptive defaults unless the user set the variable in the environment.
_USER_MALLOC_TRIM = os.environ.get("MALLOC_TRIM_THRESHOLD_")


def local_cluster(device: Device, n_workers: int | None = None, memory_limit: str | int = "auto") -> Any:
    """Start a LocalCluster (one single-threaded worker process per core, at most 8), or a
    LocalCUDACluster (one worker per GPU) on a GPU machine."""
    if device.is_gpu:
        dask_cuda = require("dask_cuda", "GPU Dask workers")
        return dask_cuda.LocalCUDACluster(dashboard_address=None, silence_logs=logging.ERROR)
    from distributed import LocalCluster

    workers = n_workers or max(1, min(8, os.cpu_count() or 1))
    with _adaptive_malloc():
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            preload=["cluster_core.engine.warmup"],
        )


@contextlib.contextmanager
def _adaptive_malloc() -> Iterator[None]:
    """Spawn workers without Dask's MALLOC_TRIM_THRESHOLD_ (see the note at the top), unless
    the user set it. A nanny copies its spawn variables into this process's environment,
    so a value left there by an earlier cluster is removed too."""
    import dask

    if _USER_MALLOC_TRIM is not None:
        yield
        return
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        yield


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    device: str | None = None,
    n_workers: int | None = None,
    memory_limit: str | int = "auto",
) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://HOST:PORT``) or to a new local cluster.

    The local cluster lives as long as the context; ``memory_limit`` is per worker
    (``"auto"``: the machine's memory split between workers).
    """
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise InvalidInputError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}", field="scheduler") from exc
        with client:
            yield client
        return
    cluster = local_cluster(resolve_device(device), n_workers, memory_limit)
    with cluster, Client(cluster) as client:
        yield client
