"""Dask worker preload for the workers Clustra starts itself: import Clustra's heavy modules
in the background when a worker starts, and skip the interpreter teardown when it stops.

A worker of a cluster Clustra starts would otherwise import torch, faiss and scikit-learn
when its first task is unpickled (~2 s on a small machine), on the job's critical path.
Started from :func:`dask_setup`, the import runs while the driver reads the dataset and
imports the same modules itself; a task that arrives earlier waits on Python's import lock,
so nothing is imported twice. Failures are left to surface where the task imports them.

With torch and scikit-learn imported, a process spends ~0.7 s tearing down its modules
and libraries after its last line ran, and the driver's ``cluster.close()`` waits for each
worker's. Once a worker has closed cleanly (its tasks, data and spill directory are gone),
nothing in that teardown matters, so the worker ends at once (:func:`.quick_exit.exit_now`).
The handlers registered before the worker started are skipped with the teardown: Dask's
own only close driver-side clients and clusters. A worker also keeps the heartbeat error of
a scheduler that went away with its driver off the terminal (:class:`_QuietSchedulerLoss`).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import threading

from .quick_exit import exit_now

MODULES = ("cluster_core.training", "cluster_core.apply")


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the task's own import reports it
            return


def _exit_without_teardown(worker) -> None:
    """At interpreter exit, after a clean close: end the process without the module
    teardown. A worker that did not close cleanly exits the normal way. (Registered when the
    worker starts, so the exit handlers that libraries register when they are imported later
    run before this one.)"""
    from distributed.core import Status

    if worker.status == Status.closed:
        exit_now(0)


class _QuietSchedulerLoss(logging.Filter):
    """Drops the heartbeat error a worker logs when its scheduler is gone.

    The scheduler of a cluster Clustra starts lives in the driver process, so it goes away
    only when the driver closes the cluster (a finished or failed command) or ends; a
    heartbeat in flight at that moment logs a traceback on the terminal after the
    command's own one-line result. The worker then closes as it would anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to communicate with scheduler during heartbeat")


def dask_setup(worker) -> None:
    """Start the background import and return at once (the worker registers meanwhile)."""
    logging.getLogger("distributed.worker").addFilter(_QuietSchedulerLoss())
    atexit.register(_exit_without_teardown, worker)
    threading.Thread(target=_import_all, name="clustra-warmup", daemon=True).start()
