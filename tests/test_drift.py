"""Drift of segments (cluster_core.drift, ``clustra drift``): a planted shift is flagged, an
unshifted sample of the same data passes, bad input exits with 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clustra.cli import main
from cluster_core import drift
from cluster_core.model import ClusteringModel
from cluster_core.usecases import train_run

CENTERS = np.array([[0, 0, 0], [5, 0, 1], [0, 5, 2], [5, 5, 3]], float)
CHANNELS = np.array(["web", "shop", "phone", "app"])


def make_segments(n: int, seed: int, *, double: int | None = None, shift: str | None = None) -> pd.DataFrame:
    """Four equal segments (three numbers and a category); ``double`` repeats one segment's
    share, ``shift`` moves one feature by its standard deviation."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 4, n)
    if double is not None:
        segment = np.concatenate([segment, np.full(int((segment == double).sum()), double)])
    x = CENTERS[segment] + rng.normal(0, 1, (len(segment), 3))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "channel": CHANNELS[segment]})
    frame.loc[rng.random(len(frame)) < 0.02, "b"] = np.nan
    if shift is not None:
        frame[shift] += frame[shift].std()
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("drift")
    outcome = train_run(make_segments(3000, 0), {"algorithms": ["kmeans"], "k": [4], "seed": 1},
                        out=root / "run", cluster="inprocess")
    return outcome.run_dir, root


def _batch(root: Path, name: str, frame: pd.DataFrame) -> Path:
    path = root / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def _model_dir(run: Path) -> Path:
    (model,) = (run / "models").iterdir()
    return model


def test_training_keeps_a_reference_as_json_and_npz(trained) -> None:
    run, _ = trained
    model_dir = _model_dir(run)
    assert (model_dir / "drift.json").is_file() and (model_dir / "drift.npz").is_file()
    with np.load(model_dir / "drift.npz", allow_pickle=False) as arrays:
        assert all(a.dtype.kind in "iuf" for a in arrays.values())
    reference = drift.read_reference(model_dir)
    assert int(reference["cluster_counts"].sum()) == reference["n_rows"] == 3000
    assert sorted(reference["cluster_ids"].tolist()) == [0, 1, 2, 3]
    features = {f["name"]: f for f in reference["features"]}
    assert set(features) == {"a", "b", "c", "channel"}
    assert len(features["a"]["edges"]) == drift.NUMERIC_BINS - 1
    assert features["b"]["counts"][-1] > 0  # the missing-value bin
    assert sorted(features["channel"]["categories"]) == sorted(CHANNELS)
    loaded = ClusteringModel.load(model_dir)
    assert loaded.drift_reference["n_rows"] == 3000


def _drift(*args: object) -> int:
    return main(["drift", *map(str, args)])


def test_a_planted_shift_is_flagged(trained, capsys) -> None:
    run, root = trained
    data = _batch(root, "shifted", make_segments(3000, 2, double=0, shift="a"))
    assert _drift(run, data, "--json", root / "shifted.json") == 3
    out = capsys.readouterr().out
    (verdict,) = [line for line in out.splitlines() if line.startswith("drift:")]
    assert verdict.startswith("drift: DETECTED - ")
    assert "feature a: PSI" in verdict and "share" in verdict
    report = json.loads((root / "shifted.json").read_text())
    assert report["drift"] is True
    psi = {f["name"]: f["psi"] for f in report["features"]}
    assert psi["a"] >= 0.2 > psi["c"]
    doubled = max(report["clusters"]["clusters"], key=lambda r: r["change"])
    assert doubled["batch_share"] > doubled["reference_share"] + 0.1


@pytest.mark.parametrize(("kwargs", "reason"), [({"double": 0}, "share"), ({"shift": "c"}, "feature c: PSI")],
                         ids=["segment-doubled", "feature-shifted"])
def test_each_planted_change_alone_is_flagged(trained, capsys, kwargs, reason) -> None:
    run, root = trained
    data = _batch(root, "one-change", make_segments(3000, 3, **kwargs))
    assert _drift(run, data) == 3
    assert reason in capsys.readouterr().out


def test_an_unshifted_sample_of_the_same_data_passes(trained, capsys) -> None:
    run, root = trained
    data = _batch(root, "same", make_segments(3000, 4))
    assert _drift(run, data, "--sample-rows", 2000, "--json", "-") == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["drift"] is False and report["reasons"] == []
    assert 1800 <= report["batch_rows"] <= 2200
    assert "drift: none - " in captured.err
    assert max(f["psi"] for f in report["features"]) < 0.1


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing-column", "--data: the data lacks column(s) ['channel'] that the model uses"),
        ("no-reference", "has no drift reference (drift.json)"),
        ("missing-data", "does not exist"),
        ("json-unwritable", "--json: cannot write the report to"),
    ],
)
def test_bad_input_exits_with_2(trained, tmp_path, capsys, case, expected) -> None:
    run, root = trained
    model, data = _model_dir(run), _batch(root, "ok", make_segments(500, 5))
    args: list[object] = [model, data]
    if case == "missing-column":
        args[1] = _batch(root, "lacking", make_segments(500, 5).drop(columns=["channel"]))
    elif case == "no-reference":
        old = tmp_path / "old-model"
        shutil.copytree(model, old)
        (old / "drift.json").unlink()
        (old / "drift.npz").unlink()
        args[0] = old
        assert ClusteringModel.load(old).drift_reference is None  # older models still load
    elif case == "missing-data":
        args[1] = tmp_path / "nothing.parquet"
    else:
        args += ["--json", tmp_path / "no-such-dir" / "r.json"]
    assert _drift(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("clustra: error: ") and expected in err, err


@pytest.mark.parametrize("flag", [("--threshold", "0"), ("--threshold", "x"), ("--sample-rows", "-5"),
                                  ("--share-threshold", "inf")])
def test_bad_flags_are_usage_errors(trained, flag) -> None:
    run, root = trained
    with pytest.raises(SystemExit) as exit_info:
        _drift(run, root / "ok.parquet", *flag)
    assert exit_info.value.code == 2


def test_psi_values() -> None:
    assert drift.psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    # (0.5-0.25)ln(2) + (0.5-0.75)ln(2/3) = 0.1733 + 0.1014
    assert drift.psi(np.array([1, 3]), np.array([1, 1])) == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5))
    with pytest.raises(ValueError, match=r"expected counts of shape \(2,\), got \(3,\)"):
        drift.psi(np.array([1, 1]), np.array([1, 1, 1]))


def test_share_threshold_must_be_a_fraction(trained) -> None:
    from cluster_core.errors import InvalidInputError

    run, _ = trained
    model = ClusteringModel.load(_model_dir(run))
    with pytest.raises(InvalidInputError, match=r"share_threshold=2.0 should be in \(0, 1\]"):
        drift.compare(model, model.drift_reference, make_segments(10, 0), share_threshold=2.0)


def test_reference_from_given_labels_equals_the_models_own(trained) -> None:
    run, _ = trained
    model = ClusteringModel.load(_model_dir(run))
    sample = make_segments(400, 6)
    own = drift.build_reference(model, sample)
    given = drift.build_reference(model, sample, labels=model.predict(sample))
    assert np.array_equal(own["cluster_counts"], given["cluster_counts"])
    with pytest.raises(ValueError, match=r"labels of shape \(3,\); expected \(400,\)"):
        drift.build_reference(model, sample, labels=np.zeros(3))


def test_reference_from_shared_column_references_equals_one_built_alone(trained) -> None:
    run, _ = trained
    model = ClusteringModel.load(_model_dir(run))
    sample = make_segments(400, 7)
    alone = drift.build_reference(model, sample)
    shared = drift.build_reference(model, sample, columns=drift.column_references(model.pipeline, sample))
    assert [f["name"] for f in shared["features"]] == [f["name"] for f in alone["features"]]
    for a, b in zip(alone["features"], shared["features"]):
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[key], b[key]) if isinstance(a[key], np.ndarray) else a[key] == b[key] for key in a)
    assert np.array_equal(alone["cluster_counts"], shared["cluster_counts"]) and alone["skipped"] == shared["skipped"]
