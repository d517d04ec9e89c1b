"""The SQLite job store: transactions, states, recovery after a crash, the process lock, concurrency."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from cluster_core.errors import NotFoundError
from jobs.store import JobStateError, JobStore, QueueFullError, StoreLockedError, StoreUnavailableError

SPEC = {"kind": "train", "data": "d", "k": [3]}


@pytest.fixture
def store(tmp_path):
    opened = JobStore(tmp_path / "jobs.db")
    yield opened
    opened.close()


def test_a_job_moves_through_its_states(store):
    job, created = store.create(SPEC, output="/out/x")
    assert created and job.state == "queued" and job.spec == SPEC and job.output == "/out/x"
    claimed = store.claim_next()
    assert claimed.id == job.id and claimed.state == "running" and claimed.attempts == 1 and claimed.started_at
    store.update_progress(job.id, progress=0.4, step="featurizing", log="featurizing 3 partitions")
    store.update_progress(job.id, progress=0.2, step="training")  # progress never goes back
    running = store.get(job.id)
    assert running.progress == 0.4 and running.step == "training"
    assert [s["name"] for s in running.steps] == ["featurizing", "training"]
    assert running.steps[0]["finished_at"] is not None and running.steps[1]["finished_at"] is None
    assert store.finish(job.id, "succeeded", result={"run_dir": "/out/x"})
    done = store.get(job.id)
    assert done.state == "succeeded" and done.progress == 1.0 and done.result == {"run_dir": "/out/x"}
    assert done.steps[-1]["finished_at"] is not None and done.finished_at >= done.started_at
    assert not store.finish(job.id, "failed", error="late")  # a finished job stays finished
    assert store.get(job.id).state == "succeeded"
    assert [line["text"] for line in store.logs(job.id)] == ["queued", "running", "featurizing 3 partitions", "succeeded"]


def test_jobs_are_claimed_oldest_first_and_listed_newest_first(store):
    ids = [store.create({**SPEC, "name": f"j{i}"})[0].id for i in range(3)]
    assert store.claim_next().id == ids[0]
    assert [j.id for j in store.list()] == ids[::-1]
    assert [j.id for j in store.list(state="queued")] == ids[:0:-1]
    assert store.count(state="queued") == 2 and store.count() == 3
    assert store.list(limit=1, offset=1)[0].id == ids[1]


def test_cancel_queued_running_and_finished(store):
    running = store.create(SPEC)[0]
    queued = store.create(SPEC)[0]
    assert store.claim_next().id == running.id
    assert store.request_cancel(queued.id).state == "cancelled"  # never started
    flagged = store.request_cancel(running.id)
    assert flagged.state == "running" and flagged.cancel_requested  # the runner stops it
    store.finish(running.id, "cancelled", error="cancelled by request")
    with pytest.raises(JobStateError, match="already finished"):
        store.request_cancel(running.id)
    with pytest.raises(NotFoundError, match="no job with id 'nope'"):
        store.request_cancel("nope")


def test_idempotency_key_returns_the_same_job(store):
    first, created = store.create(SPEC, idempotency_key="k1")
    again, created_again = store.create(SPEC, idempotency_key="k1")
    assert created and not created_again and again.id == first.id and store.count() == 1
    with pytest.raises(JobStateError, match="already used for another spec"):
        store.create({**SPEC, "k": [4]}, idempotency_key="k1")


def test_queue_limit(store):
    store.create(SPEC, max_queued=2)
    store.create(SPEC, max_queued=2)
    with pytest.raises(QueueFullError, match="2 jobs are queued already"):
        store.create(SPEC, max_queued=2)
    assert store.count() == 2


def test_a_failed_transaction_leaves_nothing(store, monkeypatch):
    def broken_log(conn, job_id, at, text):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(JobStore, "_log", staticmethod(broken_log))
    with pytest.raises(StoreUnavailableError, match="cannot be written now .disk I/O error.; retry later") as caught:
        store.create(SPEC)
    assert caught.value.http_status == 503
    monkeypatch.undo()
    assert store.count() == 0  # the insert was rolled back with the log line


def test_reopened_store_keeps_everything_and_interrupts_running_jobs(tmp_path):
    path = tmp_path / "jobs.db"
    first = JobStore(path)
    done = first.create(SPEC)[0]
    first.claim_next()
    first.finish(done.id, "succeeded", result={"run_dir": "r"})
    running = first.create(SPEC)[0]
    first.claim_next()
    queued = first.create(SPEC)[0]
    first._conn.close()  # the process dies: no clean close, the lock file handle goes with it
    first._release_lock()

    second = JobStore(path)
    recovered = second.recover()
    assert [j.id for j in recovered] == [running.id]
    assert second.get(running.id).state == "interrupted"
    assert f"POST /v1/jobs/{running.id}/rerun" in second.get(running.id).error
    assert second.get(done.id).state == "succeeded" and second.get(done.id).result == {"run_dir": "r"}
    assert second.get(queued.id).state == "queued"
    assert second.count(state="running") == 0
    second.close()


def test_resume_queues_running_jobs_again(tmp_path):
    first = JobStore(tmp_path / "jobs.db")
    job = first.create(SPEC)[0]
    first.claim_next()
    first.close()
    second = JobStore(tmp_path / "jobs.db")
    second.recover(resume=True)
    again = second.get(job.id)
    assert again.state == "queued" and again.started_at is None
    assert second.claim_next().attempts == 2
    second.close()


def test_one_process_owns_a_store(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    with pytest.raises(StoreLockedError, match="is in use by another clustra api process"):
        JobStore(tmp_path / "jobs.db")
    store.close()
    JobStore(tmp_path / "jobs.db").close()  # free again once closed


def test_concurrent_creates_are_all_recorded_once(store):
    def submit(i: int):
        return store.create({**SPEC, "name": f"c{i}"})[0].id

    with ThreadPoolExecutor(32) as pool:
        ids = list(pool.map(submit, range(100)))
    assert len(set(ids)) == 100 and store.count() == 100
    assert sorted(j.name for j in store.list(limit=1000)) == sorted(f"c{i}" for i in range(100))


def test_a_key_reused_for_another_spec_is_refused_under_concurrency(store):
    def submit(i: int):
        try:
            return store.create({**SPEC, "name": f"c{i}"}, idempotency_key="shared")[0].id
        except JobStateError:
            return None

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(submit, range(40)))
    assert sum(i is not None for i in ids) == 1 and store.count() == 1


def test_concurrent_creates_with_retried_keys(store):
    def submit(i: int):
        return store.create({**SPEC, "name": f"c{i % 50}"}, idempotency_key=f"key-{i % 50}")

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(submit, range(100)))  # every request sent twice
    assert sum(created for _, created in results) == 50
    assert store.count() == 50
    assert sorted(j.name for j in store.list(limit=1000)) == sorted(f"c{i}" for i in range(50))
