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
