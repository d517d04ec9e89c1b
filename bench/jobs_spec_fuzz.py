"""The single-field fuzz of job specs (issue 15), re-run against a live ``clustra api`` on 127.0.0.1.

Every field of a train spec is varied alone on a minimal valid spec:

* invalid values (wrong type, out of range, non-finite, NUL bytes, 5,000-character paths,
  paths outside the roots, columns the data lacks, ...) must get a 4xx at submit (422 or, for
  a path outside the roots, 403), and nothing is queued;
* valid values must be accepted (201) and the job must succeed.

The numeric ranges are read from the spec's JSON schema, so a bound added to
:class:`cluster_core.config.TrainConfig` is fuzzed at its edges without a change here.

Usage: ``.venv/bin/python bench/jobs_spec_fuzz.py`` (about 2 minutes on 2 cores; results in
``bench/out/jobs_spec_fuzz.json``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from _common import ROOT, machine, write_result

BASE = {"kind": "train", "data": "customers.parquet", "algorithms": ["kmeans"], "k": [3], "max_iter": 50}
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")

# field -> values a user may legitimately send (each job must succeed)
VALID: dict[str, list[Any]] = {
    "algorithms": [["gmm"], ["kmeans", "gmm-diag"]], "k": [[2], [2, 4]], "max_k": [3, 10_000],
    "include": [["spend", "visits"]], "columns": [["spend", "plan"]], "exclude": [["plan"], []],
    "kinds": [{"plan": "categorical"}], "weights": [{"spend": 0.5}, {"visits": 1e6}], "seed": [0, 2**32 - 1, 7],
    "validation_fraction": [0.5, 0.01], "feature_sample_rows": [10, 10**9], "silhouette_sample": [100],
    "silhouette_reference": [0], "kmeans_n_init": [1, 5], "gmm_n_init": [1], "gmm_reg_covar": [0.0, 1e-2],
    "max_iter": [1, 100_000], "local_fit_max_bytes": [0], "persist": ["never", "always"], "device": ["cpu", "auto"],
    "text_method": ["tfidf"], "text_model": ["all-MiniLM-L6-v2"], "image_root": ["pictures"], "balance": ["none"],
    "kind_weights": [{"numeric": 2.0}], "reduce": ["pca"], "reduce_components": [2], "stats_sample_rows": [10],
    "view_method": ["pca"], "view_sample_rows": [0], "gallery_size": [0], "name": ["fuzz", ""],
    "timeout_s": [600], "output": ["fuzz/out-{n}"], "geo_pairs": [[]], "text_batch_size": [1],
    "text_threads": [1], "hdbscan_min_cluster_size": [5], "hdbscan_min_samples": [1], "hdbscan_max_fit_samples": [100],
    "version": [1],
}

LONG_PATH = "p" * 5000
# field -> values that cannot run (each must be refused at submit), beyond the generated range edges
INVALID: dict[str, list[Any]] = {
    "algorithms": [[], ["spectral"], "kmeans", [""], ["x" * 300]], "k": [[], [1], [0], [-3], "3", [10**20]],
    "include": [["nope"], [""], ["spend\x00"], "spend", [LONG_PATH]], "columns": [["nope"]],
    "exclude": [["nope"], [5], [""]], "kinds": [{"nope": "numeric"}, {"spend": ""}, ["spend"], {"plan": "bogus"}],
    "weights": [{"spend": -1}, {"spend": 0}, {"spend": 1e308}, {"spend": "NaN"}, {"spend": "Infinity"},
                {"nope": 1.0}, {"spend": "lots"}, [1]],
    "kind_weights": [{"text": -1}, {"text": 1e300}, {"text": "NaN"}, {"colour": 2.0}],
    "device": ["x", "", "CUDA", "cuda:0", "gpu", 0], "persist": ["sometimes", ""], "text_method": ["bert"],
    "balance": ["some"], "reduce": ["tsne"], "view_method": ["umap"],
    "text_model": ["a\x00b", LONG_PATH, "/etc/passwd", "../secret", "models/x.bin"],
    "image_model": ["a\x00b", LONG_PATH, "/etc/passwd", "encoder.onnx"], "image_root": ["/etc", "../", LONG_PATH,
                                                                                       "nope", "a\x00"],
    "output": ["run\x00x", LONG_PATH, "/etc/x", "../x", "", "   "], "data": ["", "nope", "/etc/passwd", "a\x00"],
    "geo_pairs": [["lat"], ["a:b"], "lat:lon"], "name": ["n" * 201, 5], "timeout_s": [0, -1, 1e308, "NaN"],
    "version": [2, 0], "colour": ["red"],
}
TYPE_ERRORS_INT = [1.5, "x", [], {}, "true", 1e20, 2**64]
TYPE_ERRORS_FLOAT = ["x", [], {}, "NaN", "Infinity", "1e400"]


def table(n: int, seed: int) -> pd.DataFrame:
    """Three segments in two numbers and a category."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 3, n)
    return pd.DataFrame({"spend": segment * 40 + rng.normal(100, 10, n), "visits": segment * 3 + rng.normal(3, 1, n),
                         "plan": np.array(["basic", "pro", "team"])[segment]})


def range_edges() -> dict[str, list[Any]]:
    """Values just outside each numeric field's documented range (from the spec's JSON schema)."""
    from jobs.specs import TrainSpec

    edges: dict[str, list[Any]] = {}
    for name, prop in TrainSpec.model_json_schema()["properties"].items():
        options = prop.get("anyOf", [prop])
        for option in options:
            kind = option.get("type")
            if kind not in ("integer", "number"):
                continue
            values = edges.setdefault(name, [])
            if "minimum" in option:
                values.append(option["minimum"] - 1)
            if "exclusiveMinimum" in option:
                values.append(option["exclusiveMinimum"])
            if "maximum" in option:
                values.append(option["maximum"] + 1 if kind == "integer" else option["maximum"] * 10 + 1)
            if "exclusiveMaximum" in option:
                values.append(option["exclusiveMaximum"])
            values.extend(TYPE_ERRORS_INT if kind == "integer" else TYPE_ERRORS_FLOAT)
    return edges


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_api(root: Path) -> tuple[subprocess.Popen, httpx.Client]:
    port = free_port()
    env = dict(os.environ, CLUSTRA_DEVICE="cpu", PYTHONPATH=str(ROOT), CLUSTRA_REGISTRY=str(root / ".clustra" / "reg"))
    env.pop("CLUSTRA_AUTH_TOKEN", None)
    command = [sys.executable, "-m", "clustra.cli", "api", "--port", str(port), "--store",
               str(root / ".clustra" / "jobs.db"), "--data-root", str(root), "--model-root", str(root / "models"),
               "--workers", "2", "--max-concurrent-jobs", "2", "--log-level", "warning"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(root / "api.log", "w"), env=env,
                            start_new_session=True)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if http.get("/healthz").json()["dask"] == "ready":
                return proc, http
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"clustra api exited: {(root / 'api.log').read_text()}")
        time.sleep(0.2)
    raise SystemExit("clustra api did not become ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-timeout", type=float, default=120.0, help="seconds a valid job may take")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clustra-fuzz-") as tmp:
        root = Path(tmp)
        table(1500, seed=3).to_parquet(root / "customers.parquet", index=False)
        (root / "pictures").mkdir()
        (root / "models").mkdir()
        (root / "encoder.onnx").write_bytes(b"weights outside the model root")
        proc, http = start_api(root)
        try:
            invalid = {**{k: list(v) for k, v in range_edges().items()}}
            for field, values in INVALID.items():
                invalid.setdefault(field, []).extend(values)
            refused, accepted_invalid, statuses = 0, [], Counter()
            for field, values in invalid.items():
                for value in values:
                    response = http.post("/v1/jobs", json={**BASE, field: value})
                    statuses[response.status_code] += 1
                    if response.status_code in (403, 422) and response.json().get("field", "").split(".")[0].split(
                            "[")[0] in (field, "include" if field == "columns" else field):
                        refused += 1
                    else:
                        accepted_invalid.append({"field": field, "value": repr(value)[:80],
                                                 "status": response.status_code, "body": response.text[:200]})
                        if response.status_code == 201:
                            http.post(f"/v1/jobs/{response.json()['id']}/cancel")
            n_invalid = sum(len(v) for v in invalid.values())
            jobs, rejected_valid = [], []
            for n, (field, value) in enumerate((f, v) for f, vs in VALID.items() for v in vs):
                spec = {**BASE, field: value.format(n=n) if isinstance(value, str) and "{n}" in value else value}
                if field.startswith("hdbscan"):
                    spec["algorithms"] = ["hdbscan"]
                    spec.pop("k")
                if field == "reduce_components":
                    spec["reduce"] = "pca"
                response = http.post("/v1/jobs", json=spec)
                if response.status_code == 201:
                    jobs.append((field, spec[field], response.json()["id"]))
                else:
                    rejected_valid.append({"field": field, "value": repr(spec[field]), "status": response.status_code,
                                           "body": response.text[:200]})
            outcomes, failed = Counter(), []
            for field, value, job_id in jobs:
                deadline = time.monotonic() + args.job_timeout
                while True:
                    job = http.get(f"/v1/jobs/{job_id}").json()
                    if job["state"] in TERMINAL or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                outcomes[job["state"]] += 1
                if job["state"] != "succeeded":
                    failed.append({"field": field, "value": repr(value), "state": job["state"], "error": job["error"]})
            health = http.get("/healthz").status_code
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
    result = {
        "invalid_values": n_invalid, "refused_at_submit": refused, "invalid_not_refused": accepted_invalid,
        "statuses_of_invalid": dict(statuses), "valid_values": sum(len(v) for v in VALID.values()),
        "valid_accepted": len(jobs), "valid_rejected": rejected_valid, "accepted_jobs": dict(outcomes),
        "accepted_jobs_not_succeeded": failed, "healthz_after": health, "fields": len(set(invalid) | set(VALID)),
        "seconds": round(time.monotonic() - started, 1), "machine": machine(),
    }
    path = write_result("jobs_spec_fuzz", result)
    print(f"fields fuzzed: {result['fields']}")
    print(f"invalid values: {n_invalid}, refused at submit (403/422 naming the field): {refused}; statuses "
          f"{dict(statuses)}")
    for item in accepted_invalid:
        print(f"  NOT REFUSED: {item}")
    print(f"valid values: {result['valid_values']}, accepted: {len(jobs)}, accepted jobs by end state: {dict(outcomes)}")
    for item in rejected_valid + failed:
        print(f"  PROBLEM: {item}")
    print(f"{result['seconds']} s; results in {path}")
    if accepted_invalid or rejected_valid or failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
