import numpy as np
import pandas as pd
import pytest

from cluster_core.errors import DataError, InvalidInputError
from cluster_core.features import FEATURIZERS
from cluster_core.schema import Schema, infer_schema


def test_kinds_of_the_mixed_table(mixed_frame):
    schema = infer_schema(mixed_frame, supported_kinds=set(FEATURIZERS))
    kinds = {c.name: (c.kind, c.used) for c in schema.columns}
    assert kinds["customer_id"] == ("identifier", False)
    assert kinds["spend"] == ("numeric", True)
    assert kinds["plan"] == ("categorical", True)
    assert kinds["is_member"] == ("boolean", True)
    assert kinds["signup"] == ("datetime", True)
    assert kinds["constant"] == ("constant", False)
    assert schema.column("spend").missing_fraction > 0


@pytest.mark.parametrize(
    "values, kind",
    [
        (["yes", "no", "yes", None], "boolean"),
        (["2024-01-05", "2024-02-11", "2023-12-30", "2024-03-01"], "datetime"),
        ([f"user-{i:05d}" for i in range(40)], "identifier"),
        ([f"the quick brown fox number {i} jumps over" for i in range(40)], "text"),
        (["a", "b", "a", "c"] * 10, "categorical"),
        ([np.nan] * 5, "constant"),
        ([1.5, 2.5, 3.5, 1.0], "numeric"),
    ],
)
def test_single_column_rules(values, kind):
    frame = pd.DataFrame({"col": values, "other": np.arange(len(values), dtype=float)})
    assert infer_schema(frame).column("col").kind == kind


def test_overrides(mixed_frame):
    schema = infer_schema(mixed_frame, exclude=["spend"], kinds={"visits": "categorical"})
    assert not schema.column("spend").used and schema.column("spend").reason == "excluded by user"
    assert schema.column("visits").kind == "categorical"
    only = infer_schema(mixed_frame, include=["spend", "plan"])
    assert [c.name for c in only.used] == ["spend", "plan"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"exclude": ["nope"]}, "exclude: column(s) ['nope'] not in the dataset"),
        ({"include": ["nope"]}, "include: column(s) ['nope'] not in the dataset"),
        ({"kinds": {"spend": "weird"}}, "unknown column kind(s) {'spend': 'weird'}"),
    ],
)
def test_bad_overrides_name_the_value(mixed_frame, kwargs, message):
    with pytest.raises(InvalidInputError) as info:
        infer_schema(mixed_frame, **kwargs)
    assert message in str(info.value)


def test_no_usable_columns():
    frame = pd.DataFrame({"id": np.arange(10), "c": ["x"] * 10})
    with pytest.raises(DataError, match="no usable columns"):
        infer_schema(frame)


def test_round_trip_and_table(mixed_frame):
    schema = infer_schema(mixed_frame)
    again = Schema.from_dict(schema.to_dict())
    assert again == schema
    table = schema.format_table()
    assert "customer_id" in table and "identifier" in table
