"""Fault drills of the jobs service, on 127.0.0.1 with real processes, each bounded in time.

* 50 concurrent submissions to a `clustra api` process: all recorded once, none lost or duplicated.
* The API process killed (SIGKILL, with its Dask workers) mid-job and restarted on the same store:
  states consistent, the completed job's results intact, the killed job `interrupted` and rerunnable.
* A real `dask worker` process killed mid-job: the job completes (or fails with a clear error);
  with every worker gone the job fails after `worker_wait_s`; nothing is left stuck.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import make_mixed_frame, write_hive
from jobs_support import TERMINAL, ApiProcess, free_port, wait_for, wait_job

pytestmark = [pytest.mark.dask_cluster, pytest.mark.slow, pytest.mark.timeout(420)]

MINIMAL = {"kind": "train", "data": "customers", "algorithms": ["kmeans"], "k": [3, 5]}
LONG = {"kind": "train", "data": "big.parquet", "algorithms": ["kmeans", "gmm"], "k": [2, 3, 4, 5, 6, 7, 8],
        "kmeans_n_init": 5, "name": "long"}


def _tree(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``directory`` with its size and content."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.read_bytes()) for p in sorted(directory.rglob("*"))
            if p.is_file()}


def _submit_concurrently(http: httpx.Client, n: int) -> tuple[list[str], list[int]]:
    """``n`` submissions from ``n`` threads at once, the first 10 sent twice with the same Idempotency-Key."""
    requests = [(i, f"drill-key-{i}") for i in range(n)] + [(i, f"drill-key-{i}") for i in range(10)]

    def post(item: tuple[int, str]) -> tuple[str, int]:
        i, key = item
        response = http.post("/v1/jobs", json={**MINIMAL, "name": f"c{i}"}, headers={"Idempotency-Key": key})
        return response.json()["id"], response.status_code

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(post, requests))
    return [a[0] for a in answers], [a[1] for a in answers]


def test_concurrent_submissions_and_api_killed_mid_job(tmp_path):
    data = tmp_path / "data"
    write_hive(make_mixed_frame(300, seed=8), data / "customers", "region")
    make_mixed_frame(60_000, seed=9).to_parquet(data / "big.parquet", index=False)
    store = tmp_path / "state" / "jobs.db"
    args = ("--store", str(store), "--data-root", str(data), "--workers", "1", "--max-concurrent-jobs", "1")

    first = ApiProcess(tmp_path, *args, name="first")
    try:
        first.wait_ready()
        done = wait_job(first.http, first.http.post("/v1/jobs", json=MINIMAL).json()["id"], timeout=180)
        assert done["state"] == "succeeded", done
        board = first.http.get(f"/v1/jobs/{done['id']}/leaderboard").json()
        run_dir = Path(done["result"]["run_dir"])
        files = _tree(run_dir)

        # 50 concurrent submissions (10 of them retried with their key): 50 jobs, each once
        ids, statuses = _submit_concurrently(first.http, 50)
        assert len(set(ids)) == 50 and statuses.count(201) == 50 and statuses.count(200) == 10
        assert ids[:10] == ids[50:]
        listed = first.http.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
        names = sorted(j["name"] for j in listed if (j["name"] or "").startswith("c"))
        assert names == sorted(f"c{i}" for i in range(50))
        with ThreadPoolExecutor(25) as pool:  # cancel them all, concurrently
            codes = list(pool.map(lambda i: first.http.post(f"/v1/jobs/{i}/cancel").status_code, set(ids)))
        assert set(codes) <= {200, 409}  # 409: one that finished in the meantime
        wait_for(lambda: all(first.http.get(f"/v1/jobs/{i}").json()["state"] in TERMINAL for i in set(ids)), 120,
                 "the 50 jobs to be cancelled")
        before = {j["id"]: j["state"] for j in first.http.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]}
        assert list(before.values()).count("cancelled") >= 45

        # a long job, killed with the whole API process while its models train
        long_id = first.http.post("/v1/jobs", json=LONG).json()["id"]
        wait_for(lambda: (first.http.get(f"/v1/jobs/{long_id}").json()["step"] or "").startswith(("featurizing",
                                                                                                   "training")),
                 180, "the long job to reach Dask work")
    finally:
        if first.proc.poll() is None:
            first.kill()

    second = ApiProcess(tmp_path, *args, name="second")
    try:
        second.wait_ready()
        http = second.http
        killed = http.get(f"/v1/jobs/{long_id}").json()
        assert killed["state"] == "interrupted" and "the API process stopped while the job was running" in killed["error"]
        assert http.get("/v1/jobs", params={"state": "running"}).json()["total"] == 0
        # the completed job and its results are intact
        again = http.get(f"/v1/jobs/{done['id']}").json()
        assert again["state"] == "succeeded" and again["result"] == done["result"]
        assert http.get(f"/v1/jobs/{done['id']}/leaderboard").json() == board
        assert _tree(run_dir) == files
        # nothing lost, nothing duplicated, nothing half-written
        after = http.get("/v1/jobs", params={"limit": 1000}).json()
        assert after["total"] == 52
        assert sorted(j["id"] for j in after["jobs"]) == sorted({*ids, done["id"], long_id})
        assert {j["id"]: j["state"] for j in after["jobs"] if j["id"] in before} == before  # as before the crash
        outputs = store.parent / "outputs"
        assert not (outputs / long_id).exists() and not list(outputs.glob(".*.tmp-*"))
        # the interrupted job reruns to completion as a new linked job
        rerun = http.post(f"/v1/jobs/{long_id}/rerun", json={"k": [2, 3]})
        assert rerun.status_code == 201
        finished = wait_job(http, rerun.json()["id"], timeout=240)
        assert finished["state"] == "succeeded" and finished["parent_id"] == long_id, finished
        assert {m["model_id"] for m in http.get(f"/v1/jobs/{finished['id']}/leaderboard").json()["models"]} == {
            "kmeans-k2", "kmeans-k3", "gmm-k2", "gmm-k3"}
        # a graceful stop (SIGTERM) records the job it interrupts itself
        stopped_id = http.post("/v1/jobs", json=LONG).json()["id"]
        wait_job(http, stopped_id, timeout=60, states=("running",))
    finally:
        status = second.stop()
    assert status in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its graceful shutdown
    assert "Traceback" not in second.log.read_text()
    from jobs.store import JobStore

    reopened = JobStore(store)  # the lock was released
    try:
        stopped = reopened.get(stopped_id)
        assert stopped.state == "interrupted" and stopped.error == "the API process shut down while the job was running"
        assert reopened.count(state="running") == 0
    finally:
        reopened.close()


@pytest.fixture
def dask_processes(tmp_path):
    """A `dask scheduler` and two `dask worker --no-nanny` processes (a killed worker stays dead)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1")
    logs = tmp_path / "dask-logs"
    logs.mkdir()

    def start(name: str, *args: str) -> subprocess.Popen:
        with open(logs / f"{name}.log", "w") as log:
            return subprocess.Popen([str(bin_dir / "dask"), *args], stdout=log, stderr=subprocess.STDOUT, env=env)

    scheduler = start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    workers = [start(f"worker-{i}", "worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny", "--host",
                     "127.0.0.1", "--name", f"worker-{i}", "--memory-limit", "2GiB") for i in range(2)]

    try:
        observer = wait_for(lambda: _try_client(address), 60, "the dask scheduler")
        observer.wait_for_workers(2, timeout=60)
        yield address, observer, workers
        observer.close()
    finally:
        for proc in (*workers, scheduler):
            if proc.poll() is None:
                proc.terminate()
        for proc in (*workers, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _try_client(address: str):
    from distributed import Client

    try:
        return Client(address, timeout=5, set_as_default=False)
    except OSError:
        return None


def test_dask_worker_killed_mid_job(tmp_path, dask_processes):
    from fastapi.testclient import TestClient

    from jobs.api import create_app
    from jobs.settings import ServiceSettings

    address, observer, workers = dask_processes
    data = tmp_path / "data"
    write_hive(make_mixed_frame(20_000, seed=10), data / "customers", "region")
    settings = ServiceSettings(store=str(tmp_path / "jobs.db"), data_roots=[str(data)], scheduler=address,
                               worker_wait_s=5)
    with TestClient(create_app(settings)) as http:
        wait_for(lambda: http.get("/healthz").json()["dask"] == "ready", 60, "the runner to reach Dask")
        spec = {"kind": "train", "data": "customers", "algorithms": ["kmeans", "gmm"], "k": [2, 3, 4]}
        job_id = http.post("/v1/jobs", json=spec).json()["id"]
        pids = {addr: pid for addr, pid in observer.run(os.getpid).items()}

        def busy_worker():
            processing = observer.processing()
            return next((addr for addr, keys in processing.items() if keys), None)

        victim = wait_for(busy_worker, 120, "a worker processing the job's tasks", interval=0.02)
        process = next(p for p in workers if p.pid == pids[victim])  # one of the processes this test started
        assert http.get(f"/v1/jobs/{job_id}").json()["state"] == "running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

        job = wait_job(http, job_id, timeout=240)
        assert job["state"] == "succeeded" or (job["state"] == "failed" and "worker" in job["error"].lower()), job
        if job["state"] == "succeeded":
            assert {m["model_id"] for m in http.get(f"/v1/jobs/{job_id}/leaderboard").json()["models"]} == {
                "kmeans-k2", "kmeans-k3", "kmeans-k4", "gmm-k2", "gmm-k3", "gmm-k4"}
        wait_for(lambda: len(observer.scheduler_info()["workers"]) == 1, 30, "the scheduler to drop the dead worker")

        # every worker gone: a job cannot hang, it fails once no worker came back within worker_wait_s
        for proc in workers:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        wait_for(lambda: len(observer.scheduler_info()["workers"]) == 0, 30, "the scheduler to lose every worker")
        started = time.monotonic()
        orphan = http.post("/v1/jobs", json={**spec, "k": [2]}).json()["id"]
        job = wait_job(http, orphan, timeout=60)
        assert job["state"] == "failed" and f"no Dask worker for 5s at {address}" in job["error"], job
        assert time.monotonic() - started < 45
        wait_for(lambda: observer.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0, 30,
                 "the scheduler to hold no task of the failed job")
        health = http.get("/healthz").json()
        assert health["running_jobs"] == 0 and health["queued_jobs"] == 0
