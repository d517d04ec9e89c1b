"""How much memory one partition may take on a Dask worker, from the workers' memory limit.

A Dask worker stops starting tasks ("paused") once its process memory passes
``distributed.worker.memory.pause`` (80 % of its ``memory_limit`` by default) and starts again
only when spilling to disk brings it back down. Memory that is not Dask data — the imported
libraries, and a running task's temporaries — cannot be spilled: a worker whose partitions
and their copies do not fit under the pause threshold pauses with nothing to spill, and a
job waiting on it waits forever. So a partition is sized before any work starts:

    budget = (pause fraction x memory limit - memory the worker already uses) / PARTITION_COPIES

*Memory the worker already uses* is the largest process memory, less the Dask data it holds,
among the workers, and at least :data:`WORKER_BASELINE_BYTES`: measured on a worker of
Clustra's LocalCluster, ~210 MiB once the libraries are imported, 430-460 MiB once it has
featurized partitions and fitted a model (torch's and BLAS's thread pools and caches stay). *PARTITION_COPIES* is how many times a
streaming task holds its partition's decoded size at its peak: the Arrow table being
decoded, the pandas partition, its float32 features and their train/validation copies
(four, for numeric data; text and categories decode larger, which the decoded-size
estimate of :func:`cluster_core.data.fit_partitions` accounts for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PARTITION_COPIES = 4
WORKER_BASELINE_BYTES = 448 << 20
PAUSE_CONFIG = "distributed.worker.memory.pause"


@dataclass(frozen=True)
class WorkerMemory:
    """The memory of the smallest Dask worker of a cluster.

    Attributes
    ----------
    limit : int
        The smallest ``memory_limit`` among the workers, in bytes.
    pause_fraction : float
        ``distributed.worker.memory.pause`` (1.0 when pausing is off).
    in_use : int
        Process memory a worker holds outside Dask's data, in bytes: the most any worker
        holds now, and at least :data:`WORKER_BASELINE_BYTES`.
    """

    limit: int
    pause_fraction: float
    in_use: int

    @property
    def pause_bytes(self) -> int:
        """Process memory at which a worker pauses."""
        return int(self.limit * self.pause_fraction)

    @property
    def partition_budget(self) -> int:
        """The most decoded bytes one partition may hold (0 when the libraries alone reach the pause threshold)."""
        return max(0, (self.pause_bytes - self.in_use) // PARTITION_COPIES)

    def explain_budget(self) -> str:
        """How :attr:`partition_budget` was computed, in words."""
        from . import format_bytes

        return (f"({self.pause_fraction:.0%} pause threshold x {format_bytes(self.limit)} limit - "
                f"{format_bytes(self.in_use)} for libraries and fits) / {PARTITION_COPIES} copies a task holds")


def pause_fraction() -> float:
    """``distributed.worker.memory.pause`` from this process's Dask configuration (1.0 when False)."""
    import dask

    value = dask.config.get(PAUSE_CONFIG, 0.8)
    return float(value) if value else 1.0


def worker_memory(client: Any) -> WorkerMemory | None:
    """The memory of ``client``'s smallest worker, from ``client.scheduler_info()``; None without
    a client, without workers, or when a worker has no memory limit.

    The pause fraction is this process's Dask setting: workers Clustra starts inherit it;
    workers of a ``tcp://`` cluster are assumed to use the same (Dask's default, 80 %).
    """
    if client is None:
        return None
    workers = list(client.scheduler_info()["workers"].values())
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    if not limits or not all(limits):
        return None
    in_use = WORKER_BASELINE_BYTES
    for worker in workers:
        metrics = worker.get("metrics") or {}
        unmanaged = int(metrics.get("memory") or 0) - int(metrics.get("managed_bytes") or 0)
        in_use = max(in_use, unmanaged)
    return WorkerMemory(limit=min(limits), pause_fraction=pause_fraction(), in_use=in_use)


__all__ = ["PARTITION_COPIES", "WORKER_BASELINE_BYTES", "WorkerMemory", "pause_fraction", "worker_memory"]
