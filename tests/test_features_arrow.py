"""The Arrow path of the feature pipeline gives the pandas path's numbers without pandas."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster_core.errors import InvalidInputError
from cluster_core.features import FeaturePipeline, Featurizer
from cluster_core.features.categorical import CategoricalFeaturizer
from cluster_core.features.datetime import PARTS, DatetimeFeaturizer
from cluster_core.features.numeric import BooleanFeaturizer, NumericFeaturizer
from cluster_core.schema import infer_schema

KINDS = {
    "amount": "numeric", "count": "numeric", "flag_as_number": "numeric", "numeric_text": "numeric",
    "active": "boolean", "active01": "boolean", "active_text": "boolean",
    "plan": "categorical", "plan_dict": "categorical", "city": "categorical", "code": "categorical",
    "seen": "datetime", "seen_tz": "datetime", "seen_ns": "datetime", "seen_text": "datetime",
}


def mixed_table(n: int, seed: int, unseen: bool = False) -> pa.Table:
    """Every kind with nulls; ``unseen`` adds categories the fit sample never had."""
    rng = np.random.default_rng(seed)
    null = rng.random(n) < 0.1

    def masked(values):
        return [None if m else v for v, m in zip(values, null[rng.permutation(n)])]

    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.03] = np.nan
    amount[:2] = [np.inf, -np.inf]
    plans = np.array(["basic", "pro", "team", "free"] + (["enterprise", "legacy"] if unseen else []))
    cities = np.array([f"city{i}" for i in range(60 if unseen else 50)])  # > 30 values: frequency encoding
    seconds = rng.integers(1_500_000_000, 1_700_000_000, n)
    seconds[:3] = [-86_400 * 400 - 1, 0, 59]  # before the epoch: floor, not truncation
    stamps = pd.to_datetime(seconds, unit="s")
    plan = masked(rng.choice(plans, n))
    return pa.table({
        "amount": pa.array(amount),
        "count": pa.array(masked(rng.integers(0, 100, n).tolist()), pa.int32()),
        "flag_as_number": pa.array(masked(rng.random(n) < 0.3), pa.bool_()),
        "numeric_text": pa.array(masked([f"{v:.2f}" for v in rng.normal(0, 1, n)]), pa.string()),
        "active": pa.array(masked(rng.random(n) < 0.6), pa.bool_()),
        "active01": pa.array(masked(rng.integers(0, 2, n).tolist()), pa.int8()),
        "active_text": pa.array(masked(rng.choice(["yes", "no", "True", " f "], n).tolist()), pa.string()),
        "plan": pa.array(plan, pa.large_string()),
        "plan_dict": pa.array(plan, pa.string()).dictionary_encode(),
        "city": pa.array(masked(rng.choice(cities, n).tolist()), pa.string()),
        "code": pa.array(masked(rng.choice(["<missing>", "x", "y"], n).tolist()), pa.string()),
        "seen": pa.array(masked(list(stamps.to_pydatetime())), pa.timestamp("us")),
        "seen_tz": pa.array(masked(list(stamps.tz_localize("UTC").to_pydatetime())), pa.timestamp("ms", tz="America/New_York")),
        "seen_ns": pa.array(masked(list(stamps.as_unit("ns").asi8 + rng.integers(0, 10**9, n))), pa.int64()).cast(pa.timestamp("ns")),
        "seen_text": pa.array(masked([s.isoformat() for s in stamps]), pa.string()),
    })


@pytest.fixture
def fitted():
    sample = mixed_table(3000, seed=0).to_pandas()
    return FeaturePipeline(infer_schema(sample, kinds=KINDS)).fit(sample)


def test_every_column_is_used_with_its_forced_kind(fitted):
    assert {f.column: f.kind for f in fitted.featurizers_} == KINDS
    assert {f.column: f.encoding_ for f in fitted.featurizers_ if f.kind == "categorical"} == {
        "plan": "onehot", "plan_dict": "onehot", "city": "frequency", "code": "onehot"}


@pytest.mark.parametrize("chunks", [1, 3], ids=["one-chunk", "three-chunks"])
def test_arrow_matches_pandas_with_nulls_and_unseen_categories(fitted, chunks):
    table = mixed_table(2000, seed=1, unseen=True)
    if chunks > 1:  # a table read from several row groups: chunked columns, a dictionary per chunk
        table = pa.concat_tables([table.slice(i * 700, 700).unify_dictionaries() for i in range(chunks)])
        assert table.column("plan_dict").num_chunks == chunks
    expected = fitted.transform(table.to_pandas())
    got = fitted.transform(table)
    assert got.dtype == np.float32 and got.shape == expected.shape == (2000, fitted.n_features)
    np.testing.assert_array_equal(got, expected)  # bit for bit
    other = fitted.feature_names_.index("plan=<other>")
    assert got[:, other].sum() > 0  # the unseen plans landed in the other bucket


def test_record_batch_and_parquet_round_trip_match_pandas(fitted, tmp_path):
    table = mixed_table(1500, seed=2, unseen=True)
    pq.write_table(table, tmp_path / "part.parquet", row_group_size=500)
    read = pq.read_table(tmp_path / "part.parquet", columns=fitted.input_columns)
    expected = fitted.transform(pd.read_parquet(tmp_path / "part.parquet"))
    np.testing.assert_array_equal(fitted.transform(read), expected)
    batch = read.slice(100, 300).combine_chunks().to_batches()[0]
    np.testing.assert_array_equal(fitted.transform(batch), expected[100:400])


def test_native_kinds_never_build_pandas_and_fallbacks_convert_one_column(fitted, monkeypatch):
    def no_pandas(self, frame, **kwargs):
        raise AssertionError(f"pandas transform of {self.column!r}")

    converted = []
    fallback = Featurizer.transform_arrow

    def spy(self, table, out=None, **kwargs):
        converted.append(self.input_columns)
        return fallback(self, table, out, **kwargs)

    monkeypatch.setattr(Featurizer, "transform_arrow", spy)
    pandas_transforms = {cls: cls.transform for cls in (NumericFeaturizer, BooleanFeaturizer, CategoricalFeaturizer, DatetimeFeaturizer)}
    for cls in pandas_transforms:
        monkeypatch.setattr(cls, "transform", lambda self, frame, _t=pandas_transforms[cls], **kw: (
            _t(self, frame) if self.column in ("numeric_text", "active_text", "seen_text") else no_pandas(self, frame)))
    out = fitted.transform(mixed_table(500, seed=3))
    assert out.shape == (500, fitted.n_features)
    assert sorted(converted) == [["active_text"], ["numeric_text"], ["seen_text"]]


def test_arrow_errors_match_pandas_errors(fitted):
    bad = pa.table({"x": pa.array([0, 1, 2], pa.int64())})
    featurizer = BooleanFeaturizer("x").fit(pd.DataFrame({"x": [0, 1, 1]}))
    with pytest.raises(InvalidInputError, match=r"column 'x': expected booleans \(0/1\), got 2.0"):
        featurizer.transform_arrow(bad)
    with pytest.raises(InvalidInputError, match="column 'amount' is required"):
        fitted.transform(mixed_table(10, seed=4).drop_columns(["amount"]))
    text = mixed_table(4, seed=4).set_column(0, "amount", pa.array(["1", "lots", None, "2"]))
    with pytest.raises(InvalidInputError, match="column 'amount': value 'lots' is not a number"):
        fitted.transform(text)
    assert fitted.transform(mixed_table(10, seed=4).slice(0, 0)).shape == (0, fitted.n_features)


def test_tables_longer_than_a_chunk_match_pandas(fitted, monkeypatch):
    import cluster_core.features.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "ARROW_CHUNK_ROWS", 128)  # 2000 rows: 16 chunks, the last one short
    table = mixed_table(2000, seed=5, unseen=True)
    np.testing.assert_array_equal(fitted.transform(table), fitted.transform(table.to_pandas()))


def test_datetime_lookup_tables_give_the_formula_numbers():
    stamps = pd.DatetimeIndex(pd.to_datetime(np.random.default_rng(0).integers(0, 2_000_000_000, 5000), unit="s", utc=True))
    frame = pd.DataFrame({"t": stamps})
    featurizer = DatetimeFeaturizer("t").fit(frame)
    out = featurizer.transform(frame)
    for part, (get, period) in PARTS.items():
        angle = 2 * np.pi * np.asarray(get(stamps), dtype=np.float64) / period
        for fn, suffix in ((np.sin, "sin"), (np.cos, "cos")):
            column = featurizer.feature_names_.index(f"t__{part}_{suffix}")
            np.testing.assert_array_equal(out[:, column], fn(angle).astype(np.float32))


@pytest.mark.parametrize("reduce", ["none", "pca"])
def test_batches_of_a_parquet_file_match_the_whole_table(tmp_path, reduce):
    sample = mixed_table(3000, seed=0).to_pandas()
    pipeline = FeaturePipeline(infer_schema(sample, kinds=KINDS), reduce=reduce, reduce_components=5).fit(sample)
    table = mixed_table(1000, seed=6, unseen=True)
    pq.write_table(table, tmp_path / "part.parquet", row_group_size=300)
    batches = pq.ParquetFile(tmp_path / "part.parquet").iter_batches(batch_size=128, columns=pipeline.input_columns)
    got = pipeline.transform_batches(batches, 1000)
    np.testing.assert_array_equal(got, pipeline.transform(table.to_pandas()))
    assert got.shape == (1000, 5 if reduce == "pca" else pipeline.n_features)
    with pytest.raises(InvalidInputError, match="the batches hold 1000 rows, not the n_rows=1200 announced"):
        pipeline.transform_batches(table.to_batches(max_chunksize=400), 1200)
    with pytest.raises(InvalidInputError, match="more than the n_rows=900 rows announced"):
        pipeline.transform_batches(table.to_batches(max_chunksize=400), 900)


def test_weighted_blocks_match_pandas():
    sample = mixed_table(3000, seed=0).to_pandas()
    pipeline = FeaturePipeline(infer_schema(sample, kinds=KINDS), weights={"amount": 2.5, "plan": 0.5, "seen": 3.0},
                               kind_weights={"boolean": 0.25}).fit(sample)
    table = mixed_table(700, seed=8, unseen=True)
    assert sorted(set(pipeline.block_weights_)) == [0.25, 0.5, 1.0, 2.5, 3.0]
    np.testing.assert_array_equal(pipeline.transform(table), pipeline.transform(table.to_pandas()))


@pytest.mark.parametrize("as_tables", [False, True])
def test_row_groups_as_tables_when_a_featurizer_reports_issues(tmp_path, monkeypatch, as_tables):
    """A featurizer that reports per-row issues (images) needs the piece whole: row groups read as
    Tables (what a Parquet piece gives) or batches are joined first, with the same numbers."""
    sample = mixed_table(3000, seed=0).to_pandas()
    pipeline = FeaturePipeline(infer_schema(sample, kinds=KINDS)).fit(sample)
    monkeypatch.setattr(type(pipeline.featurizers_[0]), "reports_issues", True)
    table = mixed_table(1000, seed=6, unseen=True)
    pq.write_table(table, tmp_path / "part.parquet", row_group_size=300)
    parquet = pq.ParquetFile(tmp_path / "part.parquet")
    if as_tables:
        parts = [parquet.read_row_group(g, columns=pipeline.input_columns) for g in range(parquet.num_row_groups)]
    else:
        parts = parquet.iter_batches(batch_size=128, columns=pipeline.input_columns)
    np.testing.assert_array_equal(pipeline.transform_batches(parts, 1000), pipeline.transform(table.to_pandas()))
