"""serving/row_encoder.py: a few records encoded value by value give the general path's feature rows and
answers bit for bit, and every value it does not take is left to the general path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from _serving_helpers import FEATURE_COLUMNS, SERVED_MODELS, json_records, record as _record, served_models
from cluster_core.features.datetime import iso_timestamps
from cluster_core.features.pipeline import FeaturePipeline
from cluster_core.schema import infer_schema
from conftest import make_mixed_frame
from serving.assign import ServedModel
from serving.record_table import arrow_columns, records_table
from serving.row_encoder import MAX_RECORDS, RowEncoder, iso_instant

MODELS = SERVED_MODELS
EDGE_DATES = [
    "2024-03-01", "2024-03-01T10:00", "2024-03-01 10:00:00", "2024-03-01T10:00:00.5", "2024-03-01T23:59:59.999999999",
    "2024-02-29T12:00:00Z", "2024-03-01T00:30:00+02:00", "2024-12-31T23:30:00-05:30", "2024-03-01T10:00:00+23:59",
    "2024-03-01T10:00:00-00:00", "1960-02-29T00:00:00.5", "1969-12-31T23:59:59.999", "1678-01-01T00:00:00",
    "2261-12-31T23:59:59", "1970-01-01",
]
# values it leaves to the general path: it must answer None for them, the table or the frame decides
DECLINED = [
    {"plan": 3}, {"region": 2.5}, {"spend": 2**63}, {"spend": -(2**63) - 1}, {"plan": "\ud800"},
    {"signup": "2024-03-01T10"}, {"signup": "2024-03-01T10:00:00+0200"}, {"signup": "2024-03-01T10:00:00+02"},
    {"signup": "03/01/2024"}, {"signup": "2024-02-30"}, {"signup": "2024-03-01T24:00:00"}, {"signup": "1677-09-21"},
    {"signup": "2262-04-12"}, {"signup": "２０２４-03-01"}, {"signup": "2024-03-01T10:00:00.1234567891"},
    {"signup": "2024-03-01T10:00:00+24:00"}, {"signup": "2024-03-01Z"},
]


def _random_date(rng: np.random.Generator) -> str:
    text = f"{rng.integers(1650, 2300):04d}-{rng.integers(0, 14):02d}-{rng.integers(0, 33):02d}"
    form = rng.integers(0, 6)
    if form == 0:
        return text
    text += f"{'T ts'[rng.integers(0, 4)]}{rng.integers(0, 26):02d}:{rng.integers(0, 62):02d}"
    if form >= 2:
        text += f":{rng.integers(0, 62):02d}"
    if form >= 3 and rng.random() < 0.6:
        text += "." + "".join(str(d) for d in rng.integers(0, 10, rng.integers(0, 11)))
    zone = rng.integers(0, 6)
    if zone == 1:
        text += "Z"
    elif zone >= 2:
        sign, hours, minutes = "+-"[rng.integers(0, 2)], rng.integers(0, 26), rng.integers(0, 62)
        text += [f"{sign}{hours:02d}:{minutes:02d}", f"{sign}{hours:02d}{minutes:02d}", f"{sign}{hours:02d}", "z"][zone - 2]
    return text


def _random_record(rng: np.random.Generator, categories: list[str]) -> dict:
    numbers = [None, float(rng.normal(100, 30)), int(rng.integers(-500, 500)), 1e300, -1e300, -0.0, 5e-324,
               float(rng.normal(0, 1e6)), 2**63 - 1, -(2**63), 2**53 + 1, float(rng.normal(10, 3))]
    labels = [None, *categories, "<missing>", "", "never-seen", "é☃ \t"]
    dates = [None, _random_date(rng), _random_date(rng), EDGE_DATES[rng.integers(0, len(EDGE_DATES))]]
    return {
        "spend": numbers[rng.integers(0, len(numbers))],
        "visits": numbers[rng.integers(0, len(numbers))],
        "plan": labels[rng.integers(0, len(labels))],
        "is_member": [None, True, False][rng.integers(0, 3)],
        "signup": dates[rng.integers(0, len(dates))],
        "region": labels[rng.integers(0, len(labels))],
    }


def _pipelines() -> dict[str, FeaturePipeline]:
    plain = make_mixed_frame(400, seed=3)[FEATURE_COLUMNS]
    odd = make_mixed_frame(400, seed=5)[FEATURE_COLUMNS]
    odd["is_member"] = odd["is_member"].astype(object)
    odd.loc[odd.index[::7], "is_member"] = None
    odd.loc[odd.index[::11], "signup"] = pd.NaT
    odd["visits"] = odd["visits"].fillna(0.0)  # no indicator column
    return {
        "default": FeaturePipeline(infer_schema(plain)).fit(plain),
        # block weights, frequency-encoded categories, indicators for flags and dates, a projection
        "weighted-frequency-pca": FeaturePipeline(
            infer_schema(odd), weights={"spend": 2.5, "signup": 0.5}, kind_options={"categorical": {"max_onehot": 2}},
            reduce="pca", reduce_components=4,
        ).fit(odd),
    }


@pytest.fixture(scope="module")
def pipelines() -> dict[str, FeaturePipeline]:
    return _pipelines()


@pytest.mark.parametrize("name", ["default", "weighted-frequency-pca"])
def test_random_records_get_the_tables_rows_bit_for_bit(pipelines, name, seed):
    pipeline = pipelines[name]
    encoder = RowEncoder.for_pipeline(pipeline)
    columns = arrow_columns(pipeline.featurizers_)
    rng = np.random.default_rng(seed)
    taken = 0
    for size in [1] * 600 + [2, 5, MAX_RECORDS] * 40:
        records = [_random_record(rng, ["basic", "pro", "team", "north", "south"]) for _ in range(size)]
        features = encoder.features(records)
        if features is None:
            continue
        taken += 1
        table = records_table(records, columns)
        assert table is not None, records  # every value taken is one the Arrow table takes
        assert features.tobytes() == pipeline.transform(table).tobytes(), records
    assert taken > 300  # most random records are taken, so the comparison means something


@pytest.mark.parametrize("name", ["default", "weighted-frequency-pca"])
def test_edge_values_and_declined_values(pipelines, name):
    pipeline = pipelines[name]
    encoder = RowEncoder.for_pipeline(pipeline)
    columns = arrow_columns(pipeline.featurizers_)
    dates = [_record(signup=date) for date in EDGE_DATES + [None]]
    numbers = [_record(spend=value) for value in (None, 0, -0.0, 1e308, -1e308, 1e-320, 12345.678, -3)]
    whole = [_record(spend=value) for value in (2**63 - 1, -(2**63), 0, None)]  # ints only: int64, not doubles
    labels = [_record(plan=value, region=value) for value in (None, "<missing>", "", "pro", "PRO", " pro", "x" * 1000)]
    labels += [_record(is_member=value) for value in (None, True, False)]
    edges = dates + numbers + whole + labels
    for record in edges:
        features = encoder.features([record])
        assert features is not None, record
        assert features.tobytes() == pipeline.transform(records_table([record], columns)).tobytes(), record
    naive = [r for r in dates + numbers + labels if r["signup"] is None or not iso_instant(r["signup"])[1]]
    zoned = [r for r in dates if r["signup"] is not None and iso_instant(r["signup"])[1]]
    for batch in (naive[:MAX_RECORDS], naive[-MAX_RECORDS:], zoned, whole):
        assert len(batch) > 2
        assert encoder.features(batch).tobytes() == pipeline.transform(records_table(batch, columns)).tobytes(), batch
    for change in DECLINED:
        assert encoder.features([_record(**change)]) is None, change
    assert encoder.features([]) is None
    assert encoder.features([_record()] * (MAX_RECORDS + 1)) is None
    # naive and zoned dates in one request: Arrow's parser takes neither way, so the frame decides; an int
    # beside a float that a double cannot hold exactly: Arrow refuses the column
    assert encoder.features([_record(signup="2024-03-01T10:00:00"), _record(signup="2024-03-01T10:00:00Z")]) is None
    assert encoder.features([_record(spend=2**53 + 1), _record(spend=0.5)]) is None
    assert encoder.features([_record(spend=2**53), _record(spend=0.5)]) is not None


def test_iso_instants_are_arrows(seed):
    rng = np.random.default_rng(seed)
    texts = EDGE_DATES + [next(iter(change.values())) for change in DECLINED if "signup" in change]
    texts += [_random_date(rng) for _ in range(3000)]
    taken = 0
    for text in texts:
        instant = iso_instant(text)
        if instant is None:
            continue
        taken += 1
        parsed = iso_timestamps(pa.array([text], pa.string()))
        assert parsed is not None, text
        assert (parsed.type.tz is not None) == instant[1], text
        assert parsed.cast(pa.int64())[0].as_py() == instant[0], text
    assert taken > 500


def test_other_kinds_get_no_encoder():
    class Geo:
        kind, column, input_columns = "geo", "lat", ["lat", "lon"]

    class Text:
        kind, column, input_columns = "text", "note", ["note"]

    class Pipeline:
        featurizers_ = [Geo()]

    assert RowEncoder.for_pipeline(Pipeline()) is None
    Pipeline.featurizers_ = [Text()]
    assert RowEncoder.for_pipeline(Pipeline()) is None


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, ServedModel]:
    return served_models(tmp_path_factory.mktemp("serving-row-encoder"))


def _general(model: ServedModel, call, *args):
    """``call(*args)`` with the row encoder switched off: the path it replaces."""
    encoder, model._row_encoder = model._row_encoder, None
    try:
        return call(*args)
    finally:
        model._row_encoder = encoder


@pytest.mark.parametrize("name", MODELS)
def test_served_answers_are_the_general_paths_byte_for_byte(served, name, seed):
    model = served[name]
    assert model._row_encoder is not None
    rng = np.random.default_rng(seed + 1)
    plain = json_records(make_mixed_frame(80, seed=11)[FEATURE_COLUMNS])
    requests = [[r] for r in plain] + [[_random_record(rng, ["basic", "pro", "team"])] for _ in range(200)]
    requests += [plain[:MAX_RECORDS], plain[:MAX_RECORDS + 1], [_record(**change) for change in DECLINED[:3]]]
    answered = 0
    for records in requests:  # one request at a time (errors as JSON bodies), then all merged
        answer = model.assign_batch([records])
        assert answer == _general(model, model.assign_batch, [records]), records
        answered += answer[0][0] == 200
    assert answered > 150
    assert model.assign_batch(requests) == _general(model, model.assign_batch, requests)


def test_bad_values_keep_their_errors(served):
    model = served["kmeans"]
    for bad in ({"spend": "12"}, {"is_member": 1}, {"signup": 5}, {"plan": [1]}, {"spend": float("nan")},
                {"signup": "not a date at all"}):
        records = [_record(), _record(**bad)]
        answer = model.assign_batch([records])[0]
        assert answer[0] == 422 and json.loads(answer[1])["message"].startswith("records[1]: "), bad
        assert answer == _general(model, model.assign_batch, [records])[0]


def test_a_pipeline_whose_rows_cannot_be_built_gets_no_encoder(pipelines):
    pipeline = pipelines["default"]
    categorical = next(f for f in pipeline.featurizers_ if f.kind == "categorical")
    categories = categorical.categories_
    categorical.categories_ = None  # a broken state: building its lookup rows fails
    try:
        assert RowEncoder.for_pipeline(pipeline) is None
    finally:
        categorical.categories_ = categories
    assert RowEncoder.for_pipeline(pipeline) is not None
