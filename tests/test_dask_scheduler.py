"""`clustra train --scheduler` against a real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_mixed_frame, write_hive

pytestmark = pytest.mark.dask_cluster


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler_address(tmp_path_factory):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1")
    logs = tmp_path_factory.mktemp("dask-logs")
    procs = [
        subprocess.Popen(
            [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT, env=env,
        )
    ]
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                 "--name", f"worker-{i}", "--memory-limit", "2GiB"],
                stdout=open(logs / f"worker-{i}.log", "w"), stderr=subprocess.STDOUT, env=env,
            )
        )
    from distributed import Client

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = Client(address, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        client.wait_for_workers(2, timeout=60)
        yield address, client
        client.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_train_and_apply_on_an_existing_cluster(scheduler_address, tmp_path):
    address, client = scheduler_address
    data = write_hive(make_mixed_frame(500, seed=3), tmp_path / "data", "region")
    run = tmp_path / "run"
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    cmd = [sys.executable, "-m", "clustra.cli"]
    train = subprocess.run([*cmd, "train", str(data), "--out", str(run), "--k", "2,3", "--scheduler", address],
                           capture_output=True, text=True, timeout=300, env=env)
    assert train.returncode == 0, train.stderr
    assert json.loads((run / "leaderboard.json").read_text())["best"]
    out = tmp_path / "scored"
    apply = subprocess.run([*cmd, "apply", str(run), str(data), "--out", str(out), "--scheduler", address],
                           capture_output=True, text=True, timeout=300, env=env)
    assert apply.returncode == 0, apply.stderr
    prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert "featurize_split" in prefixes and "fit_and_evaluate_arrays" in prefixes
    assert any(p.startswith("_score_partition") or "score" in p for p in prefixes)


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    data = tmp_path / "d.parquet"
    make_mixed_frame(50).to_parquet(data)
    port = _free_port()
    result = subprocess.run(
        [sys.executable, "-m", "clustra.cli", "train", str(data), "--out", str(tmp_path / "run"),
         "--scheduler", f"tcp://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert f"cannot connect to the Dask scheduler at 'tcp://127.0.0.1:{port}'" in result.stderr


@pytest.mark.parametrize("command", ["train", "apply", "demo"])
def test_every_command_that_starts_work_honours_the_scheduler_variable(scheduler_address, tmp_path, command):
    """CLUSTRA_DASK_SCHEDULER stands in for --scheduler in train, apply and demo (and `clustra api`)."""
    address, client = scheduler_address
    data = tmp_path / "data.parquet"
    make_mixed_frame(300, seed=4).to_parquet(data)
    env = dict(os.environ, CLUSTRA_DEVICE="cpu", CLUSTRA_DASK_SCHEDULER=address)
    cmd = [sys.executable, "-m", "clustra.cli"]
    run = tmp_path / "run"
    args = {
        "train": args_for_train(data, run),
        "apply": ["apply", str(run), str(data), "--out", str(tmp_path / "scored")],
        "demo": ["demo", "--out", str(tmp_path / "demo")],
    }[command]
    if command == "apply":
        setup = subprocess.run([*cmd, *args_for_train(data, run)], capture_output=True, text=True, timeout=300, env=env)
        assert setup.returncode == 0, setup.stderr
    before = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.clients))
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert f"connecting to {address}" in result.stderr and "starting Dask" not in result.stderr
    assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.clients)) == before  # it left again


def args_for_train(data: Path, run: Path) -> list[str]:
    return ["train", str(data), "--out", str(run), "--k", "2", "--algorithms", "kmeans"]
