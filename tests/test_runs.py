"""Reading a run directory's JSON files (cluster_core.runs): what is there, and what is missing."""

from __future__ import annotations

import json

import pytest

from cluster_core.errors import ArtifactError
from cluster_core.runs import read_leaderboard, read_selection


@pytest.mark.parametrize(
    ("read", "file", "missing"),
    [
        (read_leaderboard, "leaderboard.json", "is not a run directory (no leaderboard.json)"),
        (read_selection, "selection.json", "has no selection.json (written by clustra train since curves exist)"),
    ],
    ids=["leaderboard", "selection"],
)
def test_a_run_file_is_read_or_named_when_missing(tmp_path, read, file, missing):
    with pytest.raises(ArtifactError) as error:
        read(tmp_path)
    assert str(tmp_path) in str(error.value) and missing in str(error.value)
    (tmp_path / file).write_text(json.dumps({"best": "kmeans-k3", "models": []}))
    assert read(tmp_path) == {"best": "kmeans-k3", "models": []}
