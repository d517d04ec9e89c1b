"""Datetime columns: cyclical calendar parts plus a scaled ordinal."""

from __future__ import annotations

import functools
import types
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ._arrow import arrow_stamps
from ._base import Featurizer, RobustScaler, register

# part name -> (extractor on a DatetimeIndex in UTC, period)
PARTS = {
    "month": (lambda t: t.month - 1 + (t.day - 1) / 31.0, 12.0),
    "weekday": (lambda t: t.day_of_week + t.hour / 24.0, 7.0),
    "hour": (lambda t: t.hour + t.minute / 60.0, 24.0),
}
# part name -> the two calendar fields it is made of: (name, smallest value, number of values)
PART_FIELDS = {
    "month": (("month", 1, 12), ("day", 1, 31)),
    "weekday": (("day_of_week", 0, 7), ("hour", 0, 24)),
    "hour": (("hour", 0, 24), ("minute", 0, 60)),
}


@functools.lru_cache(maxsize=None)
def part_tables(part: str) -> tuple[np.ndarray, np.ndarray]:
    """sin and cos of ``part`` for every combination of its two fields (at most 1,440), indexed by
    :func:`part_keys`: a row's values are looked up rather than computed (same numbers: the
    same formula on the same field values)."""
    (a, a_low, a_count), (b, b_low, b_count) = PART_FIELDS[part]
    fields = types.SimpleNamespace(**{
        a: np.repeat(np.arange(a_count, dtype=np.float64) + a_low, b_count),
        b: np.tile(np.arange(b_count, dtype=np.float64) + b_low, a_count),
    })
    get, period = PARTS[part]
    angle = 2 * np.pi * np.asarray(get(fields), dtype=np.float64) / period
    return np.sin(angle), np.cos(angle)


def part_keys(part: str, stamps) -> np.ndarray:
    """Each row's index into :func:`part_tables` (0 for a missing stamp: masked by the caller)."""
    (a, a_low, _), (b, b_low, b_count) = PART_FIELDS[part]
    if hasattr(stamps, "field"):  # Arrow stamps: int64 fields, 0 where missing
        keys = (stamps.field(a) - a_low) * b_count + (stamps.field(b) - b_low)
    else:  # a DatetimeIndex: NaN where missing
        keys = (np.asarray(getattr(stamps, a), np.float64) - a_low) * b_count + (np.asarray(getattr(stamps, b), np.float64) - b_low)
        keys = np.nan_to_num(keys, nan=0.0).astype(np.int64)
    return np.clip(keys, 0, len(part_tables(part)[0]) - 1, out=keys)


def as_datetime(values: pd.Series, column: str) -> pd.DatetimeIndex:
    """Timestamps in UTC (naive values are taken as UTC); unparseable strings raise InvalidInputError."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.to_datetime(values, utc=True)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise InvalidInputError(f"column {column!r}: value {values[bad].iloc[0]!r} is not a date/time")
    return pd.DatetimeIndex(parsed)


def iso_stamps(values: pd.Series) -> Any:
    """``values`` (strings) parsed by Arrow as ISO 8601 timestamps, or None where Arrow cannot
    parse every one of them (other formats, mixed offsets, bad values: :func:`as_datetime` decides).

    All naive (taken as UTC) or all with an offset (converted to UTC): what :func:`as_datetime`
    gives for the same strings, without pandas' per-call parsing cost (a served record pays it).
    """
    import pyarrow as pa

    if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        return None
    try:
        text = pa.array(values.to_numpy(object, na_value=None), type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all strings (datetime objects, numbers)
        return None
    return iso_timestamps(text)


def iso_timestamps(text: Any) -> Any:
    """An Arrow string array parsed as ISO 8601 timestamps (what :func:`iso_stamps` gives for the
    same strings), or None where Arrow cannot parse every one of them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for tz in (None, "UTC"):  # naive ISO strings; then ISO strings with offsets
        try:
            return pc.cast(text, pa.timestamp("ns", tz=tz))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


@register
class DatetimeFeaturizer(Featurizer):
    """``<name>__ordinal`` (seconds since the epoch, robust-scaled) and sin/cos of the month of
    year, day of week and hour of day — each part only when it varies in the sample.
    Missing values get the median and, when the sample had any, an indicator."""

    kind = "datetime"

    def fit(self, frame: pd.DataFrame) -> DatetimeFeaturizer:
        stamps = as_datetime(frame[self.column], self.column)
        present = stamps[~stamps.isna()]
        self.parts_ = [name for name, (get, _) in PARTS.items() if len(present) and np.ptp(np.asarray(get(present), float)) > 0]
        self.scaler_ = RobustScaler().fit(self._ordinal(stamps))
        self.indicator_ = bool(stamps.isna().any())
        names = [f"{self.column}__ordinal"]
        for part in self.parts_:
            names += [f"{self.column}__{part}_sin", f"{self.column}__{part}_cos"]
        self.feature_names_ = names + ([f"{self.column}__missing"] if self.indicator_ else [])
        return self

    @staticmethod
    def _ordinal(stamps: pd.DatetimeIndex) -> np.ndarray:
        seconds = stamps.as_unit("s").asi8.astype(np.float64)
        seconds[stamps.isna()] = np.nan
        return seconds

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parsed = iso_stamps(frame[self.column])
        if parsed is not None:  # ISO strings (JSON records): Arrow's parser, the same stamps
            stamps = arrow_stamps(parsed)
            return self._encode(stamps, stamps.missing, stamps.seconds.copy())
        stamps = as_datetime(frame[self.column], self.column)
        return self._encode(stamps, np.asarray(stamps.isna()), self._ordinal(stamps))

    def transform_arrow(self, table, out: np.ndarray | None = None) -> np.ndarray:
        stamps = arrow_stamps(table.column(self.column))
        if stamps is None:
            return super().transform_arrow(table, out)
        return self._encode(stamps, stamps.missing, stamps.seconds.copy(), out)

    def _encode(self, stamps, missing: np.ndarray, seconds: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The block from the stamps' calendar parts (``stamps.month`` ...), the missing mask and
        seconds since the epoch (NaN where missing), written to ``out`` when given."""
        if out is None:
            out = np.empty((len(missing), len(self.feature_names_)), np.float32)
        out[:, 0] = self.scaler_.transform(seconds)
        for i, part in enumerate(self.parts_):
            keys = part_keys(part, stamps)
            sin, cos = part_tables(part)
            out[:, 1 + 2 * i] = sin[keys]
            out[:, 2 + 2 * i] = cos[keys]
        out[missing, : 1 + 2 * len(self.parts_)] = 0.0
        if self.indicator_:
            out[:, -1] = missing
        return out

    def fitted_state(self) -> dict:
        return {"parts": self.parts_, "scaler": self.scaler_.state(), "indicator": self.indicator_}

    def load_fitted_state(self, state: dict) -> None:
        self.parts_ = list(state["parts"])
        self.scaler_ = RobustScaler.from_state(state["scaler"])
        self.indicator_ = bool(state["indicator"])
