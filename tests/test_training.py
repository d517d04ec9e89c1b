import numpy as np
import pytest

from cluster_core.config import TrainConfig
from cluster_core.data import read_dataset
from cluster_core.errors import DataError
from cluster_core.training import default_cluster_counts, plan_models, train_models


def test_default_cluster_counts_rule():
    assert default_cluster_counts(20, 100) == [2, 3]
    assert default_cluster_counts(300, 100) == list(range(2, 13))  # sqrt(150) = 12.2: every k up to 12
    counts = default_cluster_counts(10_000_000, 100)
    assert counts[:11] == list(range(2, 13)) and counts[11:] == [16, 21, 27, 30]  # then ~30% apart, the limit last
    assert default_cluster_counts(10_000_000, 5) == [2, 3, 4, 5]
    assert default_cluster_counts(10_000_000, 14) == [*range(2, 13), 14]


def test_plan_rejects_k_above_training_rows():
    with pytest.raises(DataError, match="k=50 is larger than the 40 training rows"):
        plan_models(TrainConfig(k=[3, 50]), n_train=40, n_rows=50)
    ids = [s.model_id for s in plan_models(TrainConfig(k=[3, 5], algorithms=["kmeans", "hdbscan"]), 100, 120)]
    assert ids == ["kmeans-k3", "kmeans-k5", "hdbscan"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"algorithms": ["kmeans", "spectral"]}, "unknown algorithm(s) ['spectral']"),
        ({"k": [3, 150]}, "k=150 exceeds `max_k`=100"),
        ({"k": [1]}, "cluster counts must be >= 2"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        TrainConfig(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("local_fit_max_bytes", [512 << 20, 0], ids=["task-per-model", "distributed"])
def test_sweep_ranks_models(dask_client, mixed_dataset, local_fit_max_bytes):
    config = TrainConfig(
        algorithms=["kmeans", "gmm", "gmm-diag", "hdbscan"], k=[2, 3, 4], local_fit_max_bytes=local_fit_max_bytes
    )
    result = train_models(read_dataset(str(mixed_dataset)), config, client=dask_client)
    board = result.leaderboard()
    ok = [m for m in board["models"] if m["status"] == "ok"]
    assert len(board["models"]) == 10 and len(ok) >= 9
    silhouettes = [m["silhouette"] for m in ok]
    assert silhouettes == sorted(silhouettes, reverse=True)
    assert board["best"] == ok[0]["model_id"]
    assert result.data.n_train + result.data.n_validation == 600
    hd = next(m for m in board["models"] if m["algorithm"] == "hdbscan")
    assert hd["n_clusters"] >= 1 and hd["requested_clusters"] is None
    kmeans3 = next(m for m in board["models"] if m["model_id"] == "kmeans-k3")
    assert kmeans3["silhouette"] > 0.3


def test_paths_agree(dask_client, mixed_dataset):
    boards = []
    for budget in (512 << 20, 0):
        config = TrainConfig(algorithms=["kmeans"], k=[3], local_fit_max_bytes=budget)
        boards.append(train_models(read_dataset(str(mixed_dataset)), config, client=dask_client).leaderboard())
    a, b = (board["models"][0] for board in boards)
    assert a["silhouette"] == pytest.approx(b["silhouette"], abs=1e-6)
    assert sorted(a["cluster_sizes"].values()) == sorted(b["cluster_sizes"].values())  # ids may be permuted


def test_split_is_seeded(dask_client, mixed_dataset):
    runs = [
        train_models(read_dataset(str(mixed_dataset)), TrainConfig(algorithms=["kmeans"], k=[3], seed=s), client=dask_client)
        for s in (1, 1, 2)
    ]
    assert runs[0].data.n_validation == runs[1].data.n_validation
    assert np.isclose(runs[0].results[0].metrics["silhouette"], runs[1].results[0].metrics["silhouette"])
    assert runs[0].data.n_validation != runs[2].data.n_validation or runs[0].results[0].metrics != runs[2].results[0].metrics


def test_streamed_from_parquet_equals_persisted(dask_client, mixed_dataset):
    boards = []
    for persist in ("always", "never"):
        config = TrainConfig(algorithms=["kmeans", "gmm-diag"], k=[3], persist=persist, local_fit_max_bytes=0)
        result = train_models(read_dataset(str(mixed_dataset)), config, client=dask_client)
        assert result.data.persisted == (persist == "always")
        boards.append({m["model_id"]: m for m in result.leaderboard()["models"]})
    for model_id in boards[0]:
        assert boards[0][model_id]["silhouette"] == pytest.approx(boards[1][model_id]["silhouette"], abs=1e-9)


def test_waiting_for_model_tasks_stops_once_the_client_is_closed():
    """A job is stopped by closing its Dask client from another thread: the wait for the model
    tasks raises within its poll interval instead of waiting on."""
    import threading
    import time
    from concurrent.futures import CancelledError

    from distributed import Client, LocalCluster

    from cluster_core.training import _as_completed

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        quick = [client.submit(time.sleep, s, pure=False) for s in (0.05, 0.2)]
        assert set(_as_completed(client, quick, poll_s=0.1)) == set(quick)
        slow = [client.submit(time.sleep, 30, pure=False)]
        threading.Timer(0.3, client.close).start()
        started = time.perf_counter()
        with pytest.raises(CancelledError):  # ours, or the cancelled futures' own
            list(_as_completed(client, slow, poll_s=0.1))
        assert time.perf_counter() - started < 10


def test_truth_values_read_from_their_column_alone_equal_those_of_whole_partitions(tmp_path):
    """``evaluate_against`` reads one column; its validation rows are those of every partition's split."""
    import pandas as pd

    from cluster_core.training import _column_partitions, validation_values

    rng = np.random.default_rng(2)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, n in enumerate([300, 170, 410, 95]):
        truth = rng.choice(np.array(["a", "b", "c"], dtype=object), n)
        truth[rng.random(n) < 0.1] = None
        pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "truth": truth}).to_parquet(folder / f"p{i}.parquet")
    dataset = read_dataset(str(folder))
    projected = _column_partitions(dataset, "truth")
    assert len(projected) == dataset.frame.npartitions == 4
    for i, (one, whole) in enumerate(zip(projected, dataset.frame.to_delayed())):
        one, whole = one.compute(), whole.compute()
        assert list(one.columns) == ["truth"] and len(one) == len(whole)
        ours, expected = validation_values(one, i, "truth", 5, 0.3), validation_values(whole, i, "truth", 5, 0.3)
        assert ours.tolist() == expected.tolist() and len(ours) > 10


def test_missing_truth_values_of_every_kind_are_left_out_not_a_class():
    """pd.NA (nullable string and integer columns), NaN, None and NaT are missing, never the class "<NA>"."""
    import pandas as pd

    from cluster_core.training import agreement_with, merge_codes, validation_codes, validation_values

    frame = pd.DataFrame({
        "s": pd.array(["a", None, "b", "a", None, "b"] * 50, dtype="string"),
        "i": pd.array([1, None, 2, 1, None, 2] * 50, dtype="Int64"),
        "f": [1.0, np.nan, 2.0, 1.0, np.nan, 2.0] * 50,
        "t": pd.to_datetime(["2020-01-01", None, "2021-01-01", "2020-01-01", None, "2021-01-01"] * 50),
    })
    for column in frame.columns:
        values = validation_values(frame, 0, column, 0, 1.0)
        assert len(values) == 300 and sum(v is None for v in values) == 100, column
        assert "<NA>" not in set(values) and "NaT" not in set(values) and "nan" not in set(values), column
    _, truth = merge_codes([validation_codes(frame, 0, "s", 0, 1.0)])
    labels = np.array([0, 1, 1, 0, 0, 1] * 50)  # perfect on the known rows, anything on the missing ones
    assert agreement_with(truth, labels)["ari"] == 1.0


def test_truth_codes_of_every_column_type_are_those_of_the_values_as_strings():
    """The factorized codes of typed columns (and the per-value path of object columns) are np.unique's
    codes of validation_values' strings: the same classes, the same order, missing values -1."""
    import pandas as pd

    from cluster_core.training import validation_codes, validation_values

    rng = np.random.default_rng(8)
    n = 400
    frame = pd.DataFrame({
        "s": pd.array(rng.choice(["b", "a", "ab", None], n), dtype="string"),
        "i": pd.array(rng.choice([3, 1, 20, None], n), dtype="Int64"),
        "n": rng.integers(-5, 5, n),
        "f": rng.choice([1.0, 2.5, np.nan, -0.0, 10.0], n),
        "b": rng.random(n) < 0.5,
        "t": pd.to_datetime(rng.choice(["2020-01-01 00:00", "2021-06-01 12:30", None], n)),
        "c": pd.Categorical(rng.choice(["x", "y", None], n)),
        "o": pd.Series(rng.choice(np.array([1, 1.0, "1", None, "z"], dtype=object), n), dtype=object),
    })
    for column in frame.columns:
        for index, seed, fraction in ((0, 0, 1.0), (3, 7, 0.3)):
            distinct, codes = validation_codes(frame, index, column, seed, fraction)
            values = validation_values(frame, index, column, seed, fraction)
            known = np.not_equal(values, None)
            expected_distinct, expected = np.unique(values[known].astype(str), return_inverse=True)
            assert distinct.tolist() == expected_distinct.tolist(), column
            np.testing.assert_array_equal(codes[known], expected, err_msg=column)
            np.testing.assert_array_equal(codes[~known], -1, err_msg=column)


def test_truth_codes_merged_over_partitions_score_as_the_values_do():
    """Partitions' codes over their own distinct values, merged, are the codes of the concatenated
    values (missing -1), and ARI/NMI from them equal those from the values."""
    import pandas as pd

    from cluster_core.training import agreement_with, merge_codes, validation_codes, validation_values

    rng = np.random.default_rng(4)
    frames = [pd.DataFrame({"t": pd.array(rng.choice(["x", "y", "zz", None], 200), dtype="string")}) for _ in range(3)]
    frames.append(pd.DataFrame({"t": pd.array([None] * 40, dtype="string")}))  # a partition without a known value
    frames.append(pd.DataFrame({"t": pd.array(["w"] * 30, dtype="string")}))  # a value only here
    parts = [validation_codes(f, i, "t", 3, 0.5) for i, f in enumerate(frames)]
    values = np.concatenate([validation_values(f, i, "t", 3, 0.5) for i, f in enumerate(frames)])
    distinct, codes = merge_codes(parts)
    known = np.not_equal(values, None)
    assert distinct.tolist() == ["w", "x", "y", "zz"] and codes.dtype == np.int32
    np.testing.assert_array_equal(codes[~known], -1)
    np.testing.assert_array_equal(distinct[codes[known]], values[known].astype(str))
    labels = rng.integers(0, 3, values.shape[0])
    from sklearn import metrics as skm

    scores = agreement_with(codes, labels)
    assert scores["ari"] == round(skm.adjusted_rand_score(values[known].astype(str), labels[known]), 4)
    assert scores["nmi"] == round(skm.normalized_mutual_info_score(values[known].astype(str), labels[known]), 4)
    assert merge_codes([])[1].shape == (0,)


def test_a_models_validation_rows_are_labelled_once(monkeypatch):
    """The metrics' passes and the ARI against the truth read one labelling of the validation rows."""
    from sklearn.datasets import make_blobs

    from cluster_core.algorithms import KMeans
    from cluster_core.blocks import ArrayBlocks
    from cluster_core.metrics import evaluate_clustering
    from cluster_core.training import ModelSpec, agreement_with, fit_and_evaluate

    x, y = make_blobs(10_000, n_features=4, centers=5, random_state=6)
    x = x.astype(np.float32)
    train, validation = x[:8000], x[8000:]
    truth = y[8000:].astype(np.int32)  # codes, as prepare_data's merge_codes gives them
    seen = []
    predict = KMeans.predict

    def counting(self, rows):
        seen.append(len(rows))
        return predict(self, rows)

    monkeypatch.setattr(KMeans, "predict", counting)
    config = TrainConfig(seed=0)
    spec = ModelSpec("kmeans-k5", "kmeans", 5, "kmeans")
    result = fit_and_evaluate(spec, spec.build(config, "cpu"), config, ArrayBlocks(train, 1500), ArrayBlocks(validation, 700),
                              [f"x{i}" for i in range(4)], truth=truth)
    assert result.error is None
    assert sum(seen) == 2 * 2000  # the validation rows once, the profile sample (every row here) once
    expected = evaluate_clustering(ArrayBlocks(validation, 700), result.estimator.predict, 5, seed=0)  # a pass each
    assert {k: result.metrics[k] for k in expected} == expected
    assert {k: result.metrics[k] for k in ("ari", "nmi")} == {
        k: v for k, v in agreement_with(truth, predict(result.estimator, validation)).items() if k in ("ari", "nmi")}
    assert result.metrics["ari"] > 0.9
