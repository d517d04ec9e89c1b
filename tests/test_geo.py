"""Geospatial columns: vega_datasets' airports clustered by place; points, pairs and bad coordinates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _real_data import airports
from sklearn.metrics import adjusted_rand_score

from cluster_core.algorithms import KMeans
from cluster_core.errors import InvalidInputError
from cluster_core.features import FeaturePipeline
from cluster_core.features.geo import GeoFeaturizer, parse_point
from cluster_core.schema import infer_schema


@pytest.fixture(scope="module")
def contiguous_us() -> pd.DataFrame:
    frame = airports()
    inside = frame["region"].notna() & (frame["longitude"] > -130) & (frame["latitude"] < 50)
    return frame[inside].reset_index(drop=True)


def test_airports_pair_is_detected_and_clusters_by_place(contiguous_us, seed):
    schema = infer_schema(contiguous_us)
    assert schema.column("latitude").kind == schema.column("longitude").kind == "geo"
    assert schema.column("latitude").options == {"lat": "latitude", "lon": "longitude"}
    assert schema.column("longitude").options == {"part_of": "latitude"}
    pipeline = FeaturePipeline(infer_schema(contiguous_us[["latitude", "longitude"]])).fit(contiguous_us)
    assert pipeline.input_columns == ["latitude", "longitude"]
    features = pipeline.transform(contiguous_us)
    assert features.shape == (len(contiguous_us), 3)
    labels = KMeans(4, n_init=5, random_state=seed).fit(features).predict(features)
    # four clusters of airports against the four US census regions of their states
    assert adjusted_rand_score(contiguous_us["region"], labels) >= 0.35
    # and each cluster is a compact place: its airports lie within a few thousand km of its centre
    for cluster in range(4):
        members = contiguous_us[labels == cluster]
        assert members["latitude"].std() < 6 and members["longitude"].std() < 10


def test_unit_sphere_respects_the_globe():
    frame = pd.DataFrame({"lat": [0.0, 0.0, 0.0, 90.0, 89.9], "lon": [179.9, -179.9, 0.0, 0.0, 120.0]})
    out = GeoFeaturizer("lat", lat="lat", lon="lon").fit(frame).transform(frame)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert np.linalg.norm(out[0] - out[1]) < 0.01  # neighbours across the antimeridian
    assert np.linalg.norm(out[0] - out[2]) == pytest.approx(2.0, abs=1e-4)  # antipodes
    assert np.linalg.norm(out[3] - out[4]) < 0.01  # near the pole, longitude hardly matters


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"lat": [10.0, 95.0], "lon": [0.0, 0.0]}), r"row 1 has latitude 95\.0.*\[-90, 90\]"),
        (pd.DataFrame({"lat": [10.0, 20.0], "lon": [0.0, -181.0]}), r"row 1 has longitude -181\.0.*\[-180, 180\]"),
        (pd.DataFrame({"lat": [10.0, "north"], "lon": [0.0, 1.0]}), r"'north' is not a number"),
    ],
    ids=["latitude", "longitude", "not-a-number"],
)
def test_invalid_coordinates_are_rejected_clearly(frame, message):
    featurizer = GeoFeaturizer("lat", lat="lat", lon="lon").fit(pd.DataFrame({"lat": [1.0, 2.0], "lon": [3.0, 4.0]}))
    with pytest.raises(InvalidInputError, match=message):
        featurizer.transform(frame)


def test_wkt_and_geojson_points():
    assert parse_point("POINT (-74.0 40.7)") == (40.7, -74.0)
    assert parse_point("point z (2.35 48.85 35)") == (48.85, 2.35)
    assert parse_point('{"type": "Point", "coordinates": [139.69, 35.68]}') == (35.68, 139.69)
    assert parse_point({"type": "Point", "coordinates": [1, 2]}) == (2.0, 1.0)
    values = ["POINT (-74.0 40.7)", json.dumps({"type": "Point", "coordinates": [2.35, 48.85]})] * 10
    frame = pd.DataFrame({"where": values, "n": np.arange(20.0)})
    assert infer_schema(frame).column("where").kind == "geo"
    featurizer = GeoFeaturizer("where").fit(frame)
    assert featurizer.transform(frame).shape == (20, 3)
    with pytest.raises(InvalidInputError, match=r"row 1 value 'LINESTRING.*is not a point"):
        featurizer.transform(pd.DataFrame({"where": ["POINT (1 2)", "LINESTRING (1 2, 3 4)"]}))
    with pytest.raises(InvalidInputError, match=r"latitude 91\.0"):
        featurizer.transform(pd.DataFrame({"where": ["POINT (10 91)"]}))


def test_declared_pairs_overrides_and_missing_points():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y_deg": rng.uniform(-60, 60, 50), "x_deg": rng.uniform(-170, 170, 50), "lat": rng.uniform(0, 9, 50),
                          "lon": rng.uniform(0, 9, 50)})
    schema = infer_schema(frame, geo_pairs=[("y_deg", "x_deg")], kinds={"lat": "numeric"})
    assert schema.column("y_deg").options == {"lat": "y_deg", "lon": "x_deg"}
    assert schema.column("lat").kind == "numeric" and schema.column("lon").kind == "numeric"  # forced: not paired
    with pytest.raises(InvalidInputError, match="declared geo but is a single number"):
        infer_schema(frame, kinds={"y_deg": "geo"})
    with pytest.raises(InvalidInputError, match="geo pair"):
        infer_schema(frame, geo_pairs=[("y_deg", "nope")])
    frame.loc[[2, 5], "y_deg"] = np.nan
    featurizer = GeoFeaturizer("y_deg", lat="y_deg", lon="x_deg").fit(frame)
    out = featurizer.transform(frame)
    assert featurizer.feature_names_[-1] == "y_deg__missing" and out[2, -1] == 1.0
    np.testing.assert_allclose(out[2, :3], featurizer.fill_, atol=1e-6)


def test_out_of_range_columns_named_like_coordinates_stay_numeric():
    frame = pd.DataFrame({"lat": np.linspace(0, 200, 30), "lon": np.linspace(0, 10, 30)})
    assert infer_schema(frame).column("lat").kind == "numeric"


@pytest.mark.slow
def test_clustra_train_flags_on_the_airports_table(tmp_path, capsys):
    from clustra.cli import main

    frame = airports()[["latitude", "longitude", "state"]]
    frame.to_parquet(tmp_path / "airports.parquet", index=False)
    base = ["train", str(tmp_path / "airports.parquet"), "--k", "4", "--algorithms", "kmeans", "--device", "cpu"]
    status = main([*base, "--out", str(tmp_path / "run"), "--geo", "latitude:longitude", "--kind-weight", "geo=2",
                   "--reduce", "pca", "--reduce-components", "2", "--view-rows", "300"])
    assert status == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert run["geo_pairs"] == ["latitude:longitude"] and run["kind_weights"] == {"geo": 2.0} and run["reduce"] == "pca"
    view = json.loads((tmp_path / "run" / "models" / "kmeans-k4" / "embedding_view.json").read_text())
    assert view["n_points"] == 300
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "bad"), "--kind-weight", "geo=heavy"]) == 2
    assert main([*base, "--out", str(tmp_path / "bad"), "--geo", "latitude"]) == 2
    err = capsys.readouterr().err
    assert "--kind-weight expects NAME=NUMBER" in err and "LAT_COLUMN:LON_COLUMN" in err
    assert not (tmp_path / "bad").exists()
