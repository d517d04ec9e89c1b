"""`clustra jobs ...` against a real uvicorn server on 127.0.0.1 (bearer token on), and `clustra api` errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

import pytest

from conftest import make_mixed_frame, write_hive
from clustra.cli import main
from clustra.cli.jobs import ProgressBar
from jobs.store import JobStore
from jobs_support import free_port, wait_for

TOKEN = "cli-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory, dask_client):
    """The jobs API served by uvicorn in a thread (jobs on the suite's LocalCluster)."""
    import httpx
    import uvicorn

    from jobs.api import create_app
    from jobs.settings import ServiceSettings

    root = tmp_path_factory.mktemp("jobs-cli")
    data = root / "data"
    write_hive(make_mixed_frame(300, seed=4), data / "customers", "region")
    make_mixed_frame(60_000, seed=6).to_parquet(data / "big.parquet", index=False)
    settings = ServiceSettings(store=str(root / "jobs.db"), data_roots=[str(data)], scheduler=dask_client.scheduler.address,
                               auth_token=TOKEN)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: uv.started, 60, "uvicorn to start")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    wait_for(lambda: httpx.get(f"{url}/healthz").json()["dask"] == "ready", 60, "the runner to reach Dask")
    yield url, root, headers
    uv.should_exit = True
    thread.join(60)


@pytest.fixture
def clustra(server, monkeypatch, capsys):
    """Run ``clustra ARGS`` in process against the server; (exit status, stdout, stderr)."""
    url, _, _ = server
    monkeypatch.setenv("CLUSTRA_SERVER", url)
    monkeypatch.setenv("CLUSTRA_AUTH_TOKEN", TOKEN)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(args))
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(scope="module")
def spec_file(server):
    _, root, _ = server
    path = root / "spec.yaml"
    path.write_text("kind: train\ndata: customers\nalgorithms: [kmeans]\nk: [3, 5]\nname: from-cli\n")
    return path


def test_submit_wait_status_logs_leaderboard_list(clustra, spec_file):
    status, out, err = clustra("jobs", "submit", str(spec_file), "--wait", "--interval", "0.2")
    assert status == 0, err
    job_id = out.strip()
    assert len(job_id) == 12
    assert f"{job_id} [" in err and "100% succeeded" in err  # the progress bar, one line per change (not a tty)
    assert "succeeded, best model kmeans-k" in err

    status, out, _ = clustra("jobs", "status", job_id)
    assert status == 0 and f"job {job_id} (train, from-cli): succeeded, 100%" in out and "best" in out
    status, out, _ = clustra("jobs", "status", job_id, "--json")
    assert json.loads(out)["state"] == "succeeded"

    status, out, _ = clustra("jobs", "logs", job_id)
    assert status == 0 and "training 2 model(s)" in out and out.splitlines()[-1] == "succeeded"

    status, out, _ = clustra("jobs", "leaderboard", job_id)
    assert status == 0 and "kmeans-k3" in out and "kmeans-k5" in out and "best model:" in out

    status, out, _ = clustra("jobs", "list", "--state", "succeeded")
    assert status == 0 and job_id in out and "from-cli" in out
    status, out, _ = clustra("jobs", "list", "--state", "queued")
    assert job_id not in out

    status, _, err = clustra("jobs", "wait", job_id)
    assert status == 0 and f"job {job_id} succeeded" in err

    status, out, err = clustra("jobs", "rerun", job_id, "--model", "kmeans-k3", "--k", "4", "--wait", "--interval", "0.2")
    assert status == 0, err
    rerun_id = out.strip()
    status, out, _ = clustra("jobs", "status", rerun_id, "--json")
    assert json.loads(out)["parent_id"] == job_id and json.loads(out)["spec"]["k"] == [4]

    status, _, err = clustra("jobs", "cancel", job_id)
    assert status == 2 and f"clustra: error: job {job_id} has already finished (succeeded)" in err


def test_submit_json_and_wait_json(clustra, spec_file):
    status, out, _ = clustra("jobs", "submit", str(spec_file), "--json")
    job = json.loads(out)
    assert status == 0 and job["state"] in ("queued", "running") and job["name"] == "from-cli"
    status, out, err = clustra("jobs", "wait", job["id"], "--json", "--interval", "0.2")
    assert status == 0 and json.loads(out)["state"] == "succeeded" and "100% succeeded" in err


def test_wait_timeout_then_cancel(clustra, server):
    _, root, _ = server
    spec = root / "long.json"
    spec.write_text(json.dumps({"kind": "train", "data": "big.parquet", "algorithms": ["gmm"], "k": [2, 3, 4, 5, 6, 7, 8]}))
    status, out, _ = clustra("jobs", "submit", str(spec))
    assert status == 0
    job_id = out.strip()
    status, _, err = clustra("jobs", "wait", job_id, "--timeout", "1", "--interval", "0.2")
    assert status == 3 and f"job {job_id} is still" in err
    status, out, _ = clustra("jobs", "cancel", job_id)
    assert status == 0 and out.startswith(f"job {job_id}: ")
    status, _, err = clustra("jobs", "wait", job_id, "--timeout", "60", "--interval", "0.2")
    assert status == 1 and f"job {job_id} cancelled: cancelled" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"kind": "train", "data": "customers", "k": [1]}', "clustra: error: k: cluster counts must be >= 2, got [1]"),
        ('{"kind": "train", "data": "../etc"}', "clustra: error: data: '../etc' contains '..'"),
        ('{"kind": "train"}', "clustra: error: data: data is required"),
        ("kind: [", "is not valid YAML or JSON"),
    ],
)
def test_bad_specs_are_one_line_errors(clustra, server, text, message):
    _, root, _ = server
    spec = root / "bad.yaml"
    spec.write_text(text)
    status, out, err = clustra("jobs", "submit", str(spec))
    assert status == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_or_wrong_token(clustra, monkeypatch):
    monkeypatch.delenv("CLUSTRA_AUTH_TOKEN")
    status, _, err = clustra("jobs", "list")
    assert status == 2 and "clustra: error: this service requires 'Authorization: Bearer TOKEN'" in err
    status, _, err = clustra("jobs", "list", "--token", "wrong")
    assert status == 2 and "the bearer token is not valid" in err


def test_unknown_job_and_unreachable_server(clustra):
    status, _, err = clustra("jobs", "status", "nope")
    assert status == 2 and "clustra: error: no job with id 'nope'" in err
    port = free_port()
    status, _, err = clustra("jobs", "list", "--server", f"http://127.0.0.1:{port}")
    assert status == 2 and f"clustra: error: cannot reach the jobs API at http://127.0.0.1:{port}" in err


def test_progress_bar_redraws_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ProgressBar(stream)
    job = {"id": "abc", "state": "running", "progress": 0.5, "step": "training 4 model(s)"}
    bar.update(job)
    bar.update(job)  # unchanged: not redrawn
    bar.update({**job, "state": "succeeded", "progress": 1.0})
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[###############---------------]  50% running   training 4 model(s)" in text
    assert "[##############################] 100% succeeded" in text


def _clustra_process(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    env.pop("CLUSTRA_AUTH_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "clustra.cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_api_refuses_a_store_in_use_and_a_busy_port(tmp_path):
    held = JobStore(tmp_path / "jobs.db")
    try:
        result = _clustra_process("api", "--port", "0", "--store", str(tmp_path / "jobs.db"), "--data-root", str(tmp_path))
    finally:
        held.close()
    assert result.returncode == 2
    assert "clustra: error: the job store" in result.stderr and "is in use by another clustra api process" in result.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _clustra_process("api", "--port", str(port), "--store", str(tmp_path / "other.db"))
    assert result.returncode == 2 and f"clustra: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    result = _clustra_process("api", "--port", "0", "--store", str(tmp_path / "third.db"), "--data-root",
                              str(tmp_path / "missing"))
    assert result.returncode == 2 and "clustra: error: data root" in result.stderr and "is not a directory" in result.stderr


def test_api_help_lists_the_contract_flags():
    result = _clustra_process("api", "--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--store", "--data-root", "--scheduler", "--output-root", "--auth-token",
                 "--max-concurrent-jobs", "--max-request-bytes"):
        assert flag in result.stdout
    result = _clustra_process("jobs", "--help")
    for command in ("submit", "list", "status", "cancel", "logs", "wait", "leaderboard", "rerun"):
        assert command in result.stdout


@pytest.fixture(scope="module")
def trained_job(server):
    """A succeeded train job (kmeans, k 2 and 3); (id, run directory)."""
    import httpx

    from jobs_support import wait_job

    url, _, headers = server
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        job = http.post("/v1/jobs", json={"kind": "train", "data": "customers", "algorithms": ["kmeans"], "k": [2, 3],
                                          "name": "insights-cli"}).json()
        job = wait_job(http, job["id"])
    assert job["state"] == "succeeded", job
    return job["id"], job["result"]["run_dir"]


def test_insights_of_a_jobs_model(clustra, trained_job):
    from pathlib import Path

    job_id, run_dir = trained_job
    recommended = json.loads((Path(run_dir) / "leaderboard.json").read_text())["recommended"]
    status, out, err = clustra("jobs", "insights", job_id)
    assert status == 0, err
    assert f"using the recommended model of job {job_id}: {recommended}" in err
    assert out.startswith(f"insights of {recommended} (on ") and "observations:" in out and "feature impact" in out
    impact = json.loads((Path(run_dir) / "models" / "kmeans-k3" / "insights.json").read_text())["feature_impact"]
    assert out.index(f"\n{impact[0]['column']} ") < out.index(f"\n{impact[-1]['column']} ")  # largest impact first
    status, out, err = clustra("jobs", "insights", job_id, "--model", "kmeans-k3", "--json")
    assert status == 0 and err == ""
    assert json.loads(out) == json.loads((Path(run_dir) / "models" / "kmeans-k3" / "insights.json").read_text())


def test_rename_a_cluster_of_a_jobs_model(clustra, trained_job):
    from pathlib import Path

    job_id, run_dir = trained_job
    status, out, err = clustra("jobs", "rename", job_id, "--model", "kmeans-k2", "--cluster", "1", "--name", "FR visitors")
    assert status == 0, err
    assert out.strip() == f"job {job_id}, model kmeans-k2: cluster 1 is now 'FR visitors'"
    info = json.loads((Path(run_dir) / "models" / "kmeans-k2" / "model.json").read_text())
    assert [(c["name"], c["name_source"]) for c in info["clusters"] if c["cluster_id"] == 1] == [("FR visitors", "user")]
    status, out, _ = clustra("jobs", "insights", job_id, "--model", "kmeans-k2")
    assert status == 0 and "FR visitors" in out and "renamed" in out
    status, out, _ = clustra("jobs", "rename", job_id, "--model", "kmeans-k2", "--cluster", "0", "--name", "Prospects", "--json")
    assert status == 0 and json.loads(out) == {"job_id": job_id, "model_id": "kmeans-k2", "cluster_id": 0,
                                               "name": "Prospects", "name_source": "user"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "kmeans-k2", "--cluster", "5", "--name", "x"), "cluster=5 is not a cluster of model 'kmeans-k2' (expected 0..1)"),
        (("--model", "gmm-k9", "--cluster", "0", "--name", "x"), "has no model 'gmm-k9'; its models:"),
        (("--model", "kmeans-k2", "--cluster", "0", "--name", " "), "name"),
    ],
    ids=["unknown-cluster", "unknown-model", "blank-name"],
)
def test_rename_errors_are_one_line(clustra, trained_job, args, message):
    status, _, err = clustra("jobs", "rename", trained_job[0], *args)
    assert status == 2 and err.startswith("clustra: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_insights_of_an_unknown_job_or_model(clustra, trained_job):
    status, _, err = clustra("jobs", "insights", "nope")
    assert status == 2 and "clustra: error: no job with id 'nope'" in err
    status, _, err = clustra("jobs", "insights", trained_job[0], "--model", "gmm-k9")
    assert status == 2 and "gmm-k9" in err and len(err.strip().splitlines()) == 1


def test_list_reruns_of_a_job_and_page_through(clustra, trained_job):
    job_id = trained_job[0]
    status, out, err = clustra("jobs", "rerun", job_id, "--k", "4", "--wait", "--interval", "0.2")
    assert status == 0, err
    rerun_id = out.strip()
    status, out, _ = clustra("jobs", "list", "--parent", job_id, "--json")
    assert status == 0 and [j["id"] for j in json.loads(out)["jobs"]] == [rerun_id]
    status, out, _ = clustra("jobs", "list", "--limit", "1", "--json")
    newest = json.loads(out)
    assert newest["count"] == 1 and newest["total"] >= 2
    status, out, _ = clustra("jobs", "list", "--limit", "1", "--offset", "1", "--json")
    assert json.loads(out)["jobs"][0]["id"] != newest["jobs"][0]["id"]
