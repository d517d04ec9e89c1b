"""Where the work runs: no cluster (Dask's threads in this process), an embedded
LocalCluster, or an existing Dask scheduler.

``cluster`` settings understood everywhere (CLI ``--scheduler``, the Python API, job
specs through the jobs service's own client):

* a ``distributed.Client`` — used as it is (the jobs runner's per-job client);
* ``"auto"`` (the CLI's default) — ``"inprocess"`` when the data fits comfortably in this
  process's memory (:func:`resolve_engine`), else ``"local"``;
* ``"inprocess"`` — no cluster: Dask's threaded scheduler in this process;
* ``"local"`` — a LocalCluster started for the work and closed after it;
* ``"tcp://HOST:PORT"`` (any scheduler address) — connect to an existing cluster.

``CLUSTRA_DASK_SCHEDULER`` names a scheduler for every command that starts work when no
explicit address is given.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidInputError
from .cluster import CONNECT_TIMEOUT_S, dask_client, local_cluster

SCHEDULER_ENV = "CLUSTRA_DASK_SCHEDULER"
AUTO = "auto"
INPROCESS = "inprocess"
LOCAL = "local"
# "auto" trains in this process up to this much decoded data (and an eighth of the RAM):
# below it, starting worker processes and moving the data to them costs more than it saves.
IN_PROCESS_MAX_BYTES = 1 << 30


def scheduler_address(explicit: str | None = None) -> str | None:
    """``explicit`` when given, else ``CLUSTRA_DASK_SCHEDULER`` when set, else None."""
    return explicit or os.environ.get(SCHEDULER_ENV) or None


def resolve_engine(cluster: Any, nbytes: int) -> Any:
    """The engine ``"auto"`` stands for, given the data's decoded size ``nbytes``: in this
    process when it is at most :data:`IN_PROCESS_MAX_BYTES` and an eighth of the machine's
    memory, else a LocalCluster. Any other setting is returned as it is."""
    if not (isinstance(cluster, str) and cluster == AUTO):
        return cluster
    import psutil

    return INPROCESS if nbytes <= min(IN_PROCESS_MAX_BYTES, psutil.virtual_memory().total // 8) else LOCAL


def describe_cluster(cluster: Any) -> str:
    """Words for the progress line that starts the engine."""
    if cluster is None or cluster == INPROCESS:
        return "running in this process (no Dask cluster)"
    if cluster == LOCAL:
        return "starting Dask"
    if isinstance(cluster, str):
        return f"connecting to {cluster}"
    return "using the given Dask client"


def describe_choice(setting: Any, engine: Any, nbytes: int) -> str:
    """:func:`describe_cluster` of ``engine``, with the reason when ``"auto"`` chose it."""
    words = describe_cluster(engine)
    if isinstance(setting, str) and setting == AUTO:
        size = format_bytes(nbytes)
        if engine == INPROCESS:
            words += f" — auto: {size} of data fits in this process; --scheduler local starts a cluster"
        else:
            words += f" — auto: {size} of data is more than one process should hold"
    return words


def format_bytes(nbytes: int) -> str:
    """``nbytes`` in KiB, MiB or GiB, with a decimal below 10."""
    value, unit = float(nbytes), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:,.0f} {unit}" if unit == "bytes" or value >= 10 else f"{value:.1f} {unit}"


@contextlib.contextmanager
def _threads_without_distributed() -> Iterator[None]:
    """Dask's threaded scheduler for the work, named as a callable while ``distributed`` is not imported.

    Without a scheduler set, Dask's first compute imports ``distributed`` to look for a client
    (~0.1 s, a tenth of a small in-process train's imports). Where it is not imported no client
    can exist in this process, so the threaded scheduler is what Dask would choose anyway; a
    process that has imported it (the jobs service, a notebook with a client) keeps Dask's own
    choice.
    """
    import sys

    if "distributed" in sys.modules:
        yield
        return
    import dask
    import dask.threaded

    with dask.config.set(scheduler=dask.threaded.get):
        yield


@contextlib.contextmanager
def open_engine(cluster: Any = LOCAL, *, device: str | None = None) -> Iterator[Any]:
    """The Dask client to run on, or None for Dask's threads in this process.

    Parameters
    ----------
    cluster : distributed.Client, "inprocess", "local", None or a scheduler address
        See the module docstring; None is ``"inprocess"``.
    device : {"auto", "cpu", "cuda"}, optional
        Picks a LocalCUDACluster for ``"local"`` on a GPU machine.
    """
    if cluster is None or cluster == INPROCESS:
        with _threads_without_distributed():
            yield None
        return
    if isinstance(cluster, str) and cluster == AUTO:  # size unknown here: the safe choice
        cluster = LOCAL
    if not isinstance(cluster, str):
        yield cluster
        return
    if cluster != LOCAL and "://" not in cluster:
        raise InvalidInputError(
            f"{cluster!r} is not a Dask scheduler address; expected tcp://HOST:PORT, 'local' or 'inprocess'",
            field="scheduler",
        )
    with dask_client(None if cluster == LOCAL else cluster, device=device) as client:
        yield client


__all__ = [
    "AUTO", "CONNECT_TIMEOUT_S", "INPROCESS", "IN_PROCESS_MAX_BYTES", "LOCAL", "SCHEDULER_ENV", "dask_client", "describe_choice", "describe_cluster", "format_bytes",
    "local_cluster",
    "open_engine", "resolve_engine", "scheduler_address",
]
