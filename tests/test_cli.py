"""End to end: the ``clustra`` command on a hive-partitioned Parquet dataset, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_mixed_frame

CLUSTRA = [sys.executable, "-m", "clustra.cli"]


def clustra(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    return subprocess.run([*CLUSTRA, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real `clustra train` run shared by the tests of this module."""
    from conftest import write_hive

    root = tmp_path_factory.mktemp("cli")
    data = write_hive(make_mixed_frame(800, seed=1), root / "data", "region")
    run = root / "run"
    result = clustra("train", data, "--out", run, "--algorithms", "kmeans,gmm,hdbscan", "--k", "2,3,4", "--seed", "7",
                     "--exclude", "segment_truth")
    assert result.returncode == 0, result.stderr
    return data, run, result


def test_train_writes_a_ranked_leaderboard(trained):
    _, run, result = trained
    board = json.loads((run / "leaderboard.json").read_text())
    models = board["models"]
    assert [m["model_id"] for m in models if m["status"] == "ok"][0] == board["best"]
    assert {m["model_id"] for m in models} == {"kmeans-k2", "kmeans-k3", "kmeans-k4", "gmm-k2", "gmm-k3", "gmm-k4", "hdbscan"}
    for m in models:
        assert {"model_id", "algorithm", "n_clusters", "silhouette", "davies_bouldin", "calinski_harabasz"} <= set(m)
    sil = [m["silhouette"] for m in models if m["silhouette"] is not None]
    assert sil == sorted(sil, reverse=True)
    for m in models:
        if m["status"] == "ok":
            assert (run / "models" / m["model_id"] / "model.json").is_file()
    assert "best by silhouette:" in result.stdout and "silhouette" in result.stdout
    assert f"recommended model: {board['recommended']}" in result.stdout
    assert "customer_id" in result.stderr and "identifier" in result.stderr  # the schema was shown
    schema = json.loads((run / "schema.json").read_text())
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    assert kinds["signup"] == "datetime" and kinds["is_member"] == "boolean" and kinds["region"] == "categorical"


def test_leaderboard_command(trained):
    _, run, _ = trained
    result = clustra("leaderboard", run)
    assert result.returncode == 0 and "kmeans-k3" in result.stdout


def test_apply_keeps_rows_columns_and_order(trained, tmp_path):
    data, run, _ = trained
    out = tmp_path / "scored"
    result = clustra("apply", run, data, "--out", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    board = json.loads((run / "leaderboard.json").read_text())
    assert summary["model_id"] == board["recommended"]
    assert f"using the recommended model of run {run}: {board['recommended']}" in result.stderr
    original = pd.read_parquet(data)
    scored = pd.read_parquet(out)
    assert len(scored) == len(original) == summary["n_rows"]
    assert "cluster_id" in scored.columns
    pd.testing.assert_series_equal(
        scored["customer_id"].reset_index(drop=True), original["customer_id"].reset_index(drop=True)
    )
    assert scored["constant"].eq("same").all()  # unused columns pass through
    assert scored["cluster_id"].ge(-1).all()


def test_apply_columns_writes_a_key_and_the_cluster_columns_only(trained, tmp_path):
    data, run, _ = trained
    full, keyed = tmp_path / "full", tmp_path / "keyed"
    assert clustra("apply", run, data, "--out", full).returncode == 0
    result = clustra("apply", run, data, "--out", keyed, "--columns", "customer_id")
    assert result.returncode == 0, result.stderr
    scored, everything = pd.read_parquet(keyed), pd.read_parquet(full)
    added = [c for c in everything.columns if c not in pd.read_parquet(data).columns]
    assert list(scored.columns) == ["customer_id", *added] and "cluster_id" in added
    pd.testing.assert_frame_equal(scored, everything[["customer_id", *added]])
    bad = clustra("apply", run, data, "--out", tmp_path / "bad", "--columns", "customer_id,no_such")
    assert bad.returncode != 0 and "no_such" in bad.stderr and "not in the dataset" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_apply_with_a_model_directory_matches_in_process_scoring(trained, tmp_path):
    data, run, _ = trained
    from cluster_core.model import ClusteringModel

    model_dir = run / "models" / "kmeans-k3"
    out = tmp_path / "scored"
    assert clustra("apply", model_dir, data, "--out", out).returncode == 0
    scored = pd.read_parquet(out)
    expected = ClusteringModel.load(model_dir).assign(pd.read_parquet(data)).labels
    assert (scored["cluster_id"].to_numpy() == expected).all()
    assert "distance" in scored.columns


def _empty(tmp: Path) -> Path:
    make_mixed_frame(10).iloc[:0].to_parquet(tmp / "empty.parquet")
    return tmp / "empty.parquet"


def _unusable(tmp: Path) -> Path:
    pd.DataFrame({"id": range(50), "c": ["x"] * 50}).to_parquet(tmp / "ids.parquet")
    return tmp / "ids.parquet"


def _corrupt(tmp: Path) -> Path:
    root = tmp / "mixed"
    root.mkdir()
    make_mixed_frame(100).to_parquet(root / "good-0.parquet")
    make_mixed_frame(100, seed=2).to_parquet(root / "good-1.parquet")
    (root / "bad.parquet").write_bytes(b"PAR1 this is not parquet at all")
    return root


def _small(tmp: Path) -> Path:
    make_mixed_frame(40).to_parquet(tmp / "small.parquet")
    return tmp / "small.parquet"


@pytest.mark.parametrize(
    "make_data, extra, message",
    [
        (lambda tmp: tmp / "no-such-dir", [], "does not exist"),
        (_empty, [], "has no rows"),
        (_unusable, [], "no usable columns"),
        (_small, ["--k", "3,60"], "k=60 is larger than the"),
        (_small, ["--k", "3,500"], "k=500 exceeds --max-k=100"),
        (_small, ["--algorithms", "kmeans,spectral"], "unknown algorithm(s) ['spectral']"),
        (_corrupt, [], "bad.parquet' is not a readable Parquet file"),
        (_small, ["--k", "three"], "expected comma-separated integers"),
        (_small, ["--exclude", "nope"], "--exclude: column(s) ['nope'] not in the dataset"),
    ],
    ids=["missing-path", "empty", "no-usable-columns", "k-above-rows", "k-above-max-k", "unknown-algorithm", "corrupt-file",
         "bad-k", "unknown-column"],
)
def test_bad_input_is_one_clear_line_and_no_run(tmp_path, make_data, extra, message):
    data = make_data(tmp_path)
    run = tmp_path / "run"
    result = clustra("train", data, "--out", run, *extra)
    assert result.returncode == 2
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, result.stderr
    assert not run.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_existing_output_is_not_overwritten(trained, tmp_path):
    data, run, _ = trained
    before = (run / "leaderboard.json").read_text()
    result = clustra("train", data, "--out", run, "--k", "2")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (run / "leaderboard.json").read_text() == before


def test_apply_rejects_a_dataset_missing_model_columns(trained, tmp_path):
    _, run, _ = trained
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(other)
    result = clustra("apply", run, other, "--out", tmp_path / "o")
    assert result.returncode == 2 and "is required by the model but missing" in result.stderr
    assert not (tmp_path / "o").exists()
