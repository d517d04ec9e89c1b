"""Where the work runs: no cluster (Dask's threads in this process), an embedded
LocalCluster, or an existing Dask scheduler.

``cluster`` settings understood everywhere (CLI ``--scheduler``, the Python API, job
specs through the jobs service's own client):

* a ``distributed.Client`` — used as it is (the jobs runner's per-job client);
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
INPROCESS = "inprocess"
LOCAL = "local"


def scheduler_address(explicit: str | None = None) -> str | None:
    """``explicit`` when given, else ``CLUSTRA_DASK_SCHEDULER`` when set, else None."""
    return explicit or os.environ.get(SCHEDULER_ENV) or None


def describe_cluster(cluster: Any) -> str:
    """Words for the progress line that starts the engine."""
    if cluster is None or cluster == INPROCESS:
        return "running in this process (no Dask cluster)"
    if cluster == LOCAL:
        return "starting Dask"
    if isinstance(cluster, str):
        return f"connecting to {cluster}"
    return "using the given Dask client"


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
        yield None
        return
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
    "CONNECT_TIMEOUT_S", "INPROCESS", "LOCAL", "SCHEDULER_ENV", "dask_client", "describe_cluster", "local_cluster",
    "open_engine", "scheduler_address",
]
