"""Outputs that cannot be written and artifacts that cannot be read: one error line, found
before any work starts, nothing stored lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cluster_core._state import check_output
from cluster_core.errors import InvalidInputError
from conftest import make_mixed_frame

CLUSTRA = [sys.executable, "-m", "clustra.cli"]


def clustra(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    return subprocess.run([*CLUSTRA, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    data = root / "table.parquet"
    make_mixed_frame(400, seed=3).drop(columns=["segment_truth"]).to_parquet(data)
    run = root / "run"
    result = clustra("train", data, "--out", run, "--algorithms", "kmeans", "--k", "2,3", "--seed", "1")
    assert result.returncode == 0, result.stderr
    return data, run


def _read_only_mount_available() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True
    ).returncode == 0


@pytest.mark.skipif(not _read_only_mount_available(), reason="needs `unshare -m` (root in a mount namespace) for a read-only bind mount")
@pytest.mark.parametrize("command", ["train", "apply"])
def test_a_read_only_folder_fails_at_once_not_after_the_work(trained, tmp_path, command):
    """Root ignores permission bits, so the folder is a read-only bind mount (a read-only
    file system, as a user without rights would also see)."""
    data, run = trained
    folder = tmp_path / "readonly"
    folder.mkdir()
    args = ["train", data, "--out", folder / "out", "--k", "2"] if command == "train" else ["apply", run, data, "--out", folder / "out"]
    script = f"mount --bind -o ro {folder} {folder} && exec {' '.join(map(str, CLUSTRA))} " + " ".join(f"'{a}'" for a in args)
    started = time.monotonic()
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, CLUSTRA_DEVICE="cpu"))
    line = _one_error_line(result)
    assert "--out" in line and "does not accept new files" in line and "Read-only file system" in line
    assert "starting Dask" not in result.stderr  # refused before any engine started
    assert time.monotonic() - started < 60
    assert list(folder.iterdir()) == []


def test_an_output_under_a_file_is_refused_before_the_work(trained, tmp_path):
    data, _ = trained
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = clustra("train", data, "--out", blocker / "run", "--k", "2")
    line = _one_error_line(result)
    assert "is not a directory" in line and "starting Dask" not in result.stderr
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("out\0put", "NUL character"),
        ("x" * 300, "at most 255"),
        ("/".join(["d" * 200] * 25), "at most 4,096"),
    ],
)
def test_invalid_output_paths_name_the_problem(tmp_path, path, expected):
    with pytest.raises(InvalidInputError, match=expected) as caught:
        check_output(tmp_path / path, overwrite=False)
    assert caught.value.field == "output"


def test_overwriting_a_file_leaves_nothing_beside_it(trained, tmp_path):
    data, _ = trained
    target = tmp_path / "target"
    target.write_text("an old file")
    result = clustra("train", data, "--out", target, "--k", "2", "--algorithms", "kmeans", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert target.is_dir() and (target / "leaderboard.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def _model_dir(run: Path) -> Path:
    board = json.loads((run / "leaderboard.json").read_text())
    return run / "models" / board["best"]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda npz: npz.write_bytes(b""), "is empty"),
        (lambda npz: npz.write_bytes(npz.read_bytes()[:100]), "cannot be read"),
        (lambda npz: npz.write_bytes(b"PK\x03\x04 not really a zip"), "cannot be read"),
        (lambda npz: npz.unlink(), "is missing"),
    ],
    ids=["empty", "truncated", "foreign", "missing"],
)
def test_a_damaged_model_array_file_is_one_clear_line(trained, tmp_path, damage, expected):
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    arrays = sorted(_model_dir(copy).rglob("*.npz"))
    assert arrays, "the model keeps its arrays in .npz files"
    damage(arrays[0])
    result = clustra("apply", copy, data, "--out", tmp_path / "scored")
    line = _one_error_line(result)
    assert expected in line and arrays[0].name in line
    assert not (tmp_path / "scored").exists()
