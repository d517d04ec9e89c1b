"""A jobs API ``kind: drift`` spec: ``clustra drift`` as a job (model by job id or path, batch under a data root).

A planted shift (one segment doubled, one feature moved by one standard deviation) ends with
verdict ``drift``; an unshifted sample of the same data with verdict ``pass``. The report is
the job's result and ``OUTPUT/drift.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs_support import CheckedClient, OpenAPIChecker, wait_job
from test_drift import make_segments

JOB_TIMEOUT_S = 180


@dataclass
class Api:
    http: CheckedClient
    data: Path
    train: dict


@pytest.fixture(scope="module")
def api(tmp_path_factory, dask_client):
    root = tmp_path_factory.mktemp("jobs-drift")
    data = root / "data"
    data.mkdir()
    make_segments(3000, 0).to_parquet(data / "train.parquet", index=False)
    make_segments(3000, 2, double=0, shift="a").to_parquet(data / "shifted.parquet", index=False)
    make_segments(3000, 4).to_parquet(data / "same.parquet", index=False)
    settings = ServiceSettings(store=str(root / "state" / "jobs.db"), data_roots=[str(data)],
                               output_root=str(root / "outputs"), scheduler=dask_client.scheduler.address)
    app = create_app(settings)
    with TestClient(app) as raw:
        http = CheckedClient(raw, OpenAPIChecker(app.openapi()))
        train = _run(http, {"kind": "train", "data": "train.parquet", "algorithms": ["kmeans"], "k": [4], "seed": 1})
        assert train["state"] == "succeeded", train
        yield Api(http, data, train)


def _run(http: CheckedClient, spec: dict) -> dict:
    response = http.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return wait_job(http, response.json()["id"], timeout=JOB_TIMEOUT_S)


def test_a_planted_shift_ends_with_verdict_drift(api):
    job = _run(api.http, {"kind": "drift", "job": api.train["id"], "data": "shifted.parquet"})
    assert job["state"] == "succeeded" and job["kind"] == "drift", job
    result = job["result"]
    assert result["verdict"] == "drift" and result["drift"] is True
    assert any(r.startswith("feature a: PSI") for r in result["reasons"]) and any("share" in r for r in result["reasons"])
    psi = {f["name"]: f["psi"] for f in result["features"]}
    assert psi["a"] >= 0.2 > psi["c"]
    doubled = max(result["clusters"]["clusters"], key=lambda r: r["change"])
    assert doubled["batch_share"] > doubled["reference_share"] + 0.1
    saved = json.loads(Path(result["report_file"]).read_text())
    assert Path(result["report_file"]) == Path(job["output"]) / "drift.json"
    assert saved == {k: v for k, v in result.items() if k not in ("out", "report_file", "seconds")}
    logs = [line["text"] for line in api.http.get(f"/v1/jobs/{job['id']}/logs").json()["lines"]]
    assert any(text.startswith("drift: DETECTED - ") for text in logs), logs
    listed = api.http.get("/v1/jobs", params={"kind": "drift"}).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed] and {j["kind"] for j in listed} == {"drift"}


def test_an_unshifted_sample_passes(api):
    run_dir = api.train["result"]["run_dir"]
    job = _run(api.http, {"kind": "drift", "model": run_dir, "data": "same.parquet", "sample_rows": 2000})
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert result["verdict"] == "pass" and result["reasons"] == [] and 1800 <= result["batch_rows"] <= 2200
    assert max(f["psi"] for f in result["features"]) < 0.1
    logs = [line["text"] for line in api.http.get(f"/v1/jobs/{job['id']}/logs").json()["lines"]]
    assert any(text.startswith("drift: none - ") for text in logs), logs


def test_thresholds_decide_the_verdict(api):
    job = _run(api.http, {"kind": "drift", "job": api.train["id"], "model_id": "kmeans-k4", "data": "shifted.parquet",
                          "threshold": 10, "share_threshold": 1})
    assert job["state"] == "succeeded" and job["result"]["verdict"] == "pass", job


@pytest.mark.parametrize("change, field, words", [
    ({"job": None}, "job", "exactly one of 'model'"),
    ({"model": "train.parquet"}, "job", "exactly one of 'model'"),
    ({"threshold": 0}, "threshold", "greater than 0"),
    ({"share_threshold": 1.5}, "share_threshold", "less than or equal to 1"),
    ({"sample_rows": 0}, "sample_rows", "greater than or equal to 1"),
    ({"data": "../outside.parquet"}, "data", ".."),
    ({"data": "missing.parquet"}, "data", "does not exist"),
    ({"model_id": "gmm-k9"}, "model_id", "has no model 'gmm-k9'"),
    ({"job": "000000000000"}, "job", "no job with id"),
    ({"surprise": 1}, "surprise", "unknown field"),
])
def test_bad_drift_specs_are_4xx_naming_the_field(api, change, field, words):
    spec = {"kind": "drift", "job": api.train["id"], "data": "shifted.parquet", **change}
    response = api.http.post("/v1/jobs", json={k: v for k, v in spec.items() if v is not None})
    assert response.status_code in (403, 404, 422), response.text
    body = response.json()
    assert body["field"] == field and words in body["message"], body


def test_a_model_without_a_drift_reference_is_refused_at_submission(api, tmp_path):
    model = Path(api.train["result"]["run_dir"]) / "models" / "kmeans-k4"
    old = api.data / "old-model"
    shutil.copytree(model, old)
    (old / "drift.json").unlink()
    (old / "drift.npz").unlink()
    response = api.http.post("/v1/jobs", json={"kind": "drift", "model": "old-model", "data": "same.parquet"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "model" and "has no drift reference" in response.json()["message"]
