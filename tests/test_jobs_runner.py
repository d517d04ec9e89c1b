"""The runner's pieces: progress that stops a job, restart recovery with half-written outputs, the queue limit."""

from __future__ import annotations

import pytest

from jobs.runner import ActiveJob, JobAborted, JobProgress
from jobs.settings import ServiceSettings
from jobs.store import JobStore
from jobs_support import wait_for

SPEC = {"kind": "train", "data": "d", "algorithms": ["kmeans"], "k": [3]}


@pytest.fixture
def running_job(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    store.create(SPEC)
    job = store.claim_next()
    yield store, job
    store.close()


def test_progress_follows_the_library_steps_and_models(running_job):
    store, job = running_job
    progress = JobProgress(store, ActiveJob(job, deadline=None))
    for name in ("reading data", "sampling", "featurizing"):
        progress.step(name)
    assert store.get(job.id).progress == pytest.approx(0.15) and store.get(job.id).step == "featurizing"
    for _ in range(10):
        progress.step("more preparation")
    assert store.get(job.id).progress == pytest.approx(0.3)  # preparation is at most 30 %
    progress.advance(1, 4, "kmeans-k3: 3 clusters")
    assert store.get(job.id).progress == pytest.approx(0.45)
    progress.advance(4, 4, "kmeans-k6: 6 clusters")
    progress.step("writing /out/run")
    assert store.get(job.id).progress == pytest.approx(0.9)
    progress.message("a note")
    texts = [line["text"] for line in store.logs(job.id)]
    assert "[1/4] kmeans-k3: 3 clusters" in texts and texts[-1] == "a note"


def test_progress_raises_once_the_job_must_stop(running_job):
    store, job = running_job
    active = ActiveJob(job, deadline=None)
    progress = JobProgress(store, active)
    progress.step("reading")
    assert active.request_stop("cancelled", "cancelled by request")
    assert not active.request_stop("failed", "timed out")  # the first reason wins
    for call in (lambda: progress.step("next"), lambda: progress.message("x"), lambda: progress.advance(1, 2, "m")):
        with pytest.raises(JobAborted, match="cancelled by request"):
            call()
    assert store.get(job.id).step == "reading"  # nothing recorded after the stop


def test_restart_marks_running_jobs_interrupted_and_removes_their_half_written_output(tmp_path, dask_client):
    from jobs.api import JobService

    data = tmp_path / "data"
    data.mkdir()
    outputs = tmp_path / "outputs"
    staging = outputs / ".abc123.tmp-1f2e3d4c"
    staging.mkdir(parents=True)
    (staging / "leaderboard.json").write_text("{}")
    other = outputs / ".other.tmp-00000000"  # another job's: left alone
    other.mkdir()
    store = JobStore(tmp_path / "jobs.db")
    store.create(SPEC, output=str(outputs / "abc123"), job_id="abc123")
    store.claim_next()
    queued = store.create(SPEC, output=str(outputs / "def456"), job_id="def456")[0]
    store.close()

    settings = ServiceSettings(store=str(tmp_path / "jobs.db"), data_roots=[str(data)], output_root=str(outputs),
                               scheduler=dask_client.scheduler.address)
    service = JobService(settings)
    service.start()
    try:
        assert service.store.get("abc123").state == "interrupted"
        assert not staging.exists() and other.exists()
        # the queued job runs after the restart (and fails on its missing data, with the reason)
        job = wait_for(lambda: (j := service.store.get(queued.id)).terminal and j, 60, "the queued job to run")
        assert job.state == "failed" and "data: 'd' does not exist" in job.error
    finally:
        service.stop()


def test_queue_limit_is_429(tmp_path, dask_client):
    from fastapi.testclient import TestClient

    from jobs.api import create_app

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.parquet").write_bytes(b"not parquet")
    settings = ServiceSettings(store=str(tmp_path / "jobs.db"), data_roots=[str(tmp_path / "data")],
                               scheduler="tcp://127.0.0.1:9", max_queued_jobs=2)  # unreachable: jobs stay queued
    spec = {**SPEC, "data": "d.parquet"}
    with TestClient(create_app(settings)) as http:
        assert http.post("/v1/jobs", json=spec).status_code == 201
        assert http.post("/v1/jobs", json=spec).status_code == 201
        refused = http.post("/v1/jobs", json=spec)
        assert refused.status_code == 429 and refused.json()["error"] == "queue_full"
        assert "2 jobs are queued already (limit 2)" in refused.json()["message"]
        health = http.get("/healthz").json()
        assert health["queued_jobs"] == 2 and health["dask"] in ("starting", "error")


def test_work_cancelled_for_lost_dependencies_is_reported_as_a_lost_worker():
    from distributed.client import FutureCancelledError

    from jobs.runner import describe_failure

    exc = FutureCancelledError("_combine_all-00a1", reason="lost dependencies")
    message = describe_failure(exc)
    assert message.startswith("a Dask worker was lost while the job ran") and "lost dependencies" in message
    assert describe_failure(KeyError("x")) == "KeyError: 'x'"
