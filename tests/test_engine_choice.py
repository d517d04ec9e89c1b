"""`--scheduler auto` (the default): small data trains in this process, big data on a
LocalCluster, and the choice does not change the results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cluster_core.engine import AUTO, INPROCESS, LOCAL, format_bytes, resolve_engine
from conftest import make_mixed_frame


def test_auto_picks_the_process_for_small_data_and_a_cluster_for_big_data():
    assert resolve_engine(AUTO, 5 * 2**20) == INPROCESS
    assert resolve_engine(AUTO, 2**40) == LOCAL
    for explicit in (LOCAL, INPROCESS, "tcp://127.0.0.1:8786", None):
        assert resolve_engine(explicit, 5) == explicit


@pytest.mark.parametrize(("nbytes", "text"), [(0, "0 bytes"), (1023, "1,023 bytes"), (168 * 1024, "168 KiB"),
                                              (int(1.5 * 2**20), "1.5 MiB"), (3 * 2**30, "3.0 GiB")])
def test_sizes_read_naturally(nbytes, text):
    assert format_bytes(nbytes) == text


def _train(data, out, *extra):
    result = subprocess.run(
        [sys.executable, "-m", "clustra", "train", str(data), "--out", str(out), "--algorithms", "kmeans,gmm,hdbscan",
         "--k", "2,3,4", "--seed", "5", *extra],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, CLUSTRA_DEVICE="cpu"),
    )
    assert result.returncode == 0, result.stderr
    board = json.loads((out / "leaderboard.json").read_text())
    for row in board["models"]:  # timings differ from run to run
        for key in [key for key in row if key.endswith("_seconds")]:
            row.pop(key)
    return result.stderr, board


def test_the_default_trains_small_data_in_process_with_the_same_results_as_a_cluster(tmp_path):
    data = tmp_path / "table.parquet"
    make_mixed_frame(700, seed=4).drop(columns=["segment_truth"]).to_parquet(data)
    auto_log, auto_board = _train(data, tmp_path / "auto")
    local_log, local_board = _train(data, tmp_path / "local", "--scheduler", "local")
    assert "running in this process" in auto_log and "auto:" in auto_log and "starting Dask" not in auto_log
    assert "starting Dask" in local_log
    assert auto_board == local_board


def test_an_in_process_train_does_not_import_distributed(tmp_path):
    """No client can exist where ``distributed`` was never imported: the in-process engine names Dask's
    threaded scheduler, so Dask's first compute does not import it to look for one."""
    data = tmp_path / "table.parquet"
    make_mixed_frame(300, seed=2).to_parquet(data)
    script = (
        "import sys\n"
        "from cluster_core.usecases import train_run\n"
        f"train_run({str(data)!r}, {{'algorithms': ['kmeans'], 'k': [3], 'exclude': ['segment_truth']}}, cluster='inprocess')\n"
        "print('distributed' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CLUSTRA_DASK_SCHEDULER": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_the_in_process_engine_leaves_dasks_choice_where_distributed_is_loaded():
    """A process that imported ``distributed`` (the jobs service, a notebook with a client) keeps Dask's
    own scheduler choice: no global setting from an in-process run."""
    import dask
    import distributed  # noqa: F401 - loaded, as in such a process

    from cluster_core.engine import open_engine

    before = dask.config.get("scheduler", None)
    with open_engine(INPROCESS) as client:
        assert client is None
        assert dask.config.get("scheduler", None) == before
