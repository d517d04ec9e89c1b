"""Streaming passes through Arrow: the same partitions, rows and results as the pandas partitions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cluster_core.apply as apply_module
from cluster_core.algorithms import KMeans
from cluster_core.apply import apply_model
from cluster_core.arrow_stream import parquet_pieces
from cluster_core.data import dataset_from_table, read_dataset
from cluster_core.errors import DataError
from cluster_core.features import FeaturePipeline
from cluster_core.model import ClusteringModel
from cluster_core.schema import infer_schema
from cluster_core.training import featurize_split, split_counts
from conftest import make_mixed_frame, write_hive


def write_files(frame: pd.DataFrame, root, n_files: int = 3, row_group_size: int = 100):
    root.mkdir(parents=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        frame.iloc[rows].to_parquet(root / f"part-{i}.parquet", index=False, row_group_size=row_group_size)
    return root


@pytest.fixture
def frame():
    frame = make_mixed_frame(900, seed=3)
    frame["visits_int"] = pd.array(np.where(np.arange(900) % 7 == 0, None, np.arange(900) % 5), dtype="Int64")
    frame["region"] = frame["region"].astype("category")  # stored dictionary-encoded
    return frame


@pytest.fixture
def model(frame):
    schema = infer_schema(frame, exclude=["segment_truth", "customer_id"])
    pipeline = FeaturePipeline(schema).fit(frame)
    estimator = KMeans(3, random_state=0, device="cpu").fit(pipeline.transform(frame))
    return ClusteringModel(pipeline, estimator, "kmeans-k3", metadata={"algorithm": "kmeans"})


@pytest.mark.parametrize("split_row_groups", [None, 2], ids=["whole-files", "two-row-groups"])
def test_pieces_hold_the_rows_of_each_partition(frame, tmp_path, split_row_groups):
    dataset = read_dataset(str(write_files(frame, tmp_path / "data")))
    if split_row_groups:
        from cluster_core.data import _read_frame

        dataset.frame = _read_frame(dataset.path, None, "pandas", split_row_groups=split_row_groups)
    pieces = parquet_pieces(dataset, ["spend", "plan"])
    assert pieces is not None and len(pieces) == dataset.frame.npartitions == (3 if split_row_groups is None else 6)
    for piece, part in zip(pieces, dataset.frame.to_delayed()):
        table = piece.read(["spend", "plan"])
        part = part.compute()
        assert table.column_names == ["spend", "plan"] and table.num_rows == len(part)
        np.testing.assert_array_equal(table.column("spend").to_numpy(zero_copy_only=False), part["spend"].to_numpy())


def test_frames_that_are_not_plain_parquet_reads_keep_the_pandas_path(frame, tmp_path):
    hive = read_dataset(str(write_hive(frame, tmp_path / "hive", "region")))
    assert parquet_pieces(hive, ["spend", "region"]) is None  # region lives in the paths
    assert parquet_pieces(hive, ["spend", "plan"]) is not None  # the stored columns stream through Arrow
    assert parquet_pieces(dataset_from_table(frame), ["spend"]) is None
    plain = read_dataset(str(write_files(frame, tmp_path / "plain")))
    plain.frame = plain.frame.persist(scheduler="sync")
    assert parquet_pieces(plain, ["spend"]) is None


def test_a_file_without_a_needed_column_is_named(frame, tmp_path):
    root = write_files(frame, tmp_path / "data", n_files=2)
    pieces = parquet_pieces(read_dataset(str(root)), ["spend"])
    frame.drop(columns="spend").to_parquet(root / "part-1.parquet", index=False)
    with pytest.raises(DataError, match=r"column 'spend' is not stored in .*part-1.parquet"):
        pieces[1].read(["spend"])


def test_training_split_through_arrow_equals_the_pandas_split(frame, model, tmp_path):
    dataset = read_dataset(str(write_files(frame, tmp_path / "data")))
    pieces = parquet_pieces(dataset, model.pipeline.input_columns)
    for index, (piece, part) in enumerate(zip(pieces, dataset.frame.to_delayed())):
        arrow = featurize_split(piece, index, model.pipeline, 7, 0.2)
        pandas = featurize_split(part.compute(), index, model.pipeline, 7, 0.2)
        for got, expected in zip(arrow, pandas):
            assert got.shape == expected.shape and got.shape[0] > 0
            np.testing.assert_array_equal(got, expected)
        assert split_counts(piece, index, model.pipeline.input_columns, 7, 0.2) == (arrow[0].shape[0], arrow[1].shape[0])


@pytest.mark.parametrize("explain", [False, True], ids=["plain", "explain"])
def test_apply_through_arrow_writes_what_the_pandas_path_writes(frame, model, tmp_path, monkeypatch, explain):
    dataset = read_dataset(str(write_files(frame, tmp_path / "data")))
    arrow = apply_model(model, dataset, tmp_path / "arrow", explain=explain)
    monkeypatch.setattr(apply_module, "parquet_pieces", lambda *args: None)
    pandas = apply_model(model, dataset, tmp_path / "pandas", explain=explain)
    assert arrow == {**pandas, "out": str(tmp_path / "arrow")}
    assert sorted(p.name for p in (tmp_path / "arrow").iterdir()) == sorted(p.name for p in (tmp_path / "pandas").iterdir())
    got, expected = pd.read_parquet(tmp_path / "arrow"), pd.read_parquet(tmp_path / "pandas")
    pd.testing.assert_frame_equal(got, expected)
    assert got["region"].dtype == "category" and got["visits_int"].dtype == "Int64"  # pandas dtypes survive
    if explain:
        assert json.loads(got["explanation"].iloc[0])[0]["column"] in set(model.pipeline.input_columns)


def test_apply_columns_writes_only_the_named_input_columns_on_both_paths(frame, model, tmp_path, monkeypatch):
    dataset = read_dataset(str(write_files(frame, tmp_path / "data")))
    full = pd.read_parquet(apply_model(model, dataset, tmp_path / "full")["out"])
    keep = ["customer_id", "plan"]  # plan is a model input, customer_id is not
    arrow = apply_model(model, dataset, tmp_path / "arrow", columns=keep)
    monkeypatch.setattr(apply_module, "parquet_pieces", lambda *args: None)
    pandas = apply_model(model, dataset, tmp_path / "pandas", columns=keep)
    assert arrow["cluster_counts"] == pandas["cluster_counts"] and arrow["n_rows"] == len(frame)
    added = [c for c in full.columns if c not in frame.columns]
    for out in ("arrow", "pandas"):
        got = pd.read_parquet(tmp_path / out)
        assert list(got.columns) == keep + added
        pd.testing.assert_frame_equal(got, full[keep + added])  # same rows, order, clusters and dtypes


def test_apply_columns_must_name_columns_of_the_dataset(frame, model, tmp_path):
    from cluster_core.errors import InvalidInputError

    dataset = read_dataset(str(write_files(frame, tmp_path / "data")))
    with pytest.raises(InvalidInputError, match=r"columns \['nope'\] are not in the dataset"):
        apply_model(model, dataset, tmp_path / "a", columns=["spend", "nope"])
    with pytest.raises(InvalidInputError, match=r"named more than once"):
        apply_model(model, dataset, tmp_path / "b", columns=["spend", "spend"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_training_streamed_through_arrow_equals_the_pandas_partitions(frame, tmp_path, monkeypatch):
    import cluster_core.training as training_module
    from cluster_core.config import TrainConfig
    from cluster_core.progress import Progress
    from cluster_core.training import train_models

    data = str(write_files(frame.drop(columns=["visits_int"]), tmp_path / "data"))
    config = TrainConfig(algorithms=["kmeans", "gmm-diag"], k=[3], persist="never", local_fit_max_bytes=0,
                         exclude=["segment_truth"])
    lines: list[str] = []

    class Lines(Progress):
        def message(self, text: str) -> None:
            lines.append(text)

    arrow = train_models(read_dataset(data), config, progress=Lines())
    assert any("through Arrow" in line for line in lines)
    monkeypatch.setattr(training_module, "parquet_pieces", lambda *args: None)
    pandas = train_models(read_dataset(data), config)
    assert not arrow.data.persisted and arrow.data.n_validation == pandas.data.n_validation
    for a, b in zip(arrow.leaderboard()["models"], pandas.leaderboard()["models"]):
        # the features are bit for bit the same (test above); in-process threaded reductions make the
        # metrics vary by ~3e-8 between two runs of the same path
        assert a["model_id"] == b["model_id"] and a["silhouette"] == pytest.approx(b["silhouette"], abs=1e-6)
        assert a["cluster_sizes"] == b["cluster_sizes"]


def test_an_empty_file_is_scored_as_no_rows_on_both_paths(frame, model, tmp_path, monkeypatch):
    root = write_files(frame, tmp_path / "data", n_files=2)
    frame.iloc[:0].to_parquet(root / "part-2.parquet", index=False)
    dataset = read_dataset(str(root))
    pieces = parquet_pieces(dataset, model.pipeline.input_columns)
    assert [featurize_split(p, i, model.pipeline, 0, 0.2)[0].shape[0] > 0 for i, p in enumerate(pieces)] == [True, True, False]
    arrow = apply_model(model, dataset, tmp_path / "arrow")
    monkeypatch.setattr(apply_module, "parquet_pieces", lambda *args: None)
    pandas = apply_model(model, dataset, tmp_path / "pandas")
    assert arrow["n_rows"] == pandas["n_rows"] == 900 and arrow["cluster_counts"] == pandas["cluster_counts"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "arrow"), pd.read_parquet(tmp_path / "pandas"))


def test_streaming_through_arrow_on_a_dask_cluster(frame, model, tmp_path, dask_client):
    from cluster_core.config import TrainConfig
    from cluster_core.training import train_models

    dataset = read_dataset(str(write_files(frame.drop(columns=["visits_int"]), tmp_path / "data")))
    config = TrainConfig(algorithms=["kmeans"], k=[3], persist="never", local_fit_max_bytes=0, exclude=["segment_truth"])
    result = train_models(dataset, config, client=dask_client)
    assert not result.data.persisted and result.data.n_train + result.data.n_validation == 900
    summary = apply_model(model, read_dataset(str(write_files(frame, tmp_path / "data2"))), tmp_path / "scored")
    assert summary["n_rows"] == 900 and summary["n_partitions"] == 3
    assert (pd.read_parquet(tmp_path / "scored")["cluster_id"].to_numpy() == model.predict(frame)).all()


@pytest.mark.parametrize("layout", ["files", "row-groups", "empty-file", "categorical", "types-differ"])
def test_the_schema_sample_through_arrow_is_dasks_sample(frame, tmp_path, layout):
    """sample_frame draws Dask's ``frame.sample(frac, random_state=seed)`` rows from each partition's Arrow
    table: the same rows, order and dtypes (a dictionary-encoded column keeps Dask's path)."""
    from cluster_core.data import _arrow_sample, _read_frame, sample_frame

    if layout != "categorical":
        frame = frame.assign(region=frame["region"].astype(str))
    root = write_files(frame, tmp_path / "data", n_files=3)
    if layout == "empty-file":
        frame.iloc[:0].to_parquet(root / "part-3.parquet", index=False)
    if layout == "types-differ":  # one file stores the integer ids as int32
        frame.iloc[:50].astype({"customer_id": "int32"}).to_parquet(root / "part-3.parquet", index=False)
        frame = pd.concat([frame, frame.iloc[:50]], ignore_index=True)
    dataset = read_dataset(str(root))
    if layout == "row-groups":
        dataset.frame = _read_frame(dataset.path, None, "pandas", split_row_groups=2)
        assert dataset.frame.npartitions == 6
    for rows, seed in ((300, 0), (451, 7)):
        fraction = rows / len(frame)
        expected = dataset.frame.sample(frac=fraction, random_state=seed).compute().reset_index(drop=True)
        assert (_arrow_sample(dataset, fraction, seed) is None) == (layout in ("categorical", "types-differ"))
        pd.testing.assert_frame_equal(sample_frame(dataset, rows, seed), expected)


def test_the_schema_sample_through_arrow_on_a_dask_cluster_is_dasks_sample(frame, tmp_path, dask_client):
    """With a Dask client each partition's rows are drawn by a worker (one task per piece), the
    same rows as Dask's own sample."""
    from cluster_core.data import _arrow_sample, sample_frame

    frame = frame.assign(region=frame["region"].astype(str))
    dataset = read_dataset(str(write_files(frame, tmp_path / "data")))
    expected = dataset.frame.sample(frac=300 / len(frame), random_state=0).compute().reset_index(drop=True)
    assert _arrow_sample(dataset, 300 / len(frame), 0) is not None
    pd.testing.assert_frame_equal(sample_frame(dataset, 300, 0), expected)
