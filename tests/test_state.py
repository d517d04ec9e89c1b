import json

import numpy as np
import pytest

from cluster_core._state import read_state, write_state
from cluster_core.errors import ArtifactError


def test_round_trip_nested(tmp_path):
    state = {"a": np.arange(3), "b": {"c": [np.eye(2), 1.5, "x"]}, "d": None}
    write_state(tmp_path, "s", state)
    back = read_state(tmp_path, "s")
    assert np.array_equal(back["a"], state["a"]) and np.array_equal(back["b"]["c"][0], np.eye(2))
    assert back["b"]["c"][1:] == [1.5, "x"] and back["d"] is None


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        write_state(tmp_path, "s", {"bad": np.array([{"x": 1}], dtype=object)})


def test_pickled_npz_is_not_loaded(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"a": {"__array__": "a0"}}))
    np.savez(tmp_path / "s.npz", a0=np.array([object()], dtype=object))
    with pytest.raises(ArtifactError, match="cannot be read"):
        read_state(tmp_path, "s")


def test_missing_and_corrupt_parts(tmp_path):
    with pytest.raises(ArtifactError, match="missing"):
        read_state(tmp_path, "nothing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_state(tmp_path, "bad")
