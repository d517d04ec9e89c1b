"""The served models' Arrow paths (serving/record_table.py, ServedModel.arrow_features) give the pandas
frame path's numbers bit for bit, and fall back to it for values the Arrow path does not take."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from _serving_helpers import FEATURE_COLUMNS, SERVED_MODELS, json_records, record as _record, served_models
from conftest import make_mixed_frame
from serving.assign import ServedModel
from serving.record_table import arrow_columns, records_table
from serving.records import read_arrow, write_arrow, write_table

MODELS = SERVED_MODELS

# records the Arrow path takes: missing values (alone in their column too), unseen and odd labels,
# whole numbers, offsets, a column of nulls only when the record is alone
ARROW_RECORDS = [
    _record(),
    _record(spend=None),
    _record(spend=100, visits=-3),
    _record(spend=2**40, visits=1e300),
    _record(plan=None, region=None),
    _record(plan="never-seen", region="<missing>"),
    _record(plan="é☃ \t", region=""),
    _record(is_member=None),
    _record(is_member=True),
    _record(signup=None),
    _record(signup="2024-03-01T10:00:00+02:00"),
    _record(signup="2024-03-01T23:59:59.999999"),
    _record(signup="1960-02-29T00:00:00"),
    _record(signup="2024-03-01"),
]
# records it leaves to the frame: numbers in a categorical column, dates that are not ISO 8601,
# integers beyond 64 bits
FRAME_RECORDS = [
    _record(plan=3),
    _record(region=2.5),
    _record(signup="03/01/2024 10:00"),
    _record(signup="March 1, 2024 10:00"),
    _record(spend=2**70),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, ServedModel]:
    return served_models(tmp_path_factory.mktemp("serving-fastpath"))


def _frame_features(model: ServedModel, records: list[dict]) -> bytes:
    return model.featurize(model.records_frame(records)).tobytes()


def test_the_fast_path_is_taken_for_plain_records_and_not_for_the_others(served):
    model = served["kmeans"]
    assert model._arrow_columns == dict.fromkeys(["spend", "visits"], "numeric") | {
        "plan": "categorical", "is_member": "boolean", "signup": "datetime", "region": "categorical"}
    for record in ARROW_RECORDS:
        table = records_table([record], model._arrow_columns)
        assert table is not None, record
        assert table.num_rows == 1 and table.column_names == list(model._arrow_columns)
    for record in FRAME_RECORDS:
        assert records_table([record], model._arrow_columns) is None, record
    mixed = [_record(plan="pro"), _record(plan=7)]  # a string and a number in one column
    assert records_table(mixed, model._arrow_columns) is None
    assert records_table([], model._arrow_columns) is None


@pytest.mark.parametrize("name", MODELS)
def test_records_give_the_frames_features_bit_for_bit(served, name):
    model = served[name]
    table = json_records(make_mixed_frame(120, seed=9)[FEATURE_COLUMNS])
    batches = [[r] for r in ARROW_RECORDS + FRAME_RECORDS + table[:20]]
    batches += [ARROW_RECORDS, ARROW_RECORDS + FRAME_RECORDS, table, table + ARROW_RECORDS]
    batches += [[_record(signup="2024-03-01T10:00:00+02:00"), _record(signup="2024-03-01T10:00:00")]]  # offsets mixed
    for records in batches:
        assert model.records_features(records).tobytes() == _frame_features(model, records), records[:2]


@pytest.mark.parametrize("name", MODELS)
def test_json_answers_are_the_frame_paths(served, name):
    model = served[name]
    records = json_records(make_mixed_frame(60, seed=4)[FEATURE_COLUMNS]) + ARROW_RECORDS + FRAME_RECORDS
    expected = model.assignments(model.records_frame(records), rows="records")
    assert json.loads(model.assign_records(records)) == expected
    assert [json.loads(body) for _, body, _ in model.assign_batch([[r] for r in records])] == [[a] for a in expected]


def test_bad_values_keep_the_frame_paths_errors(served):
    model = served["kmeans"]
    status, body, _ = model.assign_batch([[_record(), _record(signup="not a date at all")]])[0]
    message = json.loads(body)["message"]
    assert status == 422 and message.startswith("records[1]: ") and "signup" in message


def _mixed_arrow_tables() -> list[pa.Table]:
    frame = make_mixed_frame(300, seed=12)[FEATURE_COLUMNS]
    plain = pa.Table.from_pandas(frame, preserve_index=False)
    text_dates = plain.set_column(plain.column_names.index("signup"), "signup",
                                  pa.array([None if pd.isna(t) else t.isoformat() for t in frame["signup"]], pa.string()))
    dictionary = plain.set_column(plain.column_names.index("plan"), "plan", plain.column("plan").dictionary_encode())
    whole = plain.set_column(0, "spend", pa.array([None if np.isnan(v) else int(v) for v in frame["spend"]], pa.int32()))
    return [plain, text_dates, dictionary, whole, plain.slice(0, 1)]


@pytest.mark.parametrize("name", MODELS)
def test_arrow_bodies_get_the_pandas_paths_answer_byte_for_byte(served, name):
    model = served[name]
    for table in _mixed_arrow_tables():
        frame = table.to_pandas()
        assert model.arrow_features(table).tobytes() == model.featurize(frame).tobytes()
        expected = write_table(pa.Table.from_pandas(model.score_table(frame), preserve_index=False))
        assert model.assign_arrow(write_table(table)) == expected
        answer = read_arrow(expected).to_pandas()
        names = model.model.name_column(answer["cluster_id"].to_numpy())
        assert answer["cluster_name"].tolist() == list(names)


def test_bad_arrow_values_keep_the_pandas_paths_errors(served):
    frame = make_mixed_frame(5, seed=1)[FEATURE_COLUMNS]
    frame["is_member"] = [1, 0, 2, 1, 0]  # 2 is not a boolean
    status, body, _ = served["kmeans"].assign_arrow_batch([write_arrow(frame)])[0]
    assert status == 422 and "is_member" in json.loads(body)["message"]


def test_pipelines_with_other_kinds_keep_the_frame():
    class Geo:
        kind, column, input_columns = "geo", "lat", ["lat", "lon"]

    class Plain:
        kind, column, input_columns = "numeric", "x", ["x"]

    assert arrow_columns([Plain()]) == {"x": "numeric"}
    assert arrow_columns([Plain(), Geo()]) is None
