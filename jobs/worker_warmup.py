"""Dask worker preload: import Clustra's heavy modules in the background when a worker starts.

A worker of a cluster Clustra starts would otherwise import torch, faiss and scikit-learn
when its first task is unpickled (~2 s on a small machine), on the job's critical path.
Started from :func:`dask_setup`, the import runs while the driver reads the dataset and
imports the same modules itself; a task that arrives earlier waits on Python's import lock,
so nothing is imported twice. Failures are left to surface where the task imports them.
"""

from __future__ import annotations

import importlib
import threading

MODULES = ("cluster_core.training", "cluster_core.apply")


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the task's own import reports it
            return


def dask_setup(worker) -> None:  # noqa: ARG001 - the signature Dask's preload calls
    """Start the background import and return at once (the worker registers meanwhile)."""
    threading.Thread(target=_import_all, name="clustra-warmup", daemon=True).start()
