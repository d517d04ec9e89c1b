"""The runner: queued jobs run on Dask, at most ``max_concurrent_jobs`` at a time.

* A dispatcher thread claims the oldest queued job (one store transaction) whenever a
  slot is free and runs it in a thread of its own.
* Each job gets its own ``distributed.Client`` on the shared scheduler (the embedded
  LocalCluster or ``--scheduler``), made current in the job's thread, so every Dask
  computation of the job belongs to that client.
* Stopping a job (cancel, ``timeout_s``, no Dask worker for ``worker_wait_s``, shutdown)
  closes its client, so the scheduler releases every task of the job (queued ones never
  run), and makes its :class:`JobProgress` raise at the next step boundary. A task already
  executing cannot be interrupted inside its thread: on the embedded cluster, a worker
  still running a released task a moment later is restarted by its nanny
  (:meth:`DaskConnection.orphaned_workers`, :meth:`DaskConnection.restart_workers`), so the
  next job starts at once.
* Progress events become the job's ``progress``, ``step`` and log lines in the store.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cluster_core.errors import ArtifactError, ClustraError, MemoryLimitError
from cluster_core.progress import Progress

from .paths import PathPolicy
from .settings import ServiceSettings
from .store import JobRecord, JobStore, StoreUnavailableError
from .tasks import run_job

log = logging.getLogger("clustra.jobs")

CONNECT_RETRY_S = 5.0
STORE_RETRY_S = 5.0
REAP_GRACE_S = 1.0
REAP_WINDOW_S = 20.0
WATCH_INTERVAL_S = 0.5
STOP_WAIT_S = 15.0
PREPARE_SHARE = 0.3
TRAIN_SHARE = 0.6


class JobAborted(Exception):
    """Raised inside a job to stop it (cancelled, timed out, no workers, shutdown)."""


@dataclass
class ActiveJob:
    """A job running in this process."""

    job: JobRecord
    deadline: float | None
    abort: threading.Event = field(default_factory=threading.Event)
    end_state: str | None = None
    reason: str | None = None
    client: Any = None
    thread: threading.Thread | None = None

    def request_stop(self, state: str, reason: str) -> bool:
        """Ask the job to stop ending in ``state``; False when it was asked already."""
        if self.abort.is_set():
            return False
        self.end_state, self.reason = state, reason
        self.abort.set()
        return True


class JobProgress(Progress):
    """Stores a job's progress and raises :class:`JobAborted` once the job must stop.

    The fraction grows through the library's preparation steps (up to 30 %), then with
    each trained model (to 90 %); writing the output is the rest.
    """

    def __init__(self, store: JobStore, active: ActiveJob) -> None:
        self.store = store
        self.active = active
        self.fraction = 0.0

    def check(self) -> None:
        """Raise :class:`JobAborted` when the job was asked to stop."""
        if self.active.abort.is_set():
            raise JobAborted(self.active.reason or "stopped")

    def step(self, name: str) -> None:
        self.check()
        if name.startswith(("writing", "scoring")):
            self.fraction = max(self.fraction, PREPARE_SHARE + TRAIN_SHARE)
        else:
            self.fraction = min(PREPARE_SHARE, self.fraction + 0.05)
        self.store.update_progress(self.active.job.id, progress=self.fraction, step=name, log=name)

    def message(self, text: str) -> None:
        self.check()
        self.store.append_log(self.active.job.id, text)

    def advance(self, done: int, total: int, text: str) -> None:
        self.check()
        self.fraction = PREPARE_SHARE + TRAIN_SHARE * done / max(total, 1)
        self.store.update_progress(self.active.job.id, progress=self.fraction, log=f"[{done}/{total}] {text}")


class DaskConnection:
    """The scheduler the jobs use: an embedded LocalCluster or ``settings.scheduler``."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.address: str | None = None
        self.error: str | None = None
        self._control: Any = None

    @property
    def ready(self) -> bool:
        """Whether jobs can run."""
        return self._control is not None

    def open(self) -> contextlib.ExitStack:
        """Start the embedded cluster or connect to the scheduler; close the returned stack in the same thread.

        Raises whatever the connection raised (the caller retries).
        """
        from cluster_core.engine import dask_client

        stack = contextlib.ExitStack()
        client = stack.enter_context(
            dask_client(self.settings.scheduler, device=self.settings.device, n_workers=self.settings.workers,
                        memory_limit=self.settings.memory_limit)
        )
        self.address = client.scheduler.address
        self._control = client
        self.error = None
        stack.callback(self._forget)
        return stack

    def _forget(self) -> None:
        self._control = None

    def n_workers(self) -> int:
        """Workers the scheduler has now (0 when it cannot be asked)."""
        if self._control is None:
            return 0
        try:
            return len(self._control.nthreads())
        except Exception:  # noqa: BLE001 - a lost scheduler counts as no workers
            return 0

    def orphaned_workers(self) -> list[str]:
        """Workers still executing a task the scheduler released (its job was stopped)."""
        if self._control is None:
            return []
        try:
            found = self._control.run(_released_but_running, on_error="return")
        except Exception:  # noqa: BLE001 - a lost scheduler has no workers to free
            return []
        return sorted(address for address, keys in found.items() if isinstance(keys, list) and keys)

    def paused_idle_workers(self) -> list[str]:
        """Workers paused for memory (``distributed.worker.memory.pause``) that execute no task."""
        if self._control is None:
            return []
        try:
            workers = self._control.scheduler_info()["workers"]
        except Exception:  # noqa: BLE001 - a lost scheduler has no workers to free
            return []
        return sorted(address for address, w in workers.items() if w.get("status") == "paused"
                      and not (w.get("metrics") or {}).get("task_counts", {}).get("executing"))

    def restart_workers(self, workers: list[str]) -> list[str]:
        """Restart these workers through their nannies (their memory and threads are freed); the ones restarted."""
        if self._control is None or not workers:
            return []
        try:
            self._control.restart_workers(workers, timeout=60, raise_for_error=False)
        except Exception as exc:  # noqa: BLE001 - reported; the job is stopped either way
            log.warning("could not restart Dask workers %s: %s", workers, describe_failure(exc))
            return []
        return workers

    def job_client(self) -> Any:
        """A new client of the scheduler for one job (not the process default)."""
        from distributed import Client

        from cluster_core.engine import CONNECT_TIMEOUT_S

        return Client(self.address, set_as_default=False, timeout=CONNECT_TIMEOUT_S)


def _released_but_running(dask_worker: Any) -> list[str]:
    """Run on a worker: keys of tasks it is still executing though the scheduler released them."""
    return [str(ts.key) for ts in list(dask_worker.state.tasks.values())
            if ts.state == "cancelled" and getattr(ts, "previous", None) in ("executing", "long-running")]


def release_client_work(client: Any) -> bool:
    """Close a job's client from another thread: the scheduler releases every task the client
    wanted (queued ones never run, results of running ones are dropped) and the job's
    waiting calls raise ``CancelledError``. Returns False when there was nothing to close.

    Closing is the robust way to drop a whole graph: ``Client.cancel(force=True)`` on keys with
    dependents nobody holds trips an assertion in the scheduler.
    """
    if client is None or client.status not in ("running", "connecting", "newly-created"):
        return False
    threading.Thread(target=_close_quietly, args=(client,), name="clustra-release", daemon=True).start()
    return True


def _close_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.close(timeout=30)


def describe_failure(exc: BaseException) -> str:
    """The error message stored for a failed job: the message of a Clustra error, else type + message
    (said to be a lost Dask worker when Dask cancelled the work for lost dependencies)."""
    if isinstance(exc, (ClustraError, ArtifactError, FileExistsError, ValueError)) and str(exc):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}"
    if "lost dependencies" in str(exc):
        return f"a Dask worker was lost while the job ran and its results could not be recomputed ({text}); rerun the job"
    return text


class Runner:
    """Runs the store's queued jobs on Dask.

    Parameters
    ----------
    store : JobStore
    policy : PathPolicy
    settings : ServiceSettings
    """

    def __init__(self, store: JobStore, policy: PathPolicy, settings: ServiceSettings) -> None:
        self.store = store
        self.policy = policy
        self.settings = settings
        self.dask = DaskConnection(settings)
        self.active: dict[str, ActiveJob] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._no_workers_since: float | None = None
        self.on_finish: list[Callable[[JobRecord], None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> list[JobRecord]:
        """Recover jobs a dead process left running, then start the threads; the recovered jobs."""
        recovered = self.store.recover(resume=self.settings.resume)
        for job in recovered:
            self._remove_staging(job)
        for target, name in ((self._dispatch_loop, "clustra-dispatch"), (self._watch_loop, "clustra-watchdog")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return recovered

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop dispatching; running jobs end ``interrupted``; the Dask connection is closed."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
            active = list(self.active.values())
        for job in active:
            self._stop_job(job, "interrupted", "the API process shut down while the job was running")
        deadline = time.monotonic() + timeout
        for job in active:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        for job in active:  # a job thread that did not return in time
            self._finish(job.job.id, job.end_state or "interrupted", error=job.reason)
        for thread in self._threads:  # the dispatcher closes the Dask connection on its way out
            connecting = not self.dask.ready  # a daemon thread still trying to connect is not waited for
            thread.join(1.0 if connecting else max(1.0, deadline + STOP_WAIT_S - time.monotonic()))

    def wake(self) -> None:
        """A job was queued: let the dispatcher look."""
        with self._wake:
            self._wake.notify_all()

    def _remove_staging(self, job: JobRecord) -> None:
        """Half-written outputs (``.NAME.tmp-*`` siblings) of an interrupted job."""
        if not job.output:
            return
        parent, name = os.path.split(job.output)
        for staging in glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.tmp-*")):
            shutil.rmtree(staging, ignore_errors=True)

    # -- cancelling ------------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job (see :meth:`JobStore.request_cancel`); a running one is stopped."""
        self.store.request_cancel(job_id)
        with self._lock:
            active = self.active.get(job_id)
        if active is not None:
            self._stop_job(active, "cancelled", "cancelled by request")
        return self.store.get(job_id)

    def _stop_job(self, active: ActiveJob, state: str, reason: str) -> None:
        if active.request_stop(state, reason):
            released = release_client_work(active.client)  # None before the job has its client: it checks right after
            if released and self.settings.scheduler is None and not self._stopping.is_set():
                threading.Thread(target=self._free_workers, args=(active,), name=f"clustra-free-{active.job.id}",
                                 daemon=True).start()
            self.store.append_log(active.job.id, f"stopping: {reason}")

    def _free_workers(self, active: ActiveJob) -> None:
        """Restart the embedded workers that keep running a stopped job's tasks (seen twice,
        ``REAP_GRACE_S`` apart, so a task about to end is left to end)."""
        started = time.monotonic()
        deadline = started + REAP_WINDOW_S
        suspects: set[str] = set()
        while time.monotonic() < deadline and not self._stopping.is_set():
            busy = set(self.dask.orphaned_workers())
            stuck = sorted(busy & suspects)
            if stuck:
                restarted = self.dask.restart_workers(stuck)
                if restarted:
                    with contextlib.suppress(ClustraError):
                        self.store.append_log(active.job.id, f"restarted Dask worker(s) {', '.join(restarted)} "
                                                             "that were still running the stopped job's tasks")
                busy -= set(stuck)
            suspects = busy
            settled = time.monotonic() - started > 3 * REAP_GRACE_S
            if settled and not suspects and (active.thread is None or not active.thread.is_alive()):
                return
            time.sleep(REAP_GRACE_S)

    # -- threads ---------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        """Connect to Dask (retrying), then start queued jobs until stopped; the connection is
        opened and closed in this thread (a Dask client must be closed where it was made current)."""
        where = self.settings.scheduler or "an embedded LocalCluster"
        while not self._stopping.is_set():
            try:
                connection = self.dask.open()
            except Exception as exc:  # noqa: BLE001 - reported in /healthz, retried
                self.dask.error = f"cannot start or reach {where}: {describe_failure(exc)}"
                log.warning("%s; retrying in %.0fs", self.dask.error, CONNECT_RETRY_S)
                self._stopping.wait(CONNECT_RETRY_S)
                continue
            log.info("jobs run on Dask at %s", self.dask.address)
            with connection:
                self._dispatch_until_stopped()

    def _dispatch_until_stopped(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                free = len(self.active) < self.settings.max_concurrent_jobs
                try:
                    job = self.store.claim_next() if free and not self._stopping.is_set() else None
                except StoreUnavailableError as exc:  # read-only or full for now: retry, never die
                    log.warning("%s", exc)
                    self._wake.wait(STORE_RETRY_S)
                    continue
                if job is None:
                    self._wake.wait(1.0)
                    continue
                self._launch(job)

    def _launch(self, job: JobRecord) -> None:
        timeout = job.spec.get("timeout_s")
        active = ActiveJob(job, time.monotonic() + float(timeout) if timeout else None)
        active.thread = threading.Thread(target=self._execute, args=(active,), name=f"clustra-job-{job.id}", daemon=True)
        self.active[job.id] = active
        active.thread.start()

    def _execute(self, active: ActiveJob) -> None:
        job = active.job
        progress = JobProgress(self.store, active)
        try:
            if self.store.get(job.id).cancel_requested:
                active.request_stop("cancelled", "cancelled by request")
            progress.check()
            active.client = self.dask.job_client()
            progress.check()
            with active.client.as_current():
                result = run_job(job, self.policy, self.store, active.client, progress,
                                 self.settings.resolved_registry())
            self._finish(job.id, "succeeded", result=result)
        except BaseException as exc:  # noqa: BLE001 - every outcome is recorded
            try:
                self._record_failure(active, exc)
            except StoreUnavailableError as lost:  # recorded by recover() when the store is back or at restart
                log.error("job %s ended but its state could not be stored: %s", job.id, lost)
        finally:
            if active.client is not None:
                with contextlib.suppress(Exception):
                    active.client.close()
            with self._wake:
                self.active.pop(job.id, None)
                self._wake.notify_all()

    def _record_failure(self, active: ActiveJob, exc: BaseException) -> None:
        if active.abort.is_set():
            state = active.end_state or "cancelled"
            self._finish(active.job.id, state, error=active.reason)
            return
        if not isinstance(exc, (ClustraError, ValueError)):
            self.store.append_log(active.job.id, "".join(traceback.format_exception(exc)).rstrip())
        self._finish(active.job.id, "failed", error=describe_failure(exc))
        if isinstance(exc, MemoryLimitError):
            self._free_paused_workers(active)

    def _free_paused_workers(self, active: ActiveJob) -> None:
        """After a job failed for memory, restart the embedded workers left paused with nothing
        running (what fills them cannot be spilled: every next job would wait on them too),
        unless another job is running on them. Not done to the workers of ``--scheduler``."""
        if self.settings.scheduler is not None or self._stopping.is_set():
            return
        with self._lock:
            if any(job is not active for job in self.active.values()):
                return
        stuck = self.dask.paused_idle_workers()
        restarted = self.dask.restart_workers(stuck)
        if restarted:
            with contextlib.suppress(ClustraError):
                self.store.append_log(active.job.id, f"restarted Dask worker(s) {', '.join(restarted)}, "
                                                     "left paused for memory with nothing running")

    def _finish(self, job_id: str, state: str, **fields: Any) -> None:
        """End a running job in the store; then tell :attr:`on_finish` (metrics), whose errors are only logged."""
        if not self.store.finish(job_id, state, **fields) or not self.on_finish:
            return
        try:
            job = self.store.get(job_id)
            for listener in self.on_finish:
                listener(job)
        except Exception as exc:  # noqa: BLE001 - a metrics hook never changes a job's outcome
            log.warning("after job %s ended: %s", job_id, describe_failure(exc))

    def _watch_loop(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL_S):
            with self._lock:
                active = list(self.active.values())
            now = time.monotonic()
            try:
                for job in active:
                    if job.deadline is not None and now > job.deadline:
                        self._stop_job(job, "failed", f"timed out after timeout_s={job.job.spec.get('timeout_s')}s")
                self._check_workers(active, now)
            except StoreUnavailableError as exc:  # the stop itself happened; only its log line was lost
                log.warning("%s", exc)

    def _check_workers(self, active: list[ActiveJob], now: float) -> None:
        if not active or not self.dask.ready or self.dask.n_workers() > 0:
            self._no_workers_since = None
            return
        if self._no_workers_since is None:
            self._no_workers_since = now
            for job in active:
                self.store.append_log(job.job.id, "the Dask cluster has no workers; waiting for one")
        elif now - self._no_workers_since > self.settings.worker_wait_s:
            reason = (f"no Dask worker for {self.settings.worker_wait_s:g}s at {self.dask.address}: "
                      "the workers died or were removed")
            for job in active:
                self._stop_job(job, "failed", reason)

    # -- status ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What /healthz reports about the runner."""
        with self._lock:
            running = len(self.active)
        return {
            "dask": "ready" if self.dask.ready else ("error" if self.dask.error else "starting"),
            "dask_address": self.dask.address,
            "dask_error": self.dask.error,
            "running_jobs": running,
            "max_concurrent_jobs": self.settings.max_concurrent_jobs,
        }


__all__ = ["ActiveJob", "DaskConnection", "JobAborted", "JobProgress", "Runner", "release_client_work"]
