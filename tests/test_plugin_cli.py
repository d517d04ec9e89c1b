"""A plugin algorithm (tests/plugins/clustra_kcenters.py) named in CLUSTRA_PLUGINS: trained on Dask
workers, ranked, saved, loaded and applied by the ``clustra`` command, with no other registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_mixed_frame, write_hive

CLUSTRA = [sys.executable, "-m", "clustra.cli"]
PLUGIN_DIR = Path(__file__).parent / "plugins"


def plugin_env(plugins: str = "clustra_kcenters") -> dict[str, str]:
    """The environment of a process that loads ``plugins`` (the plugin directory on PYTHONPATH)."""
    path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, CLUSTRA_DEVICE="cpu", CLUSTRA_PLUGINS=plugins, PYTHONPATH=path)


def clustra(*args, plugins: str = "clustra_kcenters", timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLUSTRA, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=plugin_env(plugins))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``clustra train DATA --algorithms kcenters --k 3`` with the plugin loaded from CLUSTRA_PLUGINS."""
    root = tmp_path_factory.mktemp("plugin")
    data = write_hive(make_mixed_frame(600, seed=3), root / "data", "region")
    run = root / "run"
    result = clustra("train", data, "--out", run, "--algorithms", "kcenters", "--k", "3", "--exclude", "segment_truth")
    assert result.returncode == 0, result.stderr
    return data, run


def test_plugin_is_ranked_on_the_leaderboard(trained):
    _, run = trained
    result = clustra("leaderboard", run)
    assert result.returncode == 0, result.stderr
    assert "kcenters-k3" in result.stdout and "kcenters" in result.stdout
    board = json.loads((run / "leaderboard.json").read_text())
    (entry,) = board["models"]
    assert (entry["model_id"], entry["algorithm"], entry["status"], entry["n_clusters"]) == ("kcenters-k3", "kcenters", "ok", 3)
    assert board["best"] == "kcenters-k3"
    state = json.loads((run / "models" / "kcenters-k3" / "estimator.json").read_text())
    assert state["algorithm"] == "kcenters"


def test_apply_assigns_the_plugins_clusters(trained, tmp_path):
    data, run = trained
    out = tmp_path / "scored"
    result = clustra("apply", run, data, "--out", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model_id"] == "kcenters-k3"
    scored = pd.read_parquet(out)
    assert len(scored) == len(pd.read_parquet(data))
    assert set(scored["cluster_id"]) == {0, 1, 2}
    assert "distance" in scored.columns and "cluster_probability" not in scored.columns  # the registered capabilities
    assert (scored["distance"] >= 0).all()
    # the same rows assigned by the loaded KCenters estimator in another process
    rows = tmp_path / "rows.parquet"
    scored.drop(columns=["cluster_id", "distance"]).to_parquet(rows)
    script = (
        "import sys, numpy as np, pandas as pd\n"
        "from cluster_core.runs import load_model\n"
        f"model = load_model({str(run)!r})\n"
        "assert type(model.estimator).__name__ == 'KCenters', type(model.estimator)\n"
        f"np.save(sys.argv[1], model.assign(pd.read_parquet({str(rows)!r})).labels)\n"
    )
    labels = tmp_path / "labels.npy"
    subprocess.run([sys.executable, "-c", script, str(labels)], check=True, env=plugin_env(), timeout=120)
    assert np.array_equal(np.load(labels), scored["cluster_id"].to_numpy())


def test_without_the_plugin_the_cli_names_what_is_missing(trained, tmp_path):
    data, run = trained
    train = clustra("train", data, "--out", tmp_path / "run", "--algorithms", "kcenters", plugins="")
    assert train.returncode == 2
    assert "--algorithms: unknown algorithm(s) ['kcenters']" in train.stderr and "'kmeans'" in train.stderr
    apply = clustra("apply", run, data, "--out", tmp_path / "scored", plugins="")
    assert apply.returncode == 2
    assert "'kcenters'" in apply.stderr and "CLUSTRA_PLUGINS" in apply.stderr
    broken = clustra("train", data, "--out", tmp_path / "run", "--algorithms", "kmeans", plugins="clustra_no_such_plugin")
    assert broken.returncode != 0 and "clustra_no_such_plugin" in broken.stderr and "CLUSTRA_PLUGINS" in broken.stderr
