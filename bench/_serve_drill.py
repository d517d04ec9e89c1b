"""Shared parts of the serving drills: a small registry, `clustra serve` on loopback, paced load (not part of the library)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _common import ROOT
from serve_load import customers


def prepare(workdir: Path, n_records: int = 200) -> dict:
    """KMeans (k=4) and GMM (k=4) trained on 4,000 rows, published as ``customers`` v1 and v2; ``n_records`` request records."""
    from cluster_core.config import TrainConfig
    from cluster_core.data import read_dataset
    from cluster_core.registry import ModelRegistry
    from cluster_core.runs import write_run
    from cluster_core.training import train_models

    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    customers(4_000).to_parquet(data / "part-0.parquet", index=False)
    result = train_models(read_dataset(str(data)), TrainConfig(algorithms=["kmeans", "gmm"], k=[4], seed=0))
    run = write_run(result, workdir / "run", overwrite=True)
    registry = ModelRegistry(workdir / "registry")
    registry.publish(run / "models" / "kmeans-k4", "customers", alias="live")
    registry.publish(run / "models" / "gmm-k4", "customers")
    records = json.loads(customers(n_records, seed=1).to_json(orient="records", date_format="iso"))
    return {"registry": registry, "run": run, "records": records}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """`clustra serve --host 127.0.0.1` in a subprocess (its log in ``workdir/serve.log``)."""

    def __init__(self, workdir: Path, registry: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "serve.log"
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONPATH=str(ROOT), CLUSTRA_DEVICE="cpu", RAY_DEDUP_LOGS="0")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clustra.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--registry", registry, "--num-cpus", "2", *extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def wait_ready(self, model: str, timeout_s: float = 240) -> float:
        started = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while time.monotonic() - started < timeout_s:
                if self.process.poll() is not None:
                    raise RuntimeError(f"clustra serve exited:\n{self.log_path.read_text()[-3000:]}")
                try:
                    if client.get(f"/v1/models/{model}").status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(1)
        raise RuntimeError(f"clustra serve not ready after {timeout_s}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@dataclass
class Answer:
    sent: float
    done: float
    status: int  # 0: no HTTP answer (connection error)
    version: int | None = None
    retry_after: str | None = None


@dataclass
class Load:
    """``rate`` requests per second on ``path`` from ``workers`` threads, each request paced on a shared clock."""

    url: str
    path: str
    body: dict
    rate: float = 20.0
    workers: int = 4
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.workers)]

    def _run(self, index: int) -> None:
        interval = self.workers / self.rate
        next_at = time.monotonic() + index / self.rate
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self._stop.is_set():
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
                sent = time.monotonic()
                try:
                    response = client.post(self.path, json=self.body)
                except httpx.HTTPError:
                    self.answers.append(Answer(sent, time.monotonic(), 0))
                    continue
                version = response.json().get("version") if response.status_code == 200 else None
                self.answers.append(Answer(sent, time.monotonic(), response.status_code, version,
                                           response.headers.get("retry-after")))

    def start(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return sorted(self.answers, key=lambda a: a.sent)


def metric(url: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one counter from ``/metrics``."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name):]] = float(value)
    return out
