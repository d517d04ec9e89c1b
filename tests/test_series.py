"""Series mode: resampling, features, the long table -> one row per series (pandas and Dask),
both methods end to end through the CLI, apply on new series, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from cluster_core.errors import DataError, InvalidInputError
from cluster_core.series import SeriesSettings, feature_names, train_series_run
from cluster_core.series.features import autocorrelation, describe, seasonality
from cluster_core.series.resample import Grid, regular_grid, to_length, znormalize
from cluster_core.series.shape import ShapeModel, shape_based_distance
from cluster_core.series.synthetic import retail_series
from cluster_core.series.table import summarize_frame

CLUSTRA = [sys.executable, "-m", "clustra.cli"]
SETTINGS = {"series_id": "store", "time": "date", "values": ["sales"]}


def clustra(*args, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    return subprocess.run([*CLUSTRA, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


# -- resampling and features --------------------------------------------------------------
def test_regular_grid_uses_the_median_step_and_interpolates_gaps():
    times = np.array([0.0, 1.0, 2.0, 3.0, 7.0, 8.0, 8.0, 9.5])  # a gap (3 -> 7), a duplicate, an irregular point
    values = np.array([0.0, 1.0, 2.0, 3.0, 7.0, 8.0, 10.0, 9.5])[:, None]
    grid = regular_grid(times[::-1].copy(), values[::-1].copy(), max_length=100)  # order does not matter
    assert isinstance(grid, Grid) and grid.step == 1.0
    assert grid.values.shape == (10, 1)  # 0 .. 9 at step 1: never past the last timestamp (9.5)
    np.testing.assert_allclose(grid.values[:7, 0], [0, 1, 2, 3, 4, 5, 6])  # the gap filled by a straight line
    assert grid.values[8, 0] == pytest.approx(9.0)  # the duplicates at 8 averaged
    assert grid.n_gaps == 3  # 4, 5 and 6 had no observation within half a step
    assert regular_grid(np.arange(0.0, 50.0), np.zeros((50, 1)), max_length=20) == 50  # too long: its length


def test_to_length_averages_down_and_interpolates_up():
    np.testing.assert_allclose(to_length(np.arange(8.0), 4), [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(to_length(np.array([0.0, 2.0]), 3), [0.0, 1.0, 2.0])
    z = znormalize(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    np.testing.assert_array_equal(znormalize(np.full(4, 5.0)), np.zeros(4))


def test_features_see_trend_and_weekly_season(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(140.0)
    flat = 100 + rng.normal(size=t.size)
    trend = 100 + 2 * t + rng.normal(size=t.size)
    weekly = 100 + 20 * np.sin(2 * np.pi * t / 7) + rng.normal(size=t.size)
    names = feature_names(["y"], 8)
    feats = {name: dict(zip(names, describe(y, 8, 100))) for name, y in (("flat", flat), ("trend", trend), ("weekly", weekly))}
    assert feats["trend"]["y__trend"] > 3.0 and abs(feats["flat"]["y__trend"]) < 0.5
    assert feats["weekly"]["y__seasonal_period"] == 7 and feats["weekly"]["y__seasonal_strength"] > 0.8
    assert feats["flat"]["y__seasonal_strength"] < 0.3
    assert feats["flat"]["y__volatility"] > 1.2 and feats["trend"]["y__volatility"] < 0.1
    assert feats["flat"]["y__level"] == pytest.approx(100, abs=1)
    assert len(names) == 6 + 8
    assert seasonality(autocorrelation(np.zeros(10), 5)) == (0, 0.0)


def test_shape_based_distance_ignores_shifts():
    t = np.linspace(0, 4 * np.pi, 64)
    a, shifted, other = znormalize(np.sin(t)), znormalize(np.sin(t + 0.5)), znormalize(t)
    d = shape_based_distance(np.stack([shifted, other])[:, :, None], a[None, :, None])
    assert d[0, 0] < 0.05 < d[1, 0]
    model = ShapeModel("kshape", np.stack([a, other])[:, :, None], 0)
    labels, _ = model.assign(np.stack([shifted, other])[:, :, None])
    assert labels.tolist() == [0, 1]


# -- the long table -> one row per series ---------------------------------------------
def test_pandas_and_dask_summaries_agree():
    import dask.dataframe as dd

    frame = retail_series(30, days=120, seed=1)
    settings = SeriesSettings(**SETTINGS)
    in_memory = summarize_frame(frame, settings, ["sales"], ["behaviour"])
    distributed = summarize_frame(dd.from_pandas(frame, npartitions=4), settings, ["sales"], ["behaviour"])
    assert len(in_memory) == 30 and (in_memory["status"] == "ok").all()
    pd.testing.assert_frame_equal(in_memory.reset_index(drop=True), distributed, check_dtype=False)
    assert (in_memory["step"] == 86400.0).all()  # daily, in seconds
    assert (in_memory.groupby("behaviour")["sales__seasonal_period"].median()["weekly"]) == 7


# -- end to end -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def retail(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    frame = retail_series(240, days=200, seed=0)
    frame.to_parquet(root / "sales.parquet")
    truth = frame.groupby("store")["behaviour"].first()
    return root, frame, truth


def test_cli_features_method_segments_the_retail_table(retail):
    root, frame, truth = retail
    done = clustra("train", root / "sales.parquet", "--series-id", "store", "--time", "date", "--value", "sales",
                   "--algorithms", "kmeans", "--k", "3", "--evaluate-against", "behaviour", "--out", root / "run",
                   "--scheduler", "inprocess")
    assert done.returncode == 0, done.stderr
    assert "240 series segmented by kmeans-k3 (features)" in done.stdout
    assignments = pd.read_parquet(root / "run" / "series_assignments.parquet")
    assert list(assignments.columns) == ["store", "cluster_id", "distance", "cluster_name"]
    assert adjusted_rand_score(truth.loc[assignments["store"]], assignments["cluster_id"]) >= 0.9
    segments = pd.read_csv(root / "run" / "series_segments.csv")
    assert list(segments.columns) == ["store", "segment"] and len(segments) == 240
    profiles = json.loads((root / "run" / "series_profiles.json").read_text())
    assert len(profiles["clusters"]) == 3 and profiles["length"] == 64
    band = profiles["clusters"][0]["values"]["sales"]
    assert len(band["mean"]) == 64 and all(lo <= hi for lo, hi in zip(band["p10"], band["p90"]))
    summary = json.loads((root / "run" / "series.json").read_text())
    assert summary["method"] == "features" and summary["n_series_kept"] == 240 and "median step" in summary["resampling"]
    board = json.loads((root / "run" / "leaderboard.json").read_text())
    assert board["models"][0]["ari"] >= 0.9  # the regular run on the per-series table is there too

    new = retail_series(30, days=200, seed=5)
    new.to_parquet(root / "new.parquet")
    done = clustra("apply", root / "run", root / "new.parquet", "--out", root / "scored", "--scheduler", "inprocess")
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(root / "scored" / "series_assignments.parquet")
    assert len(scored) == 30
    # new series land in the segment of the training series with the same behaviour
    segment_of = dict(zip(truth.loc[assignments["store"]], assignments["cluster_id"]))
    expected = new.groupby("store")["behaviour"].first().loc[scored["store"]].map(segment_of)
    assert (scored["cluster_id"].to_numpy() == expected.to_numpy()).mean() >= 0.9


def test_shape_method_through_the_python_api(retail, tmp_path):
    _, frame, truth = retail
    few = frame[frame["store"].isin(truth.index[:60])]
    outcome = train_series_run(few, dict(SETTINGS, method="shape"), {"k": [3], "seed": 0}, out=tmp_path / "run",
                               cluster="inprocess")
    labels = outcome.assignments.set_index("store")["cluster_id"]
    assert adjusted_rand_score(truth.loc[labels.index], labels) >= 0.8
    assert (tmp_path / "run" / "shape_model.npz").is_file()
    # the saved centers assign the training series as the run did
    from cluster_core._state import read_state

    model = ShapeModel.from_state(read_state(tmp_path / "run", "shape_model"))
    assert model.radius == 6 and model.centers.shape == (3, 64, 1)  # 0.1 of 64 points
    from cluster_core.series import apply_series_run

    summary = apply_series_run(tmp_path / "run", few, tmp_path / "scored", cluster="inprocess")
    again = pd.read_parquet(tmp_path / "scored" / "series_assignments.parquet").set_index("store")["cluster_id"]
    assert summary["n_series"] == 60 and (again.loc[labels.index] == labels).all()


def test_python_api_front_door(retail):
    import clustra

    _, frame, truth = retail
    few = frame[frame["store"].isin(truth.index[:45])]
    outcome = clustra.train_series(few, series_id="store", time="date", values="sales", k=3, algorithms="kmeans",
                                   cluster="inprocess", insights=False, series={"profile_points": 8})
    assert outcome.summary["settings"]["profile_points"] == 8 and outcome.summary["model_id"] == "kmeans-k3"
    labels = outcome.assignments.set_index("store")["cluster_id"]
    assert adjusted_rand_score(truth.loc[labels.index], labels) >= 0.9


def test_serving_takes_one_series_per_record(retail, tmp_path):
    """A published features model answers a series sent as values or as timestamped points, as apply does."""
    from cluster_core.model import ClusteringModel
    from cluster_core.registry import ModelRegistry
    from cluster_core.series import apply_series_run
    from serving.assign import ServedModel

    _, frame, truth = retail
    few = frame[frame["store"].isin(truth.index[:45])]
    train_series_run(few, SETTINGS, {"k": [3], "algorithms": ["kmeans"], "insights": False}, out=tmp_path / "run",
                     cluster="inprocess")
    registry = ModelRegistry(tmp_path / "registry")
    registry.publish(tmp_path / "run" / "models" / "kmeans-k3", "stores")
    served = ServedModel(registry.load("stores"), registry.resolve("stores"))
    assert served.series["values"] == ["sales"]

    new = retail_series(6, days=200, seed=9)
    apply_series_run(tmp_path / "run", new, tmp_path / "scored", cluster="inprocess")
    expected = pd.read_parquet(tmp_path / "scored" / "series_assignments.parquet").set_index("store")
    records = []
    for store, rows in new.groupby("store"):
        rows = rows.sort_values("date")
        records.append({"points": [{"time": t.isoformat(), "sales": float(v)} for t, v in zip(rows["date"], rows["sales"])]})
    answers = json.loads(served.assign_records(records))
    stores = sorted(new["store"].unique())
    assert [a["cluster_id"] for a in answers] == expected.loc[stores, "cluster_id"].tolist()
    np.testing.assert_allclose([a["distance"] for a in answers], expected.loc[stores, "distance"], rtol=1e-4)
    # equally spaced values: the same series without gaps or timestamps
    regular = np.linspace(10, 40, 150) + np.random.default_rng(0).normal(size=150)
    by_values = json.loads(served.assign_records([{"values": regular.tolist()}]))
    by_points = json.loads(served.assign_records([{"points": [{"time": i, "sales": v} for i, v in enumerate(regular)]}]))
    assert by_values[0]["cluster_id"] == by_points[0]["cluster_id"]
    for bad, words in (([{"values": [1.0]}], ["records[0]", "at least 3"]),
                       ([{"values": [1, 2, "x"]}], ["records[0]", "'x'", "not a finite number"]),
                       ([{"points": [{"time": 1}]}], ["records[0]", "lacks 'sales'"]),
                       ([{"values": [1, 2, 3]}, {"rows": []}], ["records[1]", "'values'"])):
        with pytest.raises(InvalidInputError) as info:
            served.assign_records(bad)
        for word in words:
            assert word in str(info.value)
    with pytest.raises(InvalidInputError, match="clusters series"):
        served.check_table(None)


# -- bad input: one line, never a traceback -----------------------------------------------
@pytest.fixture(scope="module")
def bad_tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-series")
    frame = retail_series(12, days=60, seed=2)
    frame.to_parquet(root / "ok.parquet")
    frame.assign(sales=frame["sales"].astype(str)).to_parquet(root / "text.parquet")
    one_point = pd.DataFrame({"store": ["lonely"], "date": [pd.Timestamp("2024-02-01")], "sales": [3.0], "behaviour": ["flat"]})
    pd.concat([frame, one_point]).to_parquet(root / "one.parquet")
    return root


@pytest.mark.parametrize("args, words", [
    (["--series-id", "shop", "--time", "date"], ["--series-id", "'shop'", "not in the data"]),
    (["--series-id", "store", "--time", "when"], ["--time", "'when'", "not in the data"]),
    (["--series-id", "store"], ["--series-id needs --time"]),
    (["--series-id", "store", "--time", "date", "--series-max-length", "30"], ["--series-max-length", "limit of 30"]),
    (["--series-id", "store", "--time", "date", "--value", "nope"], ["--value", "'nope'"]),
    (["--series-method", "shape"], ["needs --series-id"]),
], ids=["missing-id", "missing-time", "no-time", "too-long", "missing-value", "method-alone"])
def test_bad_series_input_is_one_line(bad_tables, tmp_path, args, words):
    done = clustra("train", bad_tables / "ok.parquet", "--out", tmp_path / "run", "--k", "2", "--algorithms", "kmeans",
                   "--scheduler", "inprocess", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()  # progress lines, then the one error line
    errors = [line for line in lines if line.startswith("clustra:")]
    assert errors == lines[-1:] and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in errors[0]


def test_non_numeric_values_are_one_line(bad_tables, tmp_path):
    done = clustra("train", bad_tables / "text.parquet", "--series-id", "store", "--time", "date", "--value", "sales",
                   "--out", tmp_path / "run", "--scheduler", "inprocess")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("clustra: error: --value: column 'sales' has dtype ") and last.endswith("series values must be numeric")
    assert "Traceback" not in done.stderr


def test_a_series_with_one_point_is_dropped_and_reported(bad_tables, tmp_path):
    done = clustra("train", bad_tables / "one.parquet", "--series-id", "store", "--time", "date", "--value", "sales",
                   "--algorithms", "kmeans", "--k", "2", "--out", tmp_path / "run", "--scheduler", "inprocess",
                   "--no-insights")
    assert done.returncode == 0, done.stderr
    assert "1 series dropped" in done.stdout
    summary = json.loads((tmp_path / "run" / "series.json").read_text())
    assert summary["dropped"] == [{"series_id": "lonely", "reason": "dropped: 1 usable observation(s), at least 3 needed"}]
    assert "lonely" not in set(pd.read_parquet(tmp_path / "run" / "series_assignments.parquet")["store"])


def test_library_errors_name_the_field():
    frame = retail_series(6, days=30, seed=3)
    with pytest.raises(InvalidInputError) as info:
        train_series_run(frame, {"series_id": "store", "time": "store"}, {"k": [2]}, cluster="inprocess")
    assert info.value.field == "time"
    with pytest.raises(InvalidInputError) as info:
        train_series_run(frame, dict(SETTINGS, method="wavelets"), cluster="inprocess")
    assert info.value.field == "method"
    with pytest.raises(DataError, match="at least 2"):
        train_series_run(frame, dict(SETTINGS, min_points=1000), {"k": [2]}, cluster="inprocess")
    with pytest.raises(InvalidInputError) as info:
        train_series_run(frame, dict(SETTINGS, method="shape"), {"k": [2], "metric": "cosine", "algorithms": ["kmeans"]},
                         cluster="inprocess")
    assert info.value.field == "metric"
    with pytest.raises(DataError) as info:
        train_series_run(frame, dict(SETTINGS, method="shape"), {"k": [6]}, cluster="inprocess")
    assert info.value.field == "k" and "6 usable series" in info.value.message
    bad_time = frame.assign(date="soon")
    with pytest.raises(DataError, match="'soon' is not a timestamp"):
        train_series_run(bad_time, SETTINGS, {"k": [2]}, cluster="inprocess")
