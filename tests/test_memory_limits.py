"""Never hang on memory: partitions sized from the workers' memory limit, and a watchdog that
stops a job whose workers are all paused (issue 20, deliverable 4)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster_core.data import dataset_from_table, fit_partitions, read_dataset
from cluster_core.engine.memory import PARTITION_COPIES, WorkerMemory
from cluster_core.errors import MemoryLimitError

MiB = 1 << 20
ROWS, COLUMNS, GROUP_ROWS = 400_000, 16, 25_000  # 51 MB of float64 in row groups of 3.2 MB


def _write(path, rows=ROWS, row_group_size=GROUP_ROWS, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 8, size=(3, COLUMNS))
    values = centers[rng.integers(0, 3, rows)] + rng.normal(size=(rows, COLUMNS))
    table = pa.table({f"x{i}": values[:, i] for i in range(COLUMNS)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """One 51 MB file in 16 row groups."""
    return str(_write(tmp_path_factory.mktemp("grouped") / "data.parquet"))


@pytest.fixture(scope="module")
def one_group(tmp_path_factory):
    """One 51 MB file in a single row group."""
    return str(_write(tmp_path_factory.mktemp("one-group") / "data.parquet", row_group_size=ROWS))


def _memory(budget_mib: float, pause=0.8, in_use=256 * MiB) -> WorkerMemory:
    """A worker whose partition budget is ``budget_mib`` MiB."""
    limit = int((budget_mib * MiB * PARTITION_COPIES + in_use) / pause) + 1
    return WorkerMemory(limit=limit, pause_fraction=pause, in_use=in_use)


# -- sizing, no cluster ------------------------------------------------------------------------


def test_partitions_that_fit_are_left_alone(grouped):
    dataset = read_dataset(grouped)
    fitted, note = fit_partitions(dataset, _memory(200))
    assert note is None and fitted.frame is dataset.frame
    assert 48 * MiB <= fitted.partition_bytes <= 200 * MiB  # the whole file, decoded
    assert fit_partitions(dataset, None) == (dataset, None)  # no cluster or no memory limit: nothing to fit


def test_partitions_too_big_for_the_workers_are_read_in_smaller_pieces(grouped):
    dataset = read_dataset(grouped)
    assert dataset.frame.npartitions == 1
    fitted, note = fit_partitions(dataset, _memory(10))
    assert 5 <= fitted.frame.npartitions <= 16
    assert fitted.partition_bytes <= 10 * MiB
    sizes = fitted.frame.map_partitions(lambda p: p.memory_usage(deep=True).sum()).compute()
    assert sizes.max() <= 10 * MiB  # the estimate holds for what is actually decoded
    assert len(fitted.frame) == ROWS
    pd.testing.assert_frame_equal(fitted.frame.compute().reset_index(drop=True), pq.read_table(grouped).to_pandas())
    assert "memory limit of" in note and "1 -> " in note


def test_a_row_group_too_big_for_the_workers_fails_naming_the_limit_and_the_size(one_group):
    memory = _memory(20)
    with pytest.raises(MemoryLimitError) as caught:
        fit_partitions(read_dataset(one_group), memory)
    message = str(caught.value)
    assert "\n" not in message
    size = re.search(r"a partition of ([\d.]+) MiB decoded \(a Parquet row group of 400,000 rows", message)
    assert size and 45 <= float(size.group(1)) <= 60  # 400,000 x 16 float64 = 48.8 MiB
    assert f"memory limit of {memory.limit / MiB:.0f} MiB" in message  # the limit
    suggested = re.search(r"--memory-limit (\d+)MiB", message)  # a limit that would hold the partition
    assert suggested and WorkerMemory(int(suggested.group(1)) * MiB, 0.8, 256 * MiB).partition_budget >= float(size.group(1)) * MiB
    rows = re.search(r"row_group_size=(\d+)\)", message)
    assert rows and int(rows.group(1)) * 16 * 8 <= memory.partition_budget  # row groups that would fit


def test_workers_whose_libraries_fill_them_are_refused():
    memory = WorkerMemory(limit=300 * MiB, pause_fraction=0.8, in_use=256 * MiB)
    with pytest.raises(MemoryLimitError, match=r"memory limit of 300 MiB leave no room for data: .* take about 256 MiB of a worker.*--memory-limit 768MiB"):
        fit_partitions(dataset_from_table(pd.DataFrame({"x": range(10)})), memory)


def test_an_in_memory_table_is_split_to_fit():
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(200_000, 8)), columns=list("abcdefgh"))
    dataset = dataset_from_table(table)
    fitted, note = fit_partitions(dataset, _memory(2))
    assert fitted.frame.npartitions >= 7 and fitted.partition_bytes <= 2 * MiB
    assert "memory limit" in note
    pd.testing.assert_frame_equal(fitted.frame.compute(), table)


def test_text_is_sized_decoded_not_as_stored(tmp_path):
    """Dictionary-encoded text is small in Parquet and large as Python strings: the estimate is the decoded size."""
    words = np.array([f"category-number-{i:04d}-with-a-long-name" for i in range(50)])
    table = pa.table({"label": words[np.random.default_rng(0).integers(0, 50, 200_000)]})
    path = tmp_path / "text.parquet"
    pq.write_table(table, path, row_group_size=20_000)
    dataset = read_dataset(str(path))
    fitted, _ = fit_partitions(dataset, _memory(500))
    decoded = pq.read_table(path).to_pandas().memory_usage(deep=True, index=False).sum()
    assert fitted.partition_bytes >= 0.8 * decoded > 10 * dataset.nbytes


# -- on a real LocalCluster with small workers ---------------------------------------------------

WORKER_LIMIT = "768MiB"  # a partition may take about 41 MiB: (0.8 x 768 - 448) / 4


@pytest.fixture(scope="module")
def small_workers():
    """Two 768 MiB workers."""
    from cluster_core.engine import dask_client

    with dask_client(None, device="cpu", n_workers=2, memory_limit=WORKER_LIMIT) as client:
        client.wait_for_workers(2, timeout=30)
        yield client


@pytest.mark.dask_cluster
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_work_dask_gave_up_on_after_worker_deaths_is_a_memory_error(small_workers):
    """KilledWorker (a nanny restarted the worker above 95 % of its limit, again and again) is not an internal error."""
    from distributed import KilledWorker

    from cluster_core.engine.watchdog import memory_watchdog

    with pytest.raises(MemoryLimitError) as caught:
        with memory_watchdog(small_workers) as watchdog:
            watchdog.partition_bytes = 41 * MiB
            raise KilledWorker("fit_and_evaluate_arrays-abc", "tcp://127.0.0.1:1", 3)
    message = str(caught.value)
    assert message.startswith("Dask workers died running fit_and_evaluate_arrays-abc")
    assert "95% of its 768 MiB memory limit" in message and "partitions of up to 41 MiB" in message
    assert isinstance(caught.value.__cause__, KilledWorker)


@pytest.mark.dask_cluster
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_job_on_small_workers_shrinks_its_partitions_and_never_hangs(grouped, small_workers, tmp_path, monkeypatch):
    """768 MiB workers: the 51 MB file is read in partitions that fit. The sweep then either
    completes or ends with the memory error: on this machine a model task took a worker
    above the pause threshold for good, or (another run) above the 95 % restart threshold
    until Dask gave up. Never a hang."""
    from cluster_core.progress import Progress
    from cluster_core.usecases import train_run

    monkeypatch.setenv("CLUSTRA_MEMORY_STALL_S", "8")
    lines = []

    class Recorder(Progress):
        def message(self, text):
            lines.append(text)

    config = {"algorithms": ["kmeans"], "k": [2, 3], "insights": False, "stability": False, "kmeans_n_init": 1}
    started = time.monotonic()
    try:
        outcome = train_run(grouped, config, out=tmp_path / "run", cluster=small_workers, progress=Recorder())
    except MemoryLimitError as exc:  # paused for good, or restarted for memory until Dask gave up
        assert ("paused for memory" in str(exc) and "768 MiB memory limit per worker" in str(exc)) or (
            "Dask workers died running" in str(exc) and "95% of its 768 MiB memory limit" in str(exc)), str(exc)
        assert "partitions of up to 4" in str(exc) and "--memory-limit" in str(exc)  # the sized partitions (~41 MiB)
    else:
        assert outcome.leaderboard()["best"] in {"kmeans-k2", "kmeans-k3"}
        assert outcome.result.data.n_train + outcome.result.data.n_validation == ROWS
    assert time.monotonic() - started < 45
    sized = [line for line in lines if line.startswith("partitions sized")]
    assert sized and "memory limit of 768 MiB: 1 -> 2 partition(s)" in sized[0]


@pytest.mark.dask_cluster
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_cli_fails_at_once_with_exit_2_when_a_row_group_does_not_fit(one_group, tmp_path):
    """`clustra train` on a cluster whose workers cannot hold the row group: one line, exit 2, before any work."""
    from cluster_core.engine import dask_client

    with dask_client(None, device="cpu", n_workers=1, memory_limit=WORKER_LIMIT) as client:
        address = client.scheduler.address
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "clustra.cli", "train", one_group, "--out", str(tmp_path / "run"),
             "--scheduler", address, "--algorithms", "kmeans", "--k", "2"],
            capture_output=True, text=True, timeout=50,
        )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("clustra: error:")]
    assert len(errors) == 1
    assert "does not fit Dask workers with a memory limit of 768 MiB" in errors[0]
    assert re.search(r"a partition of [\d.]+ MiB decoded", errors[0])
    assert time.monotonic() - started < 50
    assert not (tmp_path / "run").exists()


def _hold_memory(target_bytes: int) -> int:
    """On a worker: keep memory Dask cannot spill (a module global) until the process reaches ``target_bytes``.

    First waits for the worker's warm-up import (cluster_core.engine.warmup, ~190 MiB of modules):
    memory it adds after the ballast would push the worker past the 95 % restart threshold."""
    import threading

    import psutil

    import cluster_core.engine.watchdog as module

    for thread in threading.enumerate():
        if thread.name == "clustra-warmup":
            thread.join(60)

    missing = max(0, target_bytes - psutil.Process().memory_info().rss)
    module._test_ballast = np.ones(missing // 8, dtype=np.float64)
    return psutil.Process().memory_info().rss


def _wait_until_paused(client, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(w.get("status") == "paused" for w in client.scheduler_info()["workers"].values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"workers not paused: {[w.get('status') for w in client.scheduler_info()['workers'].values()]}")


@pytest.mark.dask_cluster
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_work_on_paused_workers_stops_with_the_memory_error_instead_of_hanging():
    """Both workers over the pause threshold with nothing to spill: the work ends within the
    stall time with the clear error, and new work is refused before it starts."""
    from cluster_core.engine import dask_client
    from cluster_core.engine.memory import worker_memory
    from cluster_core.engine.watchdog import memory_watchdog

    with dask_client(None, device="cpu", n_workers=2, memory_limit="512MiB") as client:
        client.wait_for_workers(2, timeout=30)
        client.run(_hold_memory, int(0.87 * 512 * MiB))  # above the 80 % pause, below the 95 % restart
        _wait_until_paused(client)
        with pytest.raises(MemoryLimitError, match="leave no room for data"):  # sizing a new job refuses at once
            fit_partitions(dataset_from_table(pd.DataFrame({"x": range(100)})), worker_memory(client))
        started = time.monotonic()
        with pytest.raises(MemoryLimitError) as caught:
            with memory_watchdog(client, stall_s=3, poll_s=0.25):
                client.submit(sum, [1, 2], pure=False).result()  # would wait forever
        waited = time.monotonic() - started
    message = str(caught.value)
    assert 3 <= waited < 20
    assert "Dask workers were paused for memory for" in message
    assert "of a 512 MiB memory limit per worker" in message and "80% pause threshold" in message
    assert "--memory-limit" in message and "\n" not in message


@pytest.mark.dask_cluster
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_jobs_api_train_job_that_cannot_fit_ends_failed_with_the_message(one_group, tmp_path):
    """`clustra api --memory-limit 768MiB`: the job fails (not hangs) and its error is the one line."""
    import shutil

    from fastapi.testclient import TestClient

    from jobs.api import create_app
    from jobs.settings import ServiceSettings
    from jobs_support import wait_job

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(one_group, data / "big.parquet")
    settings = ServiceSettings(
        store=str(tmp_path / "state" / "jobs.db"), data_roots=[str(data)], output_root=str(tmp_path / "outputs"),
        workers=1, memory_limit=WORKER_LIMIT,
    )
    with TestClient(create_app(settings)) as http:
        response = http.post("/v1/jobs", json={"kind": "train", "data": "big.parquet", "algorithms": ["kmeans"], "k": [2]})
        assert response.status_code == 201, response.text
        job = wait_job(http, response.json()["id"], timeout=50)
    assert job["state"] == "failed"
    assert "does not fit Dask workers with a memory limit of 768 MiB" in job["error"]
    assert re.search(r"a partition of [\d.]+ MiB decoded", job["error"]) and "\n" not in job["error"]


@pytest.mark.dask_cluster
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_jobs_service_frees_embedded_workers_left_paused_after_a_memory_failure(tmp_path):
    """A worker paused for good (memory nothing can spill) fails the job at once, then is restarted,
    so the next job does not inherit it."""
    from fastapi.testclient import TestClient

    from jobs.api import create_app
    from jobs.settings import ServiceSettings
    from jobs_support import wait_for, wait_job

    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"x": np.arange(200.0), "y": np.arange(200.0) % 7}).to_parquet(data / "small.parquet")
    settings = ServiceSettings(
        store=str(tmp_path / "state" / "jobs.db"), data_roots=[str(data)], output_root=str(tmp_path / "outputs"),
        workers=1, memory_limit="512MiB",
    )
    app = create_app(settings)
    with TestClient(app) as http:
        wait_for(lambda: http.get("/healthz").json()["dask"] == "ready", 40, "the embedded cluster")
        control = app.state.service.runner.dask._control
        control.run(_hold_memory, int(0.87 * 512 * MiB))
        _wait_until_paused(control)
        response = http.post("/v1/jobs", json={"kind": "train", "data": "small.parquet", "algorithms": ["kmeans"], "k": [2]})
        job = wait_job(http, response.json()["id"], timeout=30)
        assert job["state"] == "failed" and "leave no room for data" in job["error"]

        def restarted():
            lines = [line["text"] for line in http.get(f"/v1/jobs/{job['id']}/logs").json()["lines"]]
            return any(line.startswith("restarted Dask worker(s)") and "paused for memory" in line for line in lines)

        wait_for(restarted, 30, "the paused worker to be restarted")
        workers = list(control.scheduler_info()["workers"].values())
    assert [w.get("status") for w in workers] == ["running"]
