"""Serving the shape methods of series mode (docs/series.md): a shape/kshape run is published
(CLI and Python API) as a pickle-free model directory and answers one series per record with
the cluster and distance ``clustra apply`` gives; bad records are 422s naming the record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cluster_core.errors import ArtifactError, InvalidInputError
from cluster_core.registry import ModelRegistry, load_model_dir
from cluster_core.series import apply_series_run, train_series_run
from cluster_core.series.published import SeriesShapeModel
from cluster_core.series.resample import to_length, znormalize
from cluster_core.series.shape import shape_based_distance
from cluster_core.series.synthetic import retail_series
from serving.assign import ServedModel
from serving.catalog import describe_version
from serving.series_shape import ServedShapeModel, load_served

SETTINGS = {"series_id": "store", "time": "date", "values": ["sales"], "max_length": 400}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One small run per shape method (24 series of 120 days, k=3, one restart: kept fast)."""
    root = tmp_path_factory.mktemp("series-serving")
    frame = retail_series(24, days=120, seed=0)
    out = {}
    for method in ("shape", "kshape"):
        out[method] = root / method
        train_series_run(frame, dict(SETTINGS, method=method), {"k": [3], "seed": 0, "kmeans_n_init": 1}, out=out[method],
                         cluster="inprocess")
    return out


@pytest.fixture(scope="module")
def new_series() -> pd.DataFrame:
    return retail_series(6, days=120, seed=9)


def point_records(frame: pd.DataFrame) -> list[dict]:
    """One ``{"points": [...]}`` record per store, in store order (timestamps as ISO strings)."""
    records = []
    for _, rows in frame.groupby("store", sort=True):
        rows = rows.sort_values("date")
        records.append({"points": [{"time": t.isoformat(), "sales": float(v)} for t, v in zip(rows["date"], rows["sales"])]})
    return records


def publish_cli(run: Path, registry: Path, name: str) -> dict:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    done = subprocess.run([sys.executable, "-m", "clustra.cli", "publish", str(run), "--name", name, "--registry",
                           str(registry)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_shape_run_publishes_a_pickle_free_model_directory(runs, tmp_path):
    summary = publish_cli(runs["shape"], tmp_path / "registry", "shapes")
    assert summary["model_id"] == "dtw-kmeans-k3" and summary["algorithm"] == "dtw-kmeans" and summary["version"] == 1
    assert "series run" in summary["chosen"]
    registry = ModelRegistry(tmp_path / "registry")
    version = registry.local_dir("shapes", 1)
    assert sorted(p.name for p in version.iterdir()) == ["model.json", "shape_model.json", "shape_model.npz", "version.json"]
    with np.load(version / "shape_model.npz", allow_pickle=False) as arrays:
        assert [a.shape for a in arrays.values()] == [(3, 64, 1)]  # the centers, no object arrays
    info = json.loads((version / "model.json").read_text())
    assert info["model_type"] == "series-shape"
    assert info["metadata"]["series"]["values"] == ["sales"]
    assert info["metadata"]["series"]["settings"]["shape_length"] == 64
    assert info["metadata"]["series"]["settings"]["dtw_window"] == 0.1 and info["metadata"]["dtw_radius"] == 6
    assert sum(c["size"] for c in info["clusters"]) == 24
    model = registry.load("shapes")
    assert isinstance(model, SeriesShapeModel) and model.n_clusters == 3
    described = describe_version(registry, registry.resolve("shapes"))
    assert described["input_schema"] == [{"name": "sales", "kind": "series", "dtype": "float64"}]
    assert described["output"] == "distances" and [c["name"] for c in described["clusters"]] == ["segment 0", "segment 1", "segment 2"]
    from cluster_core.model import ClusteringModel

    with pytest.raises(ArtifactError, match="series shape model"):
        ClusteringModel.load(version)


@pytest.mark.parametrize("method", ["shape", "kshape"])
def test_served_answers_are_what_apply_gives(runs, new_series, tmp_path, method):
    """Same series -> same cluster and distance through `clustra apply` and the model replica's assign path."""
    registry = ModelRegistry(tmp_path / "registry")
    registry.publish(runs[method], "stores")  # the Python API: a run directory, as the CLI takes it
    served = load_served(registry, registry.resolve("stores"))
    assert isinstance(served, ServedShapeModel) and served.series["values"] == ["sales"]

    apply_series_run(runs[method], new_series, tmp_path / "scored", cluster="inprocess")
    expected = pd.read_parquet(tmp_path / "scored" / "series_assignments.parquet").sort_values("store")
    answers = json.loads(served.assign_records(point_records(new_series)))
    assert [a["cluster_id"] for a in answers] == expected["cluster_id"].tolist()
    np.testing.assert_allclose([a["distance"] for a in answers], expected["distance"], rtol=1e-9)
    assert [a["cluster_name"] for a in answers] == expected["cluster_name"].tolist()
    for answer in answers:
        assert len(answer["distances"]) == 3 and answer["distance"] == min(answer["distances"])
        assert answer["is_noise"] is False
    # equally spaced values: the same answer as the points at steps of one
    y = 20 + 0.3 * np.arange(100) + np.random.default_rng(0).normal(size=100)
    by_values = json.loads(served.assign_records([{"values": y.tolist()}]))
    by_points = json.loads(served.assign_records([{"points": [{"time": i, "sales": v} for i, v in enumerate(y)]}]))
    assert by_values == by_points


def test_kshape_distance_is_the_shape_based_distance(runs, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.publish(runs["kshape"], "k")
    served = load_served(registry, registry.resolve("k"))
    y = 50 + 10 * np.sin(np.arange(120) * 2 * np.pi / 7)
    answer = json.loads(served.assign_records([{"values": y.tolist()}]))[0]
    shape = to_length(znormalize(y), 64)[None, :, None]
    expected = shape_based_distance(shape, served.model.shape.centers)[0]
    np.testing.assert_allclose(answer["distances"], expected, rtol=1e-9)
    assert answer["cluster_id"] == int(expected.argmin()) and 0.0 <= answer["distance"] <= 2.0


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory) -> ServedShapeModel:
    registry = ModelRegistry(tmp_path_factory.mktemp("series-registry"))
    registry.publish(runs["shape"], "shapes")
    return load_served(registry, registry.resolve("shapes"))


@pytest.mark.parametrize("records, words", [
    ([{"values": [1.0]}], ["records[0]", "1 usable observation(s), at least 3 needed"]),
    ([{"values": [1, 2, 3]}, {"values": [1.0, "x", 3.0]}], ["records[1]", "'x'", "not a finite number"]),
    ([{"values": [1, 2, True]}], ["records[0]", "True", "not a finite number"]),
    ([{"values": list(range(401))}], ["records[0]", "401 points", "limit of 400"]),
    ([{"points": [{"time": 1, "sales": 2.0}, {"time": 2}]}], ["records[0]", "points[1] lacks 'sales'"]),
    ([{"points": [{"time": "soon", "sales": 1.0}, {"time": "later", "sales": 2.0}, {"time": "never", "sales": 3.0}]}],
     ["records[0]", "not a timestamp"]),
    ([{"values": {"visits": [1, 2, 3]}}], ["records[0]", "'values'"]),
    ([[1.0, 2.0, 3.0]], ["records[0]", "'values'", "'points'"]),
    ([{"values": [1, 2, 3], "extra": 1}], ["records[0]", "'values'"]),
], ids=["one-point", "non-numeric", "boolean", "too-long", "point-without-value", "bad-time", "unknown-column",
        "not-an-object", "unknown-key"])
def test_bad_records_are_422_naming_the_record(served, records, words):
    with pytest.raises(InvalidInputError) as info:
        served.assign_records(records)
    for word in words:
        assert word in info.value.message
    status, body, n = served.assign_batch([records])[0]
    assert status == 422 and n == 0
    error = json.loads(body)
    assert error["error"] == "invalid_input" and words[0] in error["message"]


def test_a_batch_isolates_the_request_with_a_bad_record(served, new_series):
    good = point_records(new_series)
    alone = [json.loads(served.assign_records(good[:2])), json.loads(served.assign_records(good[2:]))]
    results = served.assign_batch([good[:2], [{"values": [1.0]}], good[2:]])
    assert [r[0] for r in results] == [200, 422, 200] and [r[2] for r in results] == [2, 0, len(good) - 2]
    assert [json.loads(results[0][1]), json.loads(results[2][1])] == alone


def test_explain_and_arrow_are_refused_with_422(served):
    with pytest.raises(InvalidInputError, match="explain=true is not available") as info:
        served.explain_records([{"values": [1, 2, 3]}])
    assert info.value.field == "explain"
    [(status, body, n)] = served.assign_arrow_batch([b"arrow bytes"])
    assert status == 422 and n == 0 and "send JSON records" in json.loads(body)["message"]


def test_features_models_still_load_as_served_models(tmp_path):
    frame = retail_series(24, days=90, seed=4)
    train_series_run(frame, SETTINGS, {"k": [2], "algorithms": ["kmeans"], "insights": False}, out=tmp_path / "run",
                     cluster="inprocess")
    registry = ModelRegistry(tmp_path / "registry")
    registry.publish(tmp_path / "run", "features")  # a features run: its recommended model, as before
    served = load_served(registry, registry.resolve("features"))
    assert isinstance(served, ServedModel) and served.series["values"] == ["sales"]
    assert not isinstance(load_model_dir(registry.local_dir("features", 1)), SeriesShapeModel)


def test_a_shape_run_without_a_model_directory_says_so(runs, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(runs["shape"], old)
    shutil.rmtree(old / "models")  # as written before shape runs kept a model directory
    with pytest.raises(ArtifactError, match="train it again"):
        ModelRegistry(tmp_path / "registry").publish(old, "old")


# -- the HTML report of a series run ----------------------------------------------------------
def test_the_report_shows_each_clusters_shape_and_spread(runs, tmp_path):
    from cluster_core.report import write_report

    html = write_report(runs["shape"], tmp_path / "report.html").read_text()
    start = html.index('data-section="series"')
    section = html[start : html.index("</section>", start)]
    assert "Series clusters" in section and "24 series of store over date segmented by dtw-kmeans-k3" in section
    profiles = json.loads((runs["shape"] / "series_profiles.json").read_text())
    figure = json.loads(section.split('class="figure-data" data-for="fig-series-sales">', 1)[1].split("</script>", 1)[0])
    assert len(figure["data"]) == 3 * len(profiles["clusters"])  # per cluster: the p10 and p90 band edges, the mean
    for cluster, (low, high, mean) in zip(profiles["clusters"], zip(*[iter(figure["data"])] * 3)):
        band = cluster["values"]["sales"]
        assert (low["y"], high["y"], mean["y"]) == (band["p10"], band["p90"], band["mean"])
        assert high["fill"] == "tonexty" and len(mean["x"]) == 64 and mean["x"][-1] == 1.0
    assert [a["text"].split(" · ")[-1] for a in figure["layout"]["annotations"]] == \
        [f"{c['n_series']} series" for c in profiles["clusters"]]
    assert 'data-model="dtw-kmeans-k3"' in html  # the leaderboard and the model section of the chosen model
    with pytest.raises(InvalidInputError, match="keeps only its chosen model"):
        write_report(runs["shape"], tmp_path / "other.html", model_ids=["dtw-kmeans-k2"])


def test_a_shape_runs_sweep_is_its_leaderboard_and_selection_curve():
    from cluster_core.report._load import shape_leaderboard
    from cluster_core.report._sections import selection_curves

    summary = {"model_id": "kshape-k3", "method": "kshape", "ranked_by": "silhouette (sampled, in the model's distance)",
               "sweep": [{"model_id": "kshape-k2", "k": 2, "silhouette": 0.31, "cluster_sizes": [10, 8]},
                         {"model_id": "kshape-k3", "k": 3, "silhouette": 0.42, "cluster_sizes": [6, 6, 6]}]}
    board = shape_leaderboard(summary)
    assert board["recommended"] == board["best"] == "kshape-k3"
    assert [(m["model_id"], m["rank"], m["algorithm"]) for m in board["models"]] == [("kshape-k3", 1, "kshape"),
                                                                                     ("kshape-k2", 2, "kshape")]
    curves, source = selection_curves(None, board)
    assert source == "leaderboard" and curves["kshape"]["k"] == [2, 3] and curves["kshape"]["silhouette"] == [0.31, 0.42]


# -- over HTTP: the shared `clustra serve` of the serving tests (tests/conftest.py) ------------
@pytest.mark.slow
def test_a_published_shape_model_answers_over_http(serving_service, runs, new_series):
    """POST one series per record to the running service: the model replica loads the shape model
    (serving.app -> load_served) and answers as in-process; bad records are 422 JSON, never 500."""
    registry, client = serving_service["registry"], serving_service["client"]
    registry.publish(runs["shape"], "store-shapes")
    records = point_records(new_series)
    response = client.post("/v1/models/store-shapes/assign", json={"records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "store-shapes" and len(body["assignments"]) == len(records)
    expected = json.loads(load_served(registry, registry.resolve("store-shapes")).assign_records(records))
    assert [a["cluster_id"] for a in body["assignments"]] == [a["cluster_id"] for a in expected]
    np.testing.assert_allclose([a["distance"] for a in body["assignments"]], [a["distance"] for a in expected], rtol=1e-9)
    described = client.get("/v1/models/store-shapes").json()
    assert described["algorithm"] == "dtw-kmeans" and described["output"] == "distances"
    for bad, words in (({"records": [{"values": [1.0]}]}, "at least 3 needed"),
                       ({"records": [{"values": [1, "x", 3]}]}, "not a finite number"),
                       ({"records": [{"values": list(range(401))}]}, "limit of 400")):
        response = client.post("/v1/models/store-shapes/assign", json=bad)
        assert response.status_code == 422 and response.json()["error"] == "invalid_input", response.text
        assert "records[0]" in response.json()["message"] and words in response.json()["message"]
    response = client.post("/v1/models/store-shapes/assign?explain=true", json={"records": records[:1]})
    assert response.status_code == 422 and response.json()["field"] == "explain"
