"""Stop a job whose Dask workers are all paused for memory, instead of waiting forever.

A Dask worker pauses (stops starting tasks and fetching data) when its process memory
passes ``distributed.worker.memory.pause`` and resumes once spilling brings it back under.
When what fills it cannot be spilled (libraries, a leak, a task's temporaries left behind),
it never resumes; when every worker is in that state the work waits forever with idle CPUs.

:func:`memory_watchdog` watches the cluster from a thread of the driver while the work runs,
through ``client.scheduler_info()`` (each worker's ``status`` and ``metrics``). The job is
*stalled* when, for :data:`STALL_SECONDS` in a row (``CLUSTRA_MEMORY_STALL_S``):

* a worker's status is ``paused`` (all of them, or some holding the work the others wait for);
* no worker is executing a task;
* the client is waiting on results (it holds pending futures);
* nothing moves: no worker's task counts, Dask data or spilled bytes change.

After :data:`TRIM_AFTER_SECONDS` of that, the workers are asked once to hand the memory
their processes freed back to the OS (:func:`trim_memory`): memory a finished task freed
but the allocator kept counts against the pause threshold too, and once returned the
workers resume on their own. If the stall lasts, the watchdog closes the client (the scheduler releases every task of the job and the
waiting calls return) and the work ends with a :class:`~cluster_core.errors.MemoryLimitError`
naming the memory limit, the memory the workers hold and the partition size.

Work Dask gave up on because its workers kept dying (``distributed.KilledWorker``: a nanny
restarts a worker above ``distributed.worker.memory.terminate``, 95 %) ends with a
:class:`~cluster_core.errors.MemoryLimitError` too, instead of an internal error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidInputError, MemoryLimitError

STALL_ENV = "CLUSTRA_MEMORY_STALL_S"
STALL_SECONDS = 60.0
POLL_SECONDS = 1.0
TRIM_AFTER_SECONDS = 5.0
RUNNING_STATES = ("executing", "long-running")

log = logging.getLogger("clustra.engine")


def stall_seconds() -> float:
    """:data:`STALL_SECONDS`, or ``CLUSTRA_MEMORY_STALL_S`` when set to a positive number."""
    value = os.environ.get(STALL_ENV)
    if not value:
        return STALL_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidInputError(f"{STALL_ENV}={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise InvalidInputError(f"{STALL_ENV}={value!r} must be a positive number of seconds")
    return seconds


class MemoryWatchdog:
    """The thread behind :func:`memory_watchdog`.

    Parameters
    ----------
    client : distributed.Client
    stall_s : float
        How long the cluster may stay stalled (see the module docstring).
    poll_s : float
        How often it is looked at.

    Attributes
    ----------
    partition_bytes : int or None
        Estimated decoded size of the largest partition, named in the error when known.
    error : MemoryLimitError or None
        Set once the job was stopped.
    """

    def __init__(self, client: Any, stall_s: float, poll_s: float = POLL_SECONDS) -> None:
        self.client = client
        self.stall_s = stall_s
        self.poll_s = poll_s
        self.partition_bytes: int | None = None
        self.error: MemoryLimitError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="clustra-memory-watchdog", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (waits for the thread)."""
        self._stop.set()
        self._thread.join(timeout=max(5.0, 2 * self.poll_s))

    def _watch(self) -> None:
        since: float | None = None
        last: Any = None
        trimmed = False
        while not self._stop.wait(self.poll_s):
            try:
                workers = self._stalled_workers()
            except Exception as exc:  # noqa: BLE001 - a closed client: nothing left to watch; else try again
                if getattr(self.client, "status", "closed") in ("closed", "closing"):
                    return
                log.debug("memory watchdog could not look at the cluster: %s", exc)
                continue
            if workers is None:
                since, last = None, None
                continue
            signature = _signature(workers)
            now = time.monotonic()
            if since is None or signature != last:
                since, last, trimmed = now, signature, False
            elif not trimmed and now - since >= min(TRIM_AFTER_SECONDS, self.stall_s / 2):
                trimmed = True  # first hand back what the processes freed but still hold
                with contextlib.suppress(Exception):
                    self.client.run(trim_memory)
            elif now - since >= self.stall_s:
                self.error = MemoryLimitError(self._describe(workers, now - since))
                log.warning("%s", self.error)
                with contextlib.suppress(Exception):
                    self.client.close(timeout=30)
                return

    def _stalled_workers(self) -> list[dict] | None:
        """The workers, when one is paused, none runs a task and the client waits; else None.

        Not only all paused: a task left ready on a paused worker waits there as long while
        the other workers sit idle (seen: the second model of a sweep, on 768 MiB workers)."""
        workers = list(self.client.scheduler_info()["workers"].values())
        if not any(w.get("status") == "paused" for w in workers):
            return None
        if any(_task_counts(w).get(state) for w in workers for state in RUNNING_STATES):
            return None
        if not any(state.status == "pending" for state in list(self.client.futures.values())):
            return None
        return workers

    def describe_killed(self, exc: BaseException) -> str:
        """The message for work Dask gave up on because its workers kept dying (``KilledWorker``):
        a nanny restarts a worker whose memory passes ``distributed.worker.memory.terminate``."""
        from . import format_bytes

        limits = []
        with contextlib.suppress(Exception):
            limits = [int(w.get("memory_limit") or 0) for w in self.client.scheduler_info()["workers"].values()]
        limit = f"{format_bytes(min(limits))} memory limit" if limits and all(limits) else "memory limit"
        partition = (f"partitions of up to {format_bytes(self.partition_bytes)} decoded"
                     if self.partition_bytes else "its partitions")
        task = getattr(exc, "task", None) or "a task"
        return (f"Dask workers died running {task} until Dask gave up (distributed.scheduler.allowed-failures); "
                f"most often a worker's memory passed {_terminate_fraction():.0%} of its {limit} and its nanny "
                f"restarted it: the job (with {partition}) does not fit: give each worker more memory "
                "(memory_limit, e.g. --memory-limit) or use smaller partitions (smaller Parquet row groups)")

    def _describe(self, workers: list[dict], seconds: float) -> str:
        from . import format_bytes
        from .memory import pause_fraction

        limit = min(int(w.get("memory_limit") or 0) for w in workers)
        paused = [w for w in workers if w.get("status") == "paused"] or workers
        used = max(int((w.get("metrics") or {}).get("memory") or 0) for w in paused)
        partition = (f"partitions of up to {format_bytes(self.partition_bytes)} decoded"
                     if self.partition_bytes else "its partitions")
        return (f"Dask workers were paused for memory for {seconds:.0f}s with no task running anywhere: "
                f"{format_bytes(used)} in use of a {format_bytes(limit)} memory limit per worker, over the "
                f"{pause_fraction():.0%} pause threshold, with nothing left to spill; the job (with {partition}) "
                "does not fit: give each worker more memory (memory_limit, e.g. --memory-limit) or use smaller "
                "partitions (smaller Parquet row groups)")


def _is_killed_worker(exc: BaseException) -> bool:
    from distributed import KilledWorker

    return isinstance(exc, KilledWorker)


def trim_memory() -> int:
    """On a worker: return the memory freed by Python and the libraries but kept by glibc's
    allocator to the OS (``malloc_trim(0)``, Dask's documented remedy for "memory not released
    back to the OS"); 0 where there is no glibc."""
    import ctypes

    try:
        return int(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return 0


def _terminate_fraction() -> float:
    import dask

    value = dask.config.get("distributed.worker.memory.terminate", 0.95)
    return float(value) if value else 1.0


def _task_counts(worker: dict) -> dict:
    return dict((worker.get("metrics") or {}).get("task_counts") or {})


def _signature(workers: list[dict]) -> tuple:
    """What changes when any work moves: task counts, Dask data held and spilled."""
    rows = []
    for worker in workers:
        metrics = worker.get("metrics") or {}
        spilled = (metrics.get("spilled_bytes") or {}).get("disk", 0)
        rows.append((tuple(sorted(_task_counts(worker).items())), metrics.get("managed_bytes"), spilled))
    return tuple(sorted(rows))


@contextlib.contextmanager
def memory_watchdog(client: Any, stall_s: float | None = None, poll_s: float = POLL_SECONDS) -> Iterator[MemoryWatchdog | None]:
    """Watch ``client``'s cluster while the body runs; a stall ends the body with a
    :class:`~cluster_core.errors.MemoryLimitError`.

    Parameters
    ----------
    client : distributed.Client or None
        None (work in this process): nothing to watch, yields None.
    stall_s : float, optional
        Default :func:`stall_seconds`.
    poll_s : float

    Raises
    ------
    MemoryLimitError
        When the watchdog stopped the work (the error the body ended with is its cause).
    """
    if client is None:
        yield None
        return
    watchdog = MemoryWatchdog(client, stall_s if stall_s is not None else stall_seconds(), poll_s)
    watchdog.start()
    try:
        yield watchdog
    except BaseException as exc:
        watchdog.stop()
        if watchdog.error is not None:
            raise watchdog.error from exc
        if _is_killed_worker(exc):
            raise MemoryLimitError(watchdog.describe_killed(exc)) from exc
        raise
    watchdog.stop()
    if watchdog.error is not None:  # the work ended anyway, on a closed client: its results are not to be trusted
        raise watchdog.error


__all__ = ["POLL_SECONDS", "STALL_ENV", "STALL_SECONDS", "MemoryWatchdog", "memory_watchdog", "stall_seconds"]
