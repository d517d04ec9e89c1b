"""The durable job store: one SQLite file (WAL, synchronous=FULL), every change one transaction.

Tables: ``jobs`` (one row per job: spec, state, progress, timings, result) and ``logs``
(the lines a job printed). A job moves ``queued -> running -> succeeded | failed |
cancelled``; a job found ``running`` when the store is opened by a new process was
running when the previous one died: :meth:`JobStore.recover` marks it ``interrupted`` (or
queues it again). One process at a time owns a store (an exclusive lock on ``PATH.lock``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cluster_core.errors import ClustraError, InvalidInputError, NotFoundError, StoreError, UnavailableError

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
SCHEMA_VERSION = 1
MAX_LOG_LINE = 4000
DEFAULT_STORE = "~/.clustra/jobs.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    name TEXT,
    output TEXT,
    parent_id TEXT,
    rerun TEXT,
    idempotency_key TEXT UNIQUE,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    updated_at REAL NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    step TEXT,
    steps TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    result TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_parent ON jobs (parent_id);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_job ON logs (job_id, id);
"""


class JobStateError(ClustraError):
    """The job is not in a state that allows the request (HTTP 409)."""

    http_status = 409
    code = "conflict"


class QueueFullError(ClustraError):
    """Too many jobs are queued already (HTTP 429)."""

    http_status = 429
    code = "queue_full"


class StoreLockedError(ClustraError):
    """Another process owns the store."""


class StoreUnavailableError(UnavailableError):
    """The store cannot be read or written now (read-only, disk full, locked): HTTP 503 + Retry-After."""


SQLITE_HEADER = b"SQLite format 3\x00"
_OUR_TABLES = {"meta", "jobs", "logs"}
_SQLITE_INTERNAL = {"sqlite_sequence", "sqlite_stat1", "sqlite_stat4"}
_JOB_COLUMNS = {
    "seq", "id", "kind", "state", "spec", "name", "output", "parent_id", "rerun", "idempotency_key", "created_at",
    "started_at", "finished_at", "updated_at", "progress", "step", "steps", "error", "result", "cancel_requested",
    "attempts",
}


@dataclass
class JobRecord:
    """One row of the ``jobs`` table, JSON columns decoded; times are Unix seconds."""

    id: str
    seq: int
    kind: str
    state: str
    spec: dict[str, Any]
    name: str | None
    output: str | None
    parent_id: str | None
    rerun: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    progress: float
    step: str | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_requested: bool = False
    attempts: int = 0

    @property
    def terminal(self) -> bool:
        """Whether the job has finished (in any way)."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        """Decode a ``jobs`` row."""
        values = dict(row)
        values.pop("idempotency_key", None)
        for name in ("spec", "rerun", "result", "steps"):
            if values[name] is not None:
                values[name] = json.loads(values[name])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)


def new_job_id() -> str:
    """A short random id (12 hex digits)."""
    return secrets.token_hex(6)


def _close_last_step(steps: list[dict[str, Any]], now: float) -> None:
    if steps and steps[-1].get("finished_at") is None:
        steps[-1]["finished_at"] = now


class JobStore:
    """Jobs and their logs in one SQLite file; safe to share between threads.

    Parameters
    ----------
    path : str or PathLike
        The database file (created with its directory); ``~`` is expanded.
    lock : bool
        Take the process lock (``PATH.lock``); a second process opening the same store
        with ``lock=True`` gets :class:`StoreLockedError`.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_STORE, *, lock: bool = True) -> None:
        self.path = Path(os.path.expanduser(str(path)))
        self._lock_file: TextIO | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._check_file()
            self._lock_file = self._take_lock() if lock else None
        except OSError as exc:
            raise StoreError(f"cannot open the job store {str(self.path)!r}: {exc.strerror or exc}") from None
        self._mutex = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StoreError(f"cannot open the job store {str(self.path)!r}: {exc}") from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._open_checked()
        except BaseException:
            self._conn.close()
            self._release_lock()
            raise

    def _unusable(self, why: str) -> StoreError:
        return StoreError(f"the job store {str(self.path)!r} {why}; fix or move it, or choose another --store")

    def _check_file(self) -> None:
        """Refuse a path that is not a SQLite file before SQLite touches it (it would be overwritten)."""
        if not self.path.exists():
            if not os.access(self.path.parent, os.W_OK):
                raise self._unusable("cannot be created: its directory is read-only")
            return
        if not self.path.is_file():
            raise self._unusable("is not a file")
        with open(self.path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        size = self.path.stat().st_size
        if size and (header != SQLITE_HEADER or size < 512):
            raise self._unusable("is not a SQLite database (corrupt, truncated or another kind of file)")
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise self._unusable("is read-only (the file or its directory); the service must write to it")

    def _open_checked(self) -> None:
        """WAL mode, the integrity check, our schema (or an empty file) and a test write."""
        try:
            check = self._conn.execute("PRAGMA quick_check").fetchall()
            if [tuple(r) for r in check] != [("ok",)]:
                raise self._unusable(f"is corrupt (SQLite integrity check: {check[0][0]})")
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            tables -= _SQLITE_INTERNAL
            if tables and tables != _OUR_TABLES:
                raise self._unusable(f"holds other tables than a Clustra job store ({sorted(tables)})")
            if tables:
                columns = {r[1] for r in self._conn.execute("PRAGMA table_info(jobs)")}
                if not _JOB_COLUMNS <= columns:
                    raise self._unusable(f"has a jobs table without the columns {sorted(_JOB_COLUMNS - columns)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)", (str(time.time()),))
            self._check_schema_version()
        except StoreUnavailableError as exc:
            raise self._unusable(f"cannot be used ({exc.message})") from None
        except sqlite3.Error as exc:
            message = str(exc)
            why = "is read-only; the service must write to it" if "readonly" in message else f"cannot be used ({message})"
            raise self._unusable(why) from None

    # -- plumbing -------------------------------------------------------------------------

    def _take_lock(self) -> TextIO:
        import fcntl

        handle = open(f"{self.path}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise StoreLockedError(
                f"the job store {str(self.path)!r} is in use by another clustra api process (pid {owner}); "
                "stop it or choose another --store"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def close(self) -> None:
        """Close the database and release the process lock."""
        with self._mutex:
            self._conn.close()
        self._release_lock()

    @contextlib.contextmanager
    def _unavailable_on_error(self, action: str) -> Iterator[None]:
        """SQLite errors (read-only, disk full, locked) as :class:`StoreUnavailableError` (503)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"the job store {str(self.path)!r} cannot be {action} now ({exc}); "
                                        "retry later") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error), one thread at a time;
        a SQLite failure is a :class:`StoreUnavailableError`."""
        with self._mutex, self._unavailable_on_error("written"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for a read, one thread at a time; a SQLite failure is a :class:`StoreUnavailableError`."""
        with self._mutex, self._unavailable_on_error("read"):
            yield self._conn

    def _check_schema_version(self) -> None:
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif not str(row["value"]).isdigit():
                raise self._unusable(f"has an unreadable schema version {row['value']!r}")
            elif int(row["value"]) > SCHEMA_VERSION:
                raise StoreError(
                    f"the job store {str(self.path)!r} has schema version {row['value']}; "
                    f"this clustra reads version {SCHEMA_VERSION} (upgrade clustra)"
                )

    def _get(self, conn: sqlite3.Connection, job_id: str) -> JobRecord:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return JobRecord.from_row(row)

    # -- creating and reading --------------------------------------------------------------

    def create(
        self,
        spec: dict[str, Any],
        *,
        output: str | None = None,
        parent_id: str | None = None,
        rerun: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        max_queued: int | None = None,
        job_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Record a new queued job; ``(record, created)``.

        With an ``idempotency_key`` already used for the same spec, the existing job is
        returned with ``created=False`` (a retried request is not a second job); used for
        a different spec, :class:`JobStateError`.
        """
        spec_text = json.dumps(spec, sort_keys=True)
        now = time.time()
        with self._transaction() as conn:
            if idempotency_key is not None:
                row = conn.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if row is not None:
                    if json.dumps(json.loads(row["spec"]), sort_keys=True) != spec_text:
                        raise JobStateError(f"Idempotency-Key {idempotency_key!r} was already used for another spec")
                    return JobRecord.from_row(row), False
            if max_queued is not None:
                queued = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    raise QueueFullError(f"{queued} jobs are queued already (limit {max_queued}); retry later")
            job_id = job_id or new_job_id()
            conn.execute(
                "INSERT INTO jobs (id, kind, state, spec, name, output, parent_id, rerun, idempotency_key, created_at, "
                "updated_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, spec["kind"], spec_text, spec.get("name"), output, parent_id,
                 json.dumps(rerun) if rerun is not None else None, idempotency_key, now, now),
            )
            self._log(conn, job_id, now, "queued")
            return self._get(conn, job_id), True

    def get(self, job_id: str) -> JobRecord:
        """The job ``job_id``; :class:`NotFoundError` when there is none."""
        with self._reading() as conn:
            return self._get(conn, job_id)

    @staticmethod
    def _filter(state: str | None, kind: str | None, parent_id: str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column, value in (("state", state), ("kind", kind), ("parent_id", parent_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params

    def list(
        self, *, state: str | None = None, kind: str | None = None, parent_id: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[JobRecord]:
        """Jobs, newest first, optionally filtered."""
        where, params = self._filter(state, kind, parent_id)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT * FROM jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?", (*params, limit, offset)
            ).fetchall()
        return [JobRecord.from_row(r) for r in rows]

    def count(self, *, state: str | None = None, kind: str | None = None, parent_id: str | None = None) -> int:
        """How many jobs match the filter."""
        where, params = self._filter(state, kind, parent_id)
        with self._reading() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM jobs {where}", params).fetchone()[0])

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (every state of :data:`JOB_STATES`, 0 included); one query."""
        with self._reading() as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(JOB_STATES, 0)
        counts.update({str(state): int(n) for state, n in rows})
        return counts

    def find_by_idempotency_key(self, key: str) -> JobRecord | None:
        """The job created with this ``Idempotency-Key``, if any."""
        with self._reading() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else JobRecord.from_row(row)

    def children(self, job_id: str) -> list[str]:
        """Ids of the jobs that rerun ``job_id``, oldest first."""
        with self._reading() as conn:
            rows = conn.execute("SELECT id FROM jobs WHERE parent_id = ? ORDER BY seq", (job_id,)).fetchall()
        return [r["id"] for r in rows]

    # -- running ---------------------------------------------------------------------------

    def claim_next(self) -> JobRecord | None:
        """The oldest queued job, now ``running`` (None when nothing is queued)."""
        now = time.time()
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, updated_at = ?, attempts = attempts + 1, "
                "progress = 0, step = NULL, steps = '[]', error = NULL WHERE id = ?",
                (now, now, row["id"]),
            )
            self._log(conn, row["id"], now, "running")
            return self._get(conn, row["id"])

    def update_progress(self, job_id: str, *, progress: float | None = None, step: str | None = None,
                        log: str | None = None) -> None:
        """Record progress (0..1, never decreasing), a new current step, and/or a log line."""
        now = time.time()
        with self._transaction() as conn:
            job = self._get(conn, job_id)
            if job.state != "running":
                return
            steps = job.steps
            if step is not None:
                _close_last_step(steps, now)
                steps.append({"name": step, "started_at": now, "finished_at": None})
            value = job.progress if progress is None else max(job.progress, min(1.0, float(progress)))
            conn.execute(
                "UPDATE jobs SET progress = ?, step = ?, steps = ?, updated_at = ? WHERE id = ?",
                (value, step if step is not None else job.step, json.dumps(steps), now, job_id),
            )
            if log is not None:
                self._log(conn, job_id, now, log)

    def append_log(self, job_id: str, text: str) -> None:
        """Add a line to the job's log."""
        with self._transaction() as conn:
            self._log(conn, job_id, time.time(), text)

    @staticmethod
    def _log(conn: sqlite3.Connection, job_id: str, at: float, text: str) -> None:
        for line in str(text).splitlines() or [""]:
            conn.execute("INSERT INTO logs (job_id, at, text) VALUES (?, ?, ?)", (job_id, at, line[:MAX_LOG_LINE]))

    def logs(self, job_id: str, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Log lines of a job with ``id > after``, oldest first."""
        with self._reading() as conn:
            self._get(conn, job_id)
            rows = conn.execute(
                "SELECT id, at, text FROM logs WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?", (job_id, after, limit)
            ).fetchall()
        return [dict(r) for r in rows]

    def finish(self, job_id: str, state: str, *, error: str | None = None, result: dict[str, Any] | None = None,
               log: str | None = None) -> bool:
        """Move a running job to a terminal ``state``; False when it was not running."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"state={state!r} is not a terminal state; expected one of {sorted(TERMINAL_STATES)}")
        now = time.time()
        with self._transaction() as conn:
            job = self._get(conn, job_id)
            if job.state != "running":
                return False
            steps = job.steps
            _close_last_step(steps, now)
            progress = 1.0 if state == "succeeded" else job.progress
            conn.execute(
                "UPDATE jobs SET state = ?, error = ?, result = ?, finished_at = ?, updated_at = ?, steps = ?, "
                "progress = ? WHERE id = ?",
                (state, error, json.dumps(result) if result is not None else None, now, now, json.dumps(steps),
                 progress, job_id),
            )
            self._log(conn, job_id, now, log or (f"{state}: {error}" if error else state))
            return True

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel: a queued job becomes ``cancelled`` at once; a running one is flagged for the runner.

        Raises
        ------
        JobStateError
            The job has already finished.
        """
        now = time.time()
        with self._transaction() as conn:
            job = self._get(conn, job_id)
            if job.terminal:
                raise JobStateError(f"job {job_id} has already finished ({job.state}); nothing to cancel")
            if job.state == "queued":
                conn.execute(
                    "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, updated_at = ?, "
                    "error = 'cancelled before it started' WHERE id = ?",
                    (now, now, job_id),
                )
                self._log(conn, job_id, now, "cancelled before it started")
            else:
                conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, job_id))
                self._log(conn, job_id, now, "cancel requested")
            return self._get(conn, job_id)

    def recover(self, *, resume: bool = False) -> list[JobRecord]:
        """Jobs left ``running`` by a process that died: ``interrupted`` (or ``queued`` with ``resume``)."""
        now = time.time()
        with self._transaction() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE state = 'running' ORDER BY seq").fetchall()
            for row in rows:
                job = JobRecord.from_row(row)
                steps = job.steps
                _close_last_step(steps, now)
                if resume and not job.cancel_requested:
                    conn.execute(
                        "UPDATE jobs SET state = 'queued', started_at = NULL, updated_at = ?, steps = '[]', progress = 0, "
                        "step = NULL WHERE id = ?",
                        (now, job.id),
                    )
                    self._log(conn, job.id, now, "the API process stopped while the job ran; queued again (--resume)")
                    continue
                state = "cancelled" if job.cancel_requested else "interrupted"
                error = "the API process stopped while the job was running; rerun it with POST /v1/jobs/{id}/rerun"
                conn.execute(
                    "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ?, steps = ? WHERE id = ?",
                    (state, error.replace("{id}", job.id), now, now, json.dumps(steps), job.id),
                )
                self._log(conn, job.id, now, f"{state}: the API process stopped while the job was running")
            return [self._get(conn, row["id"]) for row in rows]


__all__ = [
    "DEFAULT_STORE", "JOB_STATES", "JobRecord", "JobStateError", "JobStore", "QueueFullError", "StoreLockedError",
    "StoreUnavailableError",
    "TERMINAL_STATES", "new_job_id",
]
