"""Where Dask work runs: an in-process LocalCluster (LocalCUDACluster with GPUs) or a scheduler address."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path
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
            # The scheduler's HTTP server (health, metrics) starts even without a dashboard,
            # on 8787 unless told otherwise: a taken port printed a warning on every run.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
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
def _workers_ignore_interrupts() -> Iterator[None]:
    """Worker processes started inside this context ignore SIGINT from their first instruction.

    Ctrl-C in a terminal reaches the whole process group: the driver turns it into a clean
    "interrupted" and closes its cluster, but each worker (and the process a nanny spawns)
    printed its own KeyboardInterrupt traceback first — on start-up, while importing, or
    while running a task. A worker must instead stop when its driver tells it to, so the
    interpreter multiprocessing spawns for workers is a two-line launcher that sets SIGINT
    to ignored before ``exec``-ing Python (an ignored signal stays ignored across ``exec``,
    and Python then installs no handler of its own). Kept for the cluster's whole life, as
    a nanny restarts workers with it. POSIX only; elsewhere nothing changes.
    """
    import multiprocessing.spawn as spawn

    if os.name != "posix" or not os.path.exists("/bin/sh"):
        yield
        return
    python = spawn.get_executable()
    with tempfile.TemporaryDirectory(prefix="clustra-workers-") as folder:
        launcher = Path(folder) / "python"
        launcher.write_text(f"#!/bin/sh\ntrap '' INT\nexec {shlex.quote(os.fsdecode(python))} \"$@\"\n")
        launcher.chmod(0o700)
        spawn.set_executable(str(launcher))
        try:
            yield
        finally:
            spawn.set_executable(python)


def _start_quietly(start) -> Any:
    """``start()`` a cluster; interrupted half-way, close what was started without a word.

    A KeyboardInterrupt while workers start leaves a cluster object the caller never got:
    Dask's exit handler then closes it and fails on workers still starting, printing a
    traceback after "interrupted". Such a cluster is closed here, its errors swallowed, and
    marked closed so that the exit handler leaves it alone.
    """
    from distributed.core import Status
    from distributed.deploy.spec import SpecCluster

    before = set(SpecCluster._instances)
    try:
        return start()
    except BaseException:
        for half_started in set(SpecCluster._instances) - before:
            with contextlib.suppress(Exception):
                half_started.close(timeout=5)
            half_started.status = Status.closed
        raise


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
    with _workers_ignore_interrupts():
        cluster = _start_quietly(lambda: local_cluster(resolve_device(device), n_workers, memory_limit))
        with cluster, Client(cluster) as client:
            yield client
