import numpy as np
import pandas as pd
import pytest

from cluster_core.errors import InvalidInputError
from cluster_core.features import FeaturePipeline, Featurizer
from cluster_core.features.categorical import CategoricalFeaturizer
from cluster_core.features.datetime import DatetimeFeaturizer
from cluster_core.features.numeric import BooleanFeaturizer, NumericFeaturizer
from cluster_core.schema import infer_schema


def test_numeric_rule_ignores_outliers_and_compresses_tails():
    values = np.concatenate([np.random.default_rng(0).normal(10, 2, 998), [1e6, 1e9]])
    frame = pd.DataFrame({"x": values})
    out = NumericFeaturizer("x").fit(frame).transform(frame)[:, 0]
    assert abs(np.median(out)) < 0.05
    assert 0.9 < np.std(out[:-2]) < 1.1  # the outliers did not shrink the column
    assert 5.0 < out[-2] < out[-1] < 30.0  # compressed, order kept


def test_multimodal_column_keeps_its_modes_apart():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 700), rng.normal(30, 1, 150), rng.normal(60, 1, 150)])
    out = NumericFeaturizer("x").fit(pd.DataFrame({"x": values})).transform(pd.DataFrame({"x": values}))[:, 0]
    modes = [np.median(out[:700]), np.median(out[700:850]), np.median(out[850:])]
    assert modes[2] - modes[1] == pytest.approx(modes[1] - modes[0], rel=0.05)  # no squashing
    assert np.abs(out).max() <= 5.0


def test_separated_modes_are_not_shrunk():
    # two tight groups at -1 and +1: an IQR-based scale (2 / 1.349) would pull them to +-0.67
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-1, 0.05, 500), rng.normal(1, 0.05, 500)])
    frame = pd.DataFrame({"x": values})
    out = NumericFeaturizer("x").fit(frame).transform(frame)[:, 0]
    assert np.median(out[500:]) - np.median(out[:500]) == pytest.approx(2.0, rel=0.03)


def test_mostly_constant_column_counts_like_a_flag():
    values = np.zeros(1000)
    values[:3] = 1.0
    frame = pd.DataFrame({"x": values})
    featurizer = NumericFeaturizer("x").fit(frame)
    out = featurizer.transform(frame)[:, 0]
    assert featurizer.scaler_.scale_ == 1.0
    assert out[0] == 1.0 and out[-1] == 0.0


def test_missing_values_get_median_and_indicator():
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0, np.inf]})
    featurizer = NumericFeaturizer("x").fit(frame)
    out = featurizer.transform(frame)
    assert featurizer.feature_names_ == ["x", "x__missing"]
    assert out[2, 0] == 0.0 and out[2, 1] == 1.0 and out[4, 1] == 1.0


def test_categorical_onehot_other_bucket_and_unseen():
    frame = pd.DataFrame({"c": ["a"] * 500 + ["b"] * 499 + ["rare"]})
    featurizer = CategoricalFeaturizer("c").fit(frame)
    assert featurizer.feature_names_ == ["c=a", "c=b", "c=<other>"]
    out = featurizer.transform(pd.DataFrame({"c": ["a", "rare", "never-seen", None]}))
    assert out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]


def test_high_cardinality_uses_frequency():
    values = [f"v{i % 200}" for i in range(2000)] + ["common"] * 2000
    featurizer = CategoricalFeaturizer("c").fit(pd.DataFrame({"c": values}))
    assert featurizer.feature_names_ == ["c__frequency"]
    out = featurizer.transform(pd.DataFrame({"c": ["common", "v1", "unseen"]}))[:, 0]
    assert out[0] > out[1] > out[2]


def test_boolean_strings_and_missing():
    frame = pd.DataFrame({"b": ["yes", "no", None, "TRUE"]})
    featurizer = BooleanFeaturizer("b").fit(frame)
    out = featurizer.transform(frame)
    assert out[:, 0].tolist() == pytest.approx([1.0, 0.0, 2 / 3, 1.0])
    assert out[:, 1].tolist() == [0, 0, 1, 0]
    with pytest.raises(InvalidInputError, match="column 'b': value 'maybe' is not a boolean"):
        featurizer.transform(pd.DataFrame({"b": ["maybe"]}))


def test_datetime_cyclical_parts_only_when_they_vary():
    stamps = pd.date_range("2024-01-01", periods=100, freq="7h")
    featurizer = DatetimeFeaturizer("t").fit(pd.DataFrame({"t": stamps}))
    assert "t__hour_sin" in featurizer.feature_names_ and "t__weekday_cos" in featurizer.feature_names_
    out = featurizer.transform(pd.DataFrame({"t": stamps}))
    hour_sin = out[:, featurizer.feature_names_.index("t__hour_sin")]
    assert np.allclose(hour_sin, np.sin(2 * np.pi * (stamps.hour + stamps.minute / 60) / 24), atol=1e-6)
    dates_only = DatetimeFeaturizer("t").fit(pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, freq="D")}))
    assert "t__hour_sin" not in dates_only.feature_names_


def test_pipeline_state_round_trip_and_errors(mixed_frame):
    pipeline = FeaturePipeline(infer_schema(mixed_frame)).fit(mixed_frame)
    again = FeaturePipeline.from_state(pipeline.get_state())
    assert np.array_equal(pipeline.transform(mixed_frame), again.transform(mixed_frame))
    assert pipeline.transform(mixed_frame).dtype == np.float32
    with pytest.raises(InvalidInputError, match="column 'spend' is required"):
        pipeline.transform(mixed_frame.drop(columns="spend"))
    with pytest.raises(InvalidInputError, match="column 'spend': value 'lots' is not a number"):
        pipeline.transform(mixed_frame.head(2).assign(spend=["lots", "1"]))


def test_unknown_kind_in_state_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="kind 'hologram'"):
        Featurizer.from_state({"kind": "hologram", "column": "x", "options": {}, "feature_names": [], "fitted": {}})


def test_tiled_hstack_matches_numpy_across_tile_boundaries():
    from cluster_core.features.pipeline import _hstack_float32

    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((1000, width)) for width in (1, 3, 1)] + [rng.standard_normal((1000, 2)).astype(np.float32)]
    out = _hstack_float32(blocks, tile_rows=128)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.hstack(blocks).astype(np.float32))


@pytest.mark.parametrize("form", ["%Y-%m-%dT%H:%M:%S.000", "%Y-%m-%dT%H:%M:%S.000Z", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S.123456",
                                  "offset", "mixed"])
def test_datetime_strings_parsed_by_arrow_give_pandas_numbers(form):
    """ISO strings (a served JSON record's dates) go through Arrow's parser: the same block as
    pandas' parsing; other strings (mixed forms) are left to pandas."""
    from cluster_core.features.datetime import DatetimeFeaturizer, as_datetime, iso_stamps

    rng = np.random.default_rng(1)
    stamps = pd.Series(pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, 500), unit="s"))
    featurizer = DatetimeFeaturizer("t").fit(pd.DataFrame({"t": stamps}))
    if form == "offset":
        text = stamps.dt.tz_localize("UTC").dt.tz_convert("America/New_York").map(lambda t: t.isoformat())
    elif form == "mixed":
        text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S")
        text[::2] = stamps[::2].dt.strftime("%d %B %Y %H:%M")
    else:
        text = stamps.dt.strftime(form)
    text = text.astype(object).where(rng.random(500) > 0.1, None)
    frame = pd.DataFrame({"t": text})
    assert (iso_stamps(frame["t"]) is None) == (form == "mixed")
    parsed = as_datetime(frame["t"], "t")
    expected = featurizer._encode(parsed, np.asarray(parsed.isna()), featurizer._ordinal(parsed))
    np.testing.assert_array_equal(featurizer.transform(frame), expected)


def test_datetime_bad_string_is_still_named_with_the_arrow_parser():
    from cluster_core.features.datetime import DatetimeFeaturizer

    featurizer = DatetimeFeaturizer("t").fit(pd.DataFrame({"t": pd.date_range("2024-01-01", periods=50, freq="13h")}))
    with pytest.raises(InvalidInputError, match="'not a date'"):
        featurizer.transform(pd.DataFrame({"t": ["2024-03-01T10:00:00", "not a date"]}))
