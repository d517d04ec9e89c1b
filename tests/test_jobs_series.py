"""Series mode through the jobs API (issue 18): a train spec with ``series``, an apply spec on a
series run, ``publish:`` of a series run, and bad series input.

The jobs API is served by uvicorn on 127.0.0.1 in a thread of this process (jobs on the
suite's Dask LocalCluster); every answer goes through the OpenAPI checker. The long tables are
small synthetic retail tables (cluster_core/series/synthetic.py).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from cluster_core.series.synthetic import retail_series
from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs_support import CheckedClient, OpenAPIChecker, free_port, wait_for, wait_job

SERIES = {"series_id": "store", "time": "date", "values": ["sales"]}
TRAIN = {"kind": "train", "data": "sales.parquet", "series": SERIES, "algorithms": ["kmeans"], "k": [3],
         "insights": False}
SERIES_FILES = {"series.json", "series_assignments.parquet", "series_segments.csv", "series_profiles.json"}
JOB_TIMEOUT_S = 180


@dataclass
class Api:
    http: CheckedClient
    root: Path
    data: Path
    registry: Path


@pytest.fixture(scope="module")
def api(tmp_path_factory, dask_client):
    import uvicorn

    root = tmp_path_factory.mktemp("jobs-series")
    data = root / "data"
    data.mkdir()
    frame = retail_series(24, days=90, seed=1)
    frame.to_parquet(data / "sales.parquet", index=False)
    retail_series(9, days=90, seed=7).to_parquet(data / "new_sales.parquet", index=False)
    frame.assign(sales=frame["sales"].astype(str)).to_parquet(data / "text.parquet", index=False)
    lonely = pd.DataFrame({"store": ["lonely"], "date": [pd.Timestamp("2024-02-01")], "sales": [3.0],
                           "behaviour": ["flat"]})
    pd.concat([frame, lonely], ignore_index=True).to_parquet(data / "one.parquet", index=False)
    settings = ServiceSettings(store=str(root / "state" / "jobs.db"), data_roots=[str(data)],
                               output_root=str(root / "outputs"), scheduler=dask_client.scheduler.address,
                               registry=str(root / "registry"), max_concurrent_jobs=2)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="jobs-api-series", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: server.started, 60, "uvicorn to listen")
    wait_for(lambda: httpx.get(f"{url}/healthz").json()["dask"] == "ready", 60, "the runner to reach Dask")
    with httpx.Client(base_url=url, timeout=60) as raw:
        yield Api(CheckedClient(raw, OpenAPIChecker(app.openapi())), root, data, root / "registry")
    server.should_exit = True
    thread.join(60)


def _submit(api: Api, spec: dict) -> dict:
    response = api.http.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def _run(api: Api, spec: dict) -> dict:
    return wait_job(api.http, _submit(api, spec)["id"], timeout=JOB_TIMEOUT_S)


def _logs(api: Api, job_id: str) -> list[str]:
    return [line["text"] for line in api.http.get(f"/v1/jobs/{job_id}/logs").json()["lines"]]


@pytest.fixture(scope="module")
def trained(api):
    """A features-method series train job that also publishes its recommended model."""
    spec = {**TRAIN, "evaluate_against": "behaviour", "publish": {"name": "store-segments", "alias": "production"}}
    job = _run(api, spec)
    assert job["state"] == "succeeded", job
    return job


def test_a_series_train_job_writes_the_series_run(api, trained):
    from cluster_core.series import train_series_run

    result = trained["result"]
    run_dir = Path(result["run_dir"])
    assert run_dir == api.root / "outputs" / trained["id"] and trained["progress"] == 1.0
    series = result["series"]
    assert (series["method"], series["n_series"], series["n_series_kept"], series["n_series_dropped"]) == ("features", 24, 24, 0)
    assert series["model_id"] == result["recommended"] == "kmeans-k3" and series["n_clusters"] == 3
    assert sum(series["segment_sizes"].values()) == 24 and result["n_rows"] == 24
    assert set(series["outputs"]) == {"summary", "assignments", "segments", "profiles"}
    assert all(Path(path).is_file() and Path(path).parent == run_dir for path in series["outputs"].values())

    # the layout and the segments of the library (what `clustra train --series-id` writes)
    local = train_series_run(api.data / "sales.parquet", SERIES,
                             {"algorithms": ["kmeans"], "k": [3], "insights": False, "evaluate_against": "behaviour"},
                             out=api.root / "local-run", cluster="inprocess")
    assert {p.name for p in run_dir.iterdir()} == {p.name for p in (api.root / "local-run").iterdir()}
    assert SERIES_FILES <= {p.name for p in run_dir.iterdir()} and (run_dir / "leaderboard.json").is_file()
    assignments = pd.read_parquet(run_dir / "series_assignments.parquet")
    assert list(assignments.columns) == ["store", "cluster_id", "distance", "cluster_name"]
    both = assignments.merge(local.assignments, on="store")
    assert len(both) == 24 and adjusted_rand_score(both["cluster_id_x"], both["cluster_id_y"]) == 1.0

    board = api.http.get(f"/v1/jobs/{trained['id']}/leaderboard").json()
    assert board["best"] == "kmeans-k3" and 0 < board["models"][0]["ari"] <= 1  # against evaluate_against
    logs = _logs(api, trained["id"])
    assert any(text.startswith("24 series segmented by kmeans-k3 (features)") for text in logs), logs
    assert not any("Traceback" in text for text in logs)
    page = api.http.client.get(f"/ui/jobs/{trained['id']}")
    assert page.status_code == 200 and 'data-section="series-result"' in page.text
    assert 'data-section="leaderboard"' in page.text and "Segmented <b>24</b> series" in page.text


def test_publish_of_a_features_series_run_puts_a_series_model_in_the_registry(api, trained):
    from cluster_core.registry import ModelRegistry

    published = trained["result"]["published"]
    assert published == {"name": "store-segments", "version": 1, "alias": "production", "model_id": "kmeans-k3",
                         "registry": str(api.registry)}
    registry = ModelRegistry(api.registry)
    assert registry.resolve("store-segments", alias="production").version == 1
    model = registry.model_info("store-segments", 1)
    assert model["metadata"]["series"]["settings"]["series_id"] == "store"  # served: one series per record


@pytest.mark.parametrize("by", ["job", "model"])
def test_an_apply_job_on_a_series_run_assigns_new_series(api, trained, by, tmp_path):
    source = {"job": trained["id"]} if by == "job" else {"model": trained["result"]["run_dir"]}
    job = _run(api, {"kind": "apply", **source, "data": "new_sales.parquet"})
    assert job["state"] == "succeeded", job
    result = job["result"]
    out = Path(result["out"])
    assert {p.name for p in out.iterdir()} == {"series_assignments.parquet", "series_report.json"}
    assert (result["n_series"], result["n_series_dropped"], result["model_id"]) == (9, 0, "kmeans-k3")
    assert result["model"] == trained["result"]["run_dir"] and sum(result["cluster_counts"].values()) == 9
    assert result["outputs"]["assignments"] == str(out / "series_assignments.parquet")
    page = api.http.client.get(f"/ui/jobs/{job['id']}")
    assert page.status_code == 200 and "Scored <b>9</b> series" in page.text
    scored = pd.read_parquet(out / "series_assignments.parquet")
    report = json.loads((out / "series_report.json").read_text())
    assert report["n_series"] == 9 and report["dropped"] == []
    # what `clustra apply RUN NEW --out OUT` writes for the same run and table
    from cluster_core.series import apply_series_run

    local = tmp_path / "local-apply"
    apply_series_run(trained["result"]["run_dir"], api.data / "new_sales.parquet", local, cluster="inprocess")
    expected = pd.read_parquet(local / "series_assignments.parquet")
    pd.testing.assert_frame_equal(scored.sort_values("store", ignore_index=True),
                                  expected.sort_values("store", ignore_index=True))


# -- bad series input: a failed job with one error line, never a traceback --------------------
@pytest.mark.parametrize("data, series, words", [
    ("sales.parquet", {"series_id": "shop", "time": "date"}, ["series.series_id: column 'shop' is not in the data"]),
    ("sales.parquet", {"series_id": "store", "time": "when"}, ["series.time: column 'when' is not in the data"]),
    ("sales.parquet", {**SERIES, "values": ["nope"]}, ["series.values: column 'nope' is not in the data"]),
    ("text.parquet", SERIES, ["series.values: column 'sales' has dtype", "series values must be numeric"]),
    ("sales.parquet", {**SERIES, "max_length": 30}, ["series.max_length", "limit of 30"]),
    ("sales.parquet", {**SERIES, "min_points": 1000}, ["0 usable series; at least 2 are needed"]),
], ids=["missing-id", "missing-time", "missing-value", "non-numeric", "too-long", "none-usable"])
def test_bad_series_input_fails_the_job_with_one_line(api, data, series, words):
    job = _run(api, {**TRAIN, "data": data, "series": series})
    assert job["state"] == "failed", job
    error = job["error"]
    assert "\n" not in error and "Traceback" not in error, error
    for word in words:
        assert word in error, error
    assert not any("Traceback" in text for text in _logs(api, job["id"]))


def test_a_series_with_one_point_is_dropped_and_reported(api):
    job = _run(api, {**TRAIN, "data": "one.parquet"})
    assert job["state"] == "succeeded", job
    series = job["result"]["series"]
    assert (series["n_series"], series["n_series_kept"], series["n_series_dropped"]) == (25, 24, 1)
    reason = "dropped: 1 usable observation(s), at least 3 needed"
    assert series["dropped"] == [{"series_id": "lonely", "reason": reason}]
    summary = json.loads(Path(series["outputs"]["summary"]).read_text())
    assert summary["dropped"] == series["dropped"]
    assert any("1 series dropped" in text and "'lonely'" in text for text in _logs(api, job["id"]))


# -- spec problems: 422 at submission, naming the field ------------------------------------
@pytest.mark.parametrize("changes, field, words", [
    ({"series": {**SERIES, "colour": "red"}}, "series.colour", "unknown field"),
    ({"series": {"series_id": "store"}}, "series.time", "is required"),
    ({"series": {**SERIES, "values": "sales"}}, "series.values", "valid list"),
    ({"series": {**SERIES, "method": "wavelets"}}, "series.method", "wavelets"),
    ({"series": {**SERIES, "min_points": 1}}, "series.min_points", "greater than or equal to 2"),
    ({"series": {**SERIES, "max_length": "long"}}, "series.max_length", "valid integer"),
    ({"series": {**SERIES, "dtw_window": 2}}, "series.dtw_window", "less than or equal to 1"),
    ({"series": "store"}, "series", "valid dictionary"),
    ({"series": {**SERIES, "method": "shape"}, "publish": {"name": "shapes"}}, "publish",
     "publish is not possible with series.method='shape'"),
    ({"series": {**SERIES, "method": "kshape"}, "publish": {"name": "shapes"}}, "publish", "clustra publish RUN_DIR"),
    ({"series": {**SERIES, "method": "shape"}, "metric": "cosine"}, "metric", "applies to the features method"),
], ids=["unknown-field", "no-time", "values-not-a-list", "bad-method", "min-points", "max-length-type",
        "dtw-window", "not-an-object", "publish-shape", "publish-kshape", "shape-cosine"])
def test_bad_series_specs_are_422_naming_the_field(api, changes, field, words):
    response = api.http.post("/v1/jobs", json={**TRAIN, **changes})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and words in body["message"], body


@pytest.mark.parametrize("changes, status, field", [
    ({"data": "../outside.parquet"}, 403, "data"),
    ({"data": "/etc/passwd"}, 403, "data"),
    ({"data": "missing.parquet"}, 422, "data"),
    ({"output": "/tmp/clustra-series-elsewhere"}, 403, "output"),
], ids=["parent", "absolute", "missing", "output-outside"])
def test_path_rules_are_those_of_every_spec(api, changes, status, field):
    before = api.http.get("/v1/jobs").json()["total"]
    response = api.http.post("/v1/jobs", json={**TRAIN, **changes})
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert api.http.get("/v1/jobs").json()["total"] == before  # nothing recorded


def test_apply_and_drift_specs_that_do_not_fit_a_series_run_are_422(api, trained):
    for spec, field, words in [
        ({"kind": "apply", "job": trained["id"], "model_id": "kmeans-k3", "data": "new_sales.parquet"}, "model_id",
         "is a series run"),
        ({"kind": "apply", "job": trained["id"], "explain": True, "data": "new_sales.parquet"}, "explain",
         "is a series run"),
        ({"kind": "drift", "job": trained["id"], "data": "new_sales.parquet"}, "job", "is a series run"),
    ]:
        response = api.http.post("/v1/jobs", json=spec)
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["field"] == field and words in body["message"], body


def test_the_spec_schema_describes_series():
    from jsonschema import Draft202012Validator

    from jobs.specs import parse_spec, spec_json_schema

    schema = spec_json_schema()
    Draft202012Validator.check_schema(schema)
    series = schema["$defs"]["SeriesSettings"]
    assert {"series_id", "time", "values", "method", "shape_length", "max_length", "min_points", "dtw_window"} <= set(
        series["properties"])
    spec = {**TRAIN, "series": {**SERIES, "method": "shape", "shape_length": 32}, "k": [2, 3]}
    assert not list(Draft202012Validator(schema).iter_errors(spec))
    assert parse_spec(spec).series.shape_length == 32
    assert list(Draft202012Validator(schema).iter_errors({**TRAIN, "series": {"series_id": "store"}}))


def test_the_spec_example_of_the_docs_is_a_valid_spec():
    from jobs.specs import load_spec_yaml, parse_spec

    text = (Path(__file__).parents[1] / "docs" / "series.md").read_text()
    section = text.split("### Series in job specs", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = parse_spec(load_spec_yaml(example))
    assert spec.series.series_id == "store" and spec.series.values == ["sales"] and spec.publish.name == "store-segments"


@pytest.mark.slow  # the first DTW fit of a process compiles tslearn's numba kernels (seconds)
def test_a_shape_method_job_and_an_apply_job_on_it(api):
    job = _run(api, {**TRAIN, "series": {**SERIES, "method": "shape", "shape_length": 16}, "k": [2, 3]})
    assert job["state"] == "succeeded", job
    result = job["result"]
    series = result["series"]
    assert series["method"] == "shape" and [e["k"] for e in series["sweep"]] == [2, 3]
    assert result["best"] == result["recommended"] == series["model_id"] and result["n_models"] == 2
    assert set(series["outputs"]) == {"summary", "assignments", "segments", "profiles", "shape_model"}
    assert all(Path(path).is_file() for path in series["outputs"].values())
    response = api.http.get(f"/v1/jobs/{job['id']}/leaderboard")
    assert response.status_code == 409 and "series.sweep" in response.json()["message"]
    page = api.http.client.get(f"/ui/jobs/{job['id']}")  # the result, no leaderboard
    assert page.status_code == 200 and 'data-section="series-result"' in page.text
    assert 'data-section="leaderboard"' not in page.text

    applied = _run(api, {"kind": "apply", "job": job["id"], "data": "new_sales.parquet"})
    assert applied["state"] == "succeeded", applied
    assert applied["result"]["n_series"] == 9 and applied["result"]["model_id"] == series["model_id"]
    assert Path(applied["result"]["out"], "series_assignments.parquet").is_file()
