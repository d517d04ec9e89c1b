"""The genie algorithm: registered, swept over its Gini threshold, saved without pickle, applied via the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score

from cluster_core.algorithms import Genie, algorithm_names, estimator_from_state, get_algorithm
from cluster_core.config import TrainConfig
from cluster_core.training import plan_models
from test_cli import clustra


def test_genie_is_registered_and_swept_over_gini_thresholds():
    assert "genie" in algorithm_names()
    config = TrainConfig(algorithms=["genie"], k=[2, 3], genie_gini_thresholds=[0.5, 0.1])
    specs = plan_models(config, 100, 120)
    assert [s.model_id for s in specs] == ["genie-g0.1-k2", "genie-g0.1-k3", "genie-g0.5-k2", "genie-g0.5-k3"]
    built = specs[-1].build(config, "cpu")
    assert isinstance(built, Genie) and built.gini_threshold == 0.5 and built.n_clusters == 3
    assert get_algorithm("genie").needs_k


def test_gini_thresholds_are_checked():
    with pytest.raises(ValueError, match=r"Gini thresholds must be in \[0, 1\], got \[1.5\]"):
        TrainConfig(genie_gini_thresholds=[0.3, 1.5])


def test_genie_separates_non_convex_shapes_where_kmeans_cannot():
    from cluster_core.algorithms import KMeans

    x, y = make_moons(600, noise=0.04, random_state=0)
    genie = Genie(2, random_state=0, device="cpu").fit(x)
    kmeans = KMeans(2, random_state=0, device="cpu").fit(x)
    assert adjusted_rand_score(y, genie.labels_) > 0.99
    assert adjusted_rand_score(y, kmeans.labels_) < 0.6


def test_genie_on_a_sample_assigns_every_row_by_its_nearest_sample_row():
    x, y = make_blobs(3000, n_features=3, centers=3, cluster_std=0.5, center_box=(-10, 10), random_state=2)
    genie = Genie(3, max_fit_samples=500, random_state=0, device="cpu").fit(x)
    assert 400 < genie.fit_data_.shape[0] < 600 and genie.labels_.shape == (3000,)  # a ~500-row sample
    assert adjusted_rand_score(y, genie.labels_) > 0.99
    restored = estimator_from_state(genie.get_state())
    assert isinstance(restored, Genie)
    np.testing.assert_array_equal(restored.predict(x), genie.labels_)
    with pytest.raises(ValueError, match="n_samples=2 should be >= n_clusters=3"):
        Genie(3, device="cpu").fit(x[:2])


def test_genie_through_the_cli(tmp_path):
    x, y = make_blobs(500, n_features=3, centers=3, cluster_std=0.5, center_box=(-10, 10), random_state=4)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["label"] = y.astype(str)
    data = tmp_path / "data.parquet"
    frame.to_parquet(data)
    run = tmp_path / "run"
    trained = clustra("train", data, "--out", run, "--algorithms", "genie", "--k", "2,3,4", "--evaluate-against", "label")
    assert trained.returncode == 0, trained.stderr
    board = json.loads((run / "leaderboard.json").read_text())
    ids = {m["model_id"] for m in board["models"] if m["status"] == "ok"}
    assert ids == {f"genie-g{g}-k{k}" for g in (0.1, 0.3, 0.5) for k in (2, 3, 4)}
    assert board["recommended"].endswith("-k3") and "recommended model:" in trained.stdout
    model_json = json.loads((run / "models" / "genie-g0.3-k3" / "model.json").read_text())
    assert model_json["algorithm"] == "genie"
    assert not list((run / "models" / "genie-g0.3-k3").glob("*.pkl"))
    curves = clustra("leaderboard", run, "--curves")
    assert curves.returncode == 0 and "genie-g0.3" in curves.stdout and "stability" in curves.stdout
    out = tmp_path / "scored"
    applied = clustra("apply", run, data, "--out", out)
    assert applied.returncode == 0, applied.stderr
    scored = pd.read_parquet(out)
    assert len(scored) == 500 and adjusted_rand_score(scored["label"], scored["cluster_id"]) > 0.99


def test_models_on_the_same_sample_share_one_tree_and_cut_it_as_a_fresh_fit(monkeypatch):
    import importlib

    import genieclust

    from cluster_core.algorithms import genie as genie_module

    mst_module = importlib.import_module(type(genieclust.Genie()).__mro__[1].__module__)
    built = []
    original = mst_module.quitefastmst.mst_euclid
    monkeypatch.setattr(mst_module.quitefastmst, "mst_euclid", lambda *a, **kw: built.append(1) or original(*a, **kw))
    monkeypatch.setattr(genie_module, "_TREES", type(genie_module._TREES)())
    rng = np.random.default_rng(4)
    x = np.vstack([rng.normal(c, 0.4, (150, 3)) for c in (0, 4, 8, 12)]).astype(np.float32)
    for k, gini in [(2, 0.3), (4, 0.3), (3, 0.1), (4, 0.5)]:
        ours = Genie(k, gini_threshold=gini, device="cpu").fit(x).labels_
        fresh = genieclust.Genie(n_clusters=k, gini_threshold=gini).fit_predict(x.astype(np.float64))
        assert adjusted_rand_score(ours, fresh) == 1.0, (k, gini)
    # the reference fits above build their own trees (4); ours built one for all four models
    assert len(built) == 4 + 1
