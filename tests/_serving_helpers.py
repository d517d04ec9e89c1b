"""Small trained models for the registry and serving tests (shared by test_registry / test_serving*)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from conftest import make_mixed_frame, write_hive

FEATURE_COLUMNS = ["spend", "visits", "plan", "is_member", "signup", "region"]


def train_run(root: Path, *, algorithms: tuple[str, ...] = ("kmeans", "gmm", "hdbscan"), k: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """Train a small sweep on the mixed dataset (Dask's threaded scheduler); return (data dir, run dir)."""
    from cluster_core.config import TrainConfig
    from cluster_core.data import read_dataset
    from cluster_core.runs import write_run
    from cluster_core.training import train_models

    data = write_hive(make_mixed_frame(600, seed=seed), root / "data", "region")
    config = TrainConfig(algorithms=list(algorithms), k=[k], seed=seed, exclude=["segment_truth"])
    result = train_models(read_dataset(str(data)), config)
    return data, write_run(result, root / "run")


SERVED_MODELS = ("kmeans", "gmm", "hdbscan")
SERVED_MODEL_DIRS = {"kmeans": "kmeans-k3", "gmm": "gmm-k3", "hdbscan": "hdbscan"}


def served_models(root: Path) -> dict:
    """One small sweep's KMeans, GMM and HDBSCAN models, published and loaded as the service loads them."""
    from cluster_core.registry import ModelRegistry
    from serving.assign import ServedModel

    _, run = train_run(root, algorithms=SERVED_MODELS)
    registry = ModelRegistry(root / "registry")
    out = {}
    for name in SERVED_MODELS:
        registry.publish(run / "models" / SERVED_MODEL_DIRS[name], name)
        out[name] = ServedModel(registry.load(name), registry.resolve(name))
    return out


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready records: NaN/None -> null, timestamps -> ISO strings, numpy scalars -> Python."""
    records = []
    for row in frame.to_dict(orient="records"):
        record = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
                record[key] = None
            elif isinstance(value, pd.Timestamp):
                record[key] = value.isoformat()
            elif hasattr(value, "item"):
                record[key] = value.item()
            else:
                record[key] = value
        records.append(record)
    return json.loads(json.dumps(records))


def record(**changes) -> dict:
    """One valid assignment record of the mixed customer table; a value "DROP" leaves the column out."""
    values = {"spend": 105.4, "visits": 8.9, "plan": "team", "is_member": False, "signup": "2024-08-25T17:00:00",
              "region": "south"}
    values.update(changes)
    return {k: v for k, v in values.items() if v != "DROP"}


# -- one running `clustra serve` shared by the serving test files ------------------------------
TOKEN = "s3cret-token"
MAX_BODY = 1 << 20
MAX_RECORDS = 2_000
START_TIMEOUT_S = 240
REFRESH_INTERVAL_S = 0.3


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_test_config(registry: str, port: int) -> dict:
    """Two applications on one Ray instance: ``open`` at ``/`` (no auth; the default shape: the ingress
    assigns) and ``secured`` at ``/secured`` (bearer token; a separate model deployment assigns)."""
    from serving.config import serve_config
    from serving.settings import IngressOptions, ModelOptions

    ingress = IngressOptions(max_body_bytes=MAX_BODY, max_records=MAX_RECORDS, refresh_interval_s=REFRESH_INTERVAL_S)
    common = dict(registry=registry, host="127.0.0.1", port=port, model_replicas=1, ingress_num_cpus=0.1,
                  ingress_options=ingress, model_options=ModelOptions(batch_wait_timeout_s=0.005))
    config = serve_config(model_num_cpus=0.4, **common)
    open_app = config["applications"][0]
    secured = serve_config(model_deployment=True, model_num_cpus=0.2, **common)["applications"][0]
    secured.update(name="secured", route_prefix="/secured")
    secured["args"]["auth_token"] = TOKEN
    open_app["name"] = "open"
    config["applications"].append(secured)
    return config


def start_service(root: Path):
    """Publish three models into a new registry under ``root`` and start `clustra serve --host 127.0.0.1` on it.

    A generator: yields ``{"client", "registry", "run", "data", "root", "process", "base_url"}`` once
    both applications answer ``/healthz``, stops the service with SIGINT when resumed.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from cluster_core.registry import ModelRegistry
    from serving.config import to_yaml

    data, run = train_run(root)
    registry = ModelRegistry(root / "registry")
    registry.publish(run / "models" / "kmeans-k3", "customers", alias="production")
    registry.publish(run / "models" / "gmm-k3", "mixture")
    registry.publish(run / "models" / "hdbscan", "density")
    port = free_port()
    config_file = root / "serve.yaml"
    config_file.write_text(to_yaml(serve_test_config(registry.url, port)))
    log_path = root / "serve.log"
    log = open(log_path, "w")
    env = dict(os.environ, CLUSTRA_DEVICE="cpu", RAY_DEDUP_LOGS="0")
    process = subprocess.Popen([sys.executable, "-m", "clustra.cli", "serve", "--config", str(config_file), "--host", "127.0.0.1",
                                "--num-cpus", "2"], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=60)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"clustra serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"clustra serve not ready after {START_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}")
            try:
                if all(client.get(p).status_code == 200 for p in ("/healthz", "/secured/healthz")):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield {"client": client, "registry": registry, "run": run, "data": data, "root": root, "process": process,
               "base_url": base}
    finally:
        client.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
