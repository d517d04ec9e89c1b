"""The Python API (``import clustra``): the README's example runs as written, on a table in
memory and on a Parquet file, and gives the same leaderboard as the ``clustra`` command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import clustra
from cluster_core.errors import InvalidInputError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The code block between the README's python-api-example markers."""
    text = README.read_text()
    block = re.search(r"<!-- python-api-example[^>]*-->\s*```python\n(.*?)```\s*<!-- /python-api-example -->", text, re.S)
    assert block, "README.md lost its Python API example"
    return block.group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> tuple[Path, dict]:
    """The README example, run in a fresh directory; its variables."""
    where = tmp_path_factory.mktemp("api")
    previous = os.getcwd()
    os.chdir(where)
    try:
        names: dict = {}
        exec(compile(readme_example(), "README.md", "exec"), names)
    finally:
        os.chdir(previous)
    return where, names


def comparable(board: pd.DataFrame | list[dict]) -> list[tuple]:
    rows = board.to_dict("records") if isinstance(board, pd.DataFrame) else board
    return [(r["model_id"], r["n_clusters"], round(r["silhouette"], 12), round(r["davies_bouldin"], 12)) for r in rows]


def test_the_readme_example_trains_in_memory_and_from_parquet(example):
    where, names = example
    run, same, penguins = names["run"], names["same"], names["penguins"]
    assert isinstance(run, clustra.Run) and isinstance(run.leaderboard, pd.DataFrame)
    genie = {f"genie-g{g}-k{k}" for g in (0.1, 0.3, 0.5) for k in (2, 3, 4)}  # a default algorithm, Gini threshold swept
    assert set(run.leaderboard["model_id"]) == {"kmeans-k2", "kmeans-k3", "kmeans-k4", "gmm-k2", "gmm-k3", "gmm-k4", "hdbscan"} | genie
    assert run.best.model_id == run.leaderboard.iloc[0]["model_id"] and run.models["kmeans-k3"].n_clusters == 3
    assert (where / "runs" / "penguins" / "leaderboard.json").is_file()
    labels, scored = names["labels"], names["scored"]
    assert isinstance(labels, np.ndarray) and labels.shape == (len(penguins),)
    assert list(scored.columns) == list(names["model"].output_columns()) and len(scored) == len(penguins)
    np.testing.assert_array_equal(scored["cluster_id"].to_numpy(), labels)
    # one partition either way: the table in memory and its Parquet file give the same sweep
    assert comparable(same.leaderboard) == comparable(run.leaderboard)


def test_the_api_gives_the_cli_leaderboard_for_the_same_seed(example):
    where, names = example
    run_dir = where / "cli-run"
    cli = subprocess.run(
        [sys.executable, "-m", "clustra.cli", "train", str(where / "penguins.parquet"), "--out", str(run_dir),
         "--k", "2,3,4", "--exclude", "species,year", "--seed", "0"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, CLUSTRA_DEVICE="cpu"),
    )
    assert cli.returncode == 0, cli.stderr
    board = json.loads((run_dir / "leaderboard.json").read_text())["models"]
    assert comparable(board) == comparable(names["same"].leaderboard)


def test_load_model_predicts_like_the_run_and_saving_twice_is_refused(example, tmp_path):
    where, names = example
    model = clustra.load_model(where / "runs" / "penguins")
    assert model.model_id == names["run"].recommended.model_id  # a run directory stands for its recommended model
    np.testing.assert_array_equal(model.predict(names["penguins"]), names["run"].recommended.predict(names["penguins"]))
    names["run"].save(tmp_path / "again")
    with pytest.raises(InvalidInputError) as error:
        names["run"].save(tmp_path / "again")
    assert error.value.field == "output"


def test_a_bad_setting_names_its_field(mixed_frame):
    with pytest.raises(InvalidInputError) as error:
        clustra.train(mixed_frame, k=[1])
    assert error.value.field == "k" and "got [1]" in str(error.value)
    with pytest.raises(InvalidInputError) as error:
        clustra.train(mixed_frame, exclude=["nope"])
    assert error.value.field == "exclude" and "nope" in str(error.value)


def test_a_pyarrow_table_trains_without_parquet_on_disk(mixed_frame):
    import pyarrow as pa

    table = pa.Table.from_pandas(mixed_frame.drop(columns=["segment_truth"]), preserve_index=False)
    run = clustra.train(table, k=3, algorithms="kmeans", seed=0)
    assert list(run.models) == ["kmeans-k3"] and run.path is None
    assert len(np.unique(run.best.predict(table))) == 3


def test_the_estimators_are_the_scikit_learn_ones():
    from cluster_core import algorithms

    assert clustra.KMeans is algorithms.KMeans and clustra.GaussianMixture is algorithms.GaussianMixture
    assert clustra.HDBSCAN is algorithms.HDBSCAN
    X = np.vstack([np.zeros((20, 2)), np.ones((20, 2)) * 5]).astype(np.float32)
    assert len(set(clustra.KMeans(2, device="cpu").fit(X).labels_)) == 2


# -- insights, rename and report --------------------------------------------------------------

def test_the_readme_example_reads_insights_renames_and_writes_the_report(example):
    where, names = example
    run_dir = where / "runs" / "penguins"
    model_dir = run_dir / "models" / names["run"].recommended.model_id
    on_disk = json.loads((model_dir / "insights.json").read_text())
    assert names["insights"]["feature_impact"] == on_disk["feature_impact"]
    assert set(names["insights"]) >= {"profiles", "observations", "heatmap", "feature_impact", "associations"}
    # the rename is on disk and labels what the model adds to the data
    assert on_disk["clusters"][0]["name"] == "long flippers" and on_disk["clusters"][0]["name_source"] == "user"
    scored = clustra.load_model(run_dir).transform(names["penguins"])
    assert set(scored.loc[scored["cluster_id"] == 0, "cluster_name"]) == {"long flippers"}
    html = (where / "penguins.html").read_text()
    assert '<details class="model" id="model-kmeans-k3"' in html
    assert html.count('<details class="model"') == 1  # models= keeps the other models' sections out


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A small kmeans sweep on the mixed table, saved; (run, run directory)."""
    from conftest import make_mixed_frame

    frame = make_mixed_frame(400, seed=3).drop(columns=["segment_truth"])
    run = clustra.train(frame, k=[2, 3], algorithms="kmeans", seed=0, out=tmp_path_factory.mktemp("saved") / "run")
    return run, run.path, frame


def test_insights_of_a_run_a_model_of_it_and_a_model_directory(saved_run):
    run, run_dir, _ = saved_run
    recommended = run.recommended.model_id
    assert clustra.insights(run_dir)["model_id"] == recommended
    assert clustra.insights(run_dir, model="kmeans-k2")["model_id"] == "kmeans-k2"
    assert clustra.insights(run_dir / "models" / "kmeans-k3") == json.loads((run_dir / "models" / "kmeans-k3" / "insights.json").read_text())
    assert run.insights("kmeans-k2")["feature_impact"] == clustra.insights(run_dir, model="kmeans-k2")["feature_impact"]


@pytest.mark.parametrize(
    ("call", "field", "words"),
    [
        (lambda d: clustra.insights(d, model="gmm-k9"), "model", "'gmm-k9' is not a trained model of run"),
        (lambda d: clustra.insights(d / "models" / "kmeans-k2", model="kmeans-k2"), "model", "is not a run directory"),
        (lambda d: clustra.insights(d / "nowhere"), None, "does not exist"),
        (lambda d: clustra.rename(d, 7, "x", model="kmeans-k2"), "cluster", "cluster=7 is not a cluster of model 'kmeans-k2' (expected 0..1)"),
        (lambda d: clustra.rename(d, 0, "   "), "name", "should have 1 to 100 characters"),
        (lambda d: clustra.rename(d, 0, "x", model="nope"), "model", "'nope' is not a trained model"),
    ],
    ids=["unknown-model", "model-of-a-model-dir", "missing-path", "unknown-cluster", "blank-name", "rename-unknown-model"],
)
def test_bad_arguments_name_their_field(saved_run, call, field, words):
    _, run_dir, _ = saved_run
    with pytest.raises(InvalidInputError) as error:
        call(run_dir)
    assert words in str(error.value) and error.value.field == field


def test_a_model_without_insights_says_so(tmp_path, mixed_frame):
    from cluster_core.errors import ArtifactError

    run = clustra.train(mixed_frame, k=2, algorithms="kmeans", seed=0, insights=False, out=tmp_path / "run")
    with pytest.raises(ArtifactError, match="has no insights.json"):
        clustra.insights(tmp_path / "run")
    with pytest.raises(ArtifactError, match="has no insights"):
        run.insights()


def test_rename_is_the_cli_rename(saved_run, tmp_path):
    """The API and `clustra rename` leave the same model.json and insights.json behind."""
    import shutil

    _, run_dir, _ = saved_run
    by_api, by_cli = tmp_path / "api", tmp_path / "cli"
    shutil.copytree(run_dir, by_api)
    shutil.copytree(run_dir, by_cli)
    entry = clustra.rename(by_api, 1, "  FR   visitors ")
    cli = subprocess.run([sys.executable, "-m", "clustra.cli", "rename", str(by_cli), "--cluster", "1", "--name", "  FR   visitors "],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert entry["name"] == "FR visitors" and entry["name_source"] == "user"
    model = clustra.load_model(by_api).model_id
    for file in ("model.json", "insights.json"):
        assert (by_api / "models" / model / file).read_text() == (by_cli / "models" / model / file).read_text()


def test_a_run_in_memory_renames_then_saves_and_reports(tmp_path, mixed_frame):
    frame = mixed_frame.drop(columns=["segment_truth"])
    run = clustra.train(frame, k=[2, 3], algorithms="kmeans", seed=0)
    with pytest.raises(InvalidInputError, match="not saved") as error:
        run.report(tmp_path / "r.html")
    assert error.value.field == "run"
    entry = run.rename(0, "Prospects", model="kmeans-k2")
    assert entry == {**entry, "cluster_id": 0, "name": "Prospects", "name_source": "user"}
    assert [c["name"] for c in run.insights("kmeans-k2")["clusters"] if c["cluster_id"] == 0] == ["Prospects"]
    scored = run.models["kmeans-k2"].transform(frame)
    assert set(scored.loc[scored["cluster_id"] == 0, "cluster_name"]) == {"Prospects"}
    run.save(tmp_path / "run")
    assert clustra.insights(tmp_path / "run", model="kmeans-k2")["clusters"][0]["name"] == "Prospects"
    # once saved, a rename reaches the disk too
    run.rename(1, "Regulars", model="kmeans-k2")
    info = json.loads((tmp_path / "run" / "models" / "kmeans-k2" / "model.json").read_text())
    assert [(c["name"], c["name_source"]) for c in info["clusters"]] == [("Prospects", "user"), ("Regulars", "user")]
    out = run.report(tmp_path / "run.html", models=["kmeans-k2"])
    assert out == tmp_path / "run.html" and "Regulars" in out.read_text()
    with pytest.raises(InvalidInputError) as error:
        clustra.report(tmp_path / "run", out)
    assert error.value.field == "output"
