"""End to end through the ``clustra`` command: insights.json for every model of a penguins run,
renaming, and the names and explanations ``clustra apply`` writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from cluster_core.datasets import DEMO_EXCLUDE

CLUSTRA = [sys.executable, "-m", "clustra.cli"]
TOP_KEYS = {"profiles", "observations", "heatmap", "feature_impact", "associations"}
PENGUIN_COLUMNS = {"bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "island"} - set(DEMO_EXCLUDE)


def clustra(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    return subprocess.run([*CLUSTRA, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory):
    from cluster_core.datasets import DEMO_EXCLUDE, write_penguins

    root = tmp_path_factory.mktemp("insights-cli")
    data = write_penguins(root)
    run = root / "run"
    result = clustra("train", data, "--out", run, "--algorithms", "kmeans,gmm,hdbscan", "--k", "3,4",
                     "--exclude", ",".join(DEMO_EXCLUDE))
    assert result.returncode == 0, result.stderr
    return data, run


def test_every_model_of_a_penguins_run_has_insights(penguins_run):
    _, run = penguins_run
    board = json.loads((run / "leaderboard.json").read_text())
    model_ids = [m["model_id"] for m in board["models"] if m["status"] == "ok"]
    assert set(model_ids) == {"kmeans-k3", "kmeans-k4", "gmm-k3", "gmm-k4", "hdbscan"}
    for model_id in model_ids:
        doc = json.loads((run / "models" / model_id / "insights.json").read_text())
        assert TOP_KEYS <= set(doc), model_id
        assert set(doc["profiles"]["columns"]) == PENGUIN_COLUMNS
        assert {e["column"] for e in doc["feature_impact"]} == PENGUIN_COLUMNS
        assert all(set(e) >= {"column", "impact"} for e in doc["feature_impact"])
        assert set(doc["associations"]["columns"]) == PENGUIN_COLUMNS
        info = json.loads((run / "models" / model_id / "model.json").read_text())
        assert [c["name"] for c in doc["clusters"]] == [c["name"] for c in info["clusters"]]
        assert not any("__" in c["name"] for c in doc["clusters"])
    assert json.loads((run / "run.json").read_text())["insights_seconds"] > 0


def test_renamed_clusters_show_up_in_apply_output(penguins_run, tmp_path):
    data, run = penguins_run
    result = clustra("rename", run, "--cluster", "0", "--name", "Gentoo-like")
    assert result.returncode == 0, result.stderr
    assert "'Gentoo-like'" in result.stdout
    out = tmp_path / "scored"
    result = clustra("apply", run, data, "--out", out, "--explain")
    assert result.returncode == 0, result.stderr
    scored = pd.read_parquet(out)
    assert (scored.loc[scored["cluster_id"] == 0, "cluster_name"] == "Gentoo-like").all()
    assert (scored["cluster_id"] == 0).any()
    assert (scored.loc[scored["cluster_id"] != 0, "cluster_name"] != "Gentoo-like").all()
    first = json.loads(scored["explanation"].iloc[0])
    assert 0 < len(first) <= 5 and {e["column"] for e in first} <= PENGUIN_COLUMNS | {"(cluster prior)"}
    assert scored["runner_up"].notna().all() and (scored["runner_up"] != scored["cluster_id"]).all()
    chosen = json.loads((run / "leaderboard.json").read_text())["recommended"]  # what rename and apply both use
    insights = json.loads((run / "models" / chosen / "insights.json").read_text())
    assert insights["clusters"][0]["name"] == "Gentoo-like" and insights["clusters"][0]["name_source"] == "user"


@pytest.mark.parametrize("args, message", [
    (["--cluster", "99", "--name", "x"], "--cluster: cluster=99 is not a cluster of model"),
    (["--cluster", "0", "--name", " "], "--name: name ' ' should have 1 to 100 characters"),
], ids=["unknown-cluster", "blank-name"])
def test_rename_errors_are_one_line_naming_the_flag(penguins_run, args, message):
    _, run = penguins_run
    result = clustra("rename", run, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
