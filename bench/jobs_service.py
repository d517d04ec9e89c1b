"""The jobs service's overhead, side by side with the library it wraps.

* per job: the same train (and apply) run through ``POST /v1/jobs`` + polling, against the
  direct library calls ``clustra train`` makes (``read_dataset`` + ``train_models`` +
  ``write_run``), both on one warm 2-worker LocalCluster;
* submissions: 200 ``POST /v1/jobs`` from 50 threads (accepted per second, latency);
* cancel: from ``POST .../cancel`` to the job ``cancelled`` and to the scheduler holding no task.

Usage: ``.venv/bin/python bench/jobs_service.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from _common import machine, write_result


def table(n: int, seed: int) -> pd.DataFrame:
    """Four segments in two numbers, a category and a flag."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 4, n)
    return pd.DataFrame({
        "spend": segment * 40 + rng.normal(100, 10, n),
        "visits": segment % 2 * 6 + rng.normal(3, 1, n),
        "plan": np.array(["basic", "pro", "team", "free"])[segment],
        "member": segment > 1,
    })


def write_data(root: Path) -> None:
    for name, n in (("small", 2_000), ("medium", 100_000), ("long", 150_000)):
        folder = root / name
        folder.mkdir(parents=True)
        frame = table(n, seed=n)
        for i, start in enumerate(range(0, n, n // 4)):
            frame.iloc[start:start + n // 4].to_parquet(folder / f"part-{i}.parquet", index=False)


def direct_train(client, data: Path, out: Path, spec: dict) -> float:
    from cluster_core.config import TrainConfig
    from cluster_core.data import read_dataset
    from cluster_core.runs import write_run
    from cluster_core.training import train_models

    started = time.perf_counter()
    config = TrainConfig(**{k: v for k, v in spec.items() if k not in ("kind", "data")})
    result = train_models(read_dataset(str(data)), config, client=client)
    write_run(result, out)
    return time.perf_counter() - started


def service_job(http, spec: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    job_id = http.post("/v1/jobs", json=spec).json()["id"]
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return time.perf_counter() - started, job
        time.sleep(0.02)


def serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


def main() -> None:
    import httpx

    from jobs.api import create_app
    from cluster_core.engine import dask_client
    from jobs.settings import ServiceSettings

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clustra-jobs-bench-"))
    data = root / "data"
    write_data(data)
    rows = []
    with dask_client(n_workers=2) as client:
        settings = ServiceSettings(store=str(root / "jobs.db"), data_roots=[str(data)], scheduler=client.scheduler.address,
                                   max_concurrent_jobs=1, max_queued_jobs=10_000)
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server, thread = serve(create_app(settings), port)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        while http.get("/healthz").json()["dask"] != "ready":
            time.sleep(0.1)
        for name, spec in (
            ("small", {"kind": "train", "data": "small", "algorithms": ["kmeans"], "k": [3, 4, 5]}),
            ("medium", {"kind": "train", "data": "medium", "algorithms": ["kmeans", "gmm"], "k": [3, 4, 5]}),
        ):
            direct_train(client, data / name, root / f"warm-{name}", spec)  # warm the workers
            direct, service = [], []
            for i in range(args.repeats):  # interleaved, so both see the same machine load
                direct.append(direct_train(client, data / name, root / f"direct-{name}-{i}", spec))
                seconds, job = service_job(http, spec)
                assert job["state"] == "succeeded", job
                service.append(seconds)
            d, s = statistics.median(direct), statistics.median(service)
            rows.append({"case": f"train {name} ({spec['algorithms']} x k={spec['k']})", "direct_s": d, "service_s": s,
                         "ratio": s / d, "overhead_s": s - d})

        # submissions: accepted per second, latency
        def post(i: int) -> float:
            started = time.perf_counter()
            response = http.post("/v1/jobs", json={"kind": "train", "data": "small", "k": [3], "name": f"s{i}"})
            assert response.status_code == 201
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(50) as pool:
            latencies = sorted(pool.map(post, range(200)))
        elapsed = time.perf_counter() - started
        submissions = {"n": 200, "threads": 50, "per_second": 200 / elapsed, "p50_ms": 1000 * latencies[100],
                       "p99_ms": 1000 * latencies[197]}
        queued = [j["id"] for j in http.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
                  if j["state"] in ("queued", "running")]
        for job_id in queued:
            http.post(f"/v1/jobs/{job_id}/cancel")
        while http.get("/v1/jobs", params={"state": "running"}).json()["total"]:
            time.sleep(0.1)

        # cancel latency on a long sweep, once it trains
        job_id = http.post("/v1/jobs", json={"kind": "train", "data": "long", "algorithms": ["kmeans", "gmm"],
                                             "k": [2, 3, 4, 5, 6, 7, 8], "kmeans_n_init": 5}).json()["id"]
        while not (http.get(f"/v1/jobs/{job_id}").json()["step"] or "").startswith("training"):
            time.sleep(0.02)
        started = time.perf_counter()
        http.post(f"/v1/jobs/{job_id}/cancel")
        while http.get(f"/v1/jobs/{job_id}").json()["state"] != "cancelled":
            time.sleep(0.01)
        to_state = time.perf_counter() - started
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            time.sleep(0.01)
        cancel = {"to_cancelled_s": to_state, "to_no_scheduler_task_s": time.perf_counter() - started}
        http.close()
        server.should_exit = True
        thread.join(60)

    print("| case | direct library (s) | through the jobs API (s) | ratio | overhead (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['direct_s']:.2f} | {r['service_s']:.2f} | {r['ratio']:.2f}x | {r['overhead_s']:+.2f} |")
    print(f"\nsubmissions: {submissions['n']} from {submissions['threads']} threads: {submissions['per_second']:.0f}/s, "
          f"latency p50 {submissions['p50_ms']:.0f} ms, p99 {submissions['p99_ms']:.0f} ms")
    print(f"cancel of a training job: cancelled after {cancel['to_cancelled_s']:.2f} s, "
          f"scheduler empty after {cancel['to_no_scheduler_task_s']:.2f} s")
    info = machine()
    print(f"\n(median of {args.repeats}; {info['cpu_count']} cores, load {info['load_average_1m']:.1f})")
    write_result("jobs_service", {"machine": info, "train": rows, "submissions": submissions, "cancel": cancel,
                                  "repeats": args.repeats})


if __name__ == "__main__":
    main()
