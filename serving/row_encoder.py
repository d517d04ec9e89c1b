"""A few JSON records straight to their float32 feature rows, without Arrow arrays or compute kernels.

A served record's values went through an Arrow table (:mod:`serving.record_table`) and each
featurizer's Arrow path: about a dozen Arrow and numpy calls per column, most of a
single record's model work. For a model of numeric, boolean, categorical and datetime columns,
:class:`RowEncoder` writes the same numbers value by value:

* categorical and boolean columns: the featurizer's own rows for each category, for a value
  it never saw and for a missing value, computed once by its Arrow path and then looked up;
* numeric columns: the featurizer's scaling, ``(x - center) / scale`` in float64 (the same IEEE
  operations as numpy's), a value in the compressed tails through the scaler itself;
* datetime columns: ISO 8601 strings of the common forms (``YYYY-MM-DD``, then ``[T ]hh:mm``,
  ``:ss``, up to nine decimals, ``Z`` or ``+hh:mm``) parsed here to the instant Arrow's parser
  gives, then the featurizer's scaling and its tables of calendar parts.

Block weights and a projection are applied by the pipeline's own code. Any value outside
those forms (a number in a categorical column, another date format, an integer beyond 64
bits or, beside a float, beyond 2**53, naive and zoned dates in one request) makes
:meth:`RowEncoder.features` return None, and the caller takes the general path, whose
numbers -- and errors -- these are (``tests/test_serving_row_encoder.py`` compares them bit
for bit).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import numpy as np

from cluster_core.features.categorical import MISSING
from cluster_core.features.datetime import PART_FIELDS, part_tables

#: most records encoded value by value; larger requests take the vectorized Arrow path
MAX_RECORDS = 16
_INT64 = (-(2**63), 2**63)
_EXACT = (-(2**53), 2**53 + 1)  # ints a double holds exactly
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_NS_PER_S = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_S
# the ISO 8601 forms taken (ASCII digits only); anything else goes to Arrow's parser on the general path
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
# years whose instants fit Arrow's int64 nanoseconds with room to spare (1677-09-21 .. 2262-04-11)
_YEARS = range(1678, 2262)


def _raw(featurizer: Any) -> Any:
    """The featurizer itself, unwrapped from :class:`serving.memo.MemoizedFeaturizer`."""
    return getattr(featurizer, "featurizer", featurizer)


def _scaled(scaler: Any, value: float) -> float:
    """``scaler.transform`` of one value: in Python floats, or through the scaler in its tails."""
    z = (value - scaler.center_) / scaler.scale_
    if abs(z) > scaler.clip:
        return float(scaler.transform(np.array([value], np.float64))[0])
    return z


def _scaler_ok(scaler: Any) -> bool:
    return all(isinstance(getattr(scaler, name, None), (int, float)) for name in ("center_", "scale_", "clip"))


class _LookupColumn:
    """A categorical or boolean column: the featurizer's row for each value, computed once by its Arrow path.

    ``values`` are encoded in one table; ``keys[i]`` finds row ``i``; ``other`` is the row of a
    string never seen (categorical), None where no other value has a row (boolean).
    """

    def __init__(self, featurizer: Any, kind: type, values: list[Any], keys: list[Any], other: int | None) -> None:
        import pyarrow as pa

        self.kind, self.other = kind, other
        column = featurizer.column
        self.rows = np.asarray(_raw(featurizer).transform_arrow(pa.table({column: pa.array(values)})), np.float32)
        self.index: dict[Any, int] = {}
        for i, key in enumerate(keys):
            self.index.setdefault(key, i)  # a repeated label: its first position, as Arrow's index_in

    @classmethod
    def categorical(cls, featurizer: Any) -> _LookupColumn:
        categories = [str(c) for c in _raw(featurizer).categories_]
        unseen = "<unseen>"
        while unseen in categories or unseen == MISSING:
            unseen += "_"
        # a missing value is the <missing> category (or, when the sample had none, any unseen label)
        return cls(featurizer, str, categories + [None, unseen], categories + [None], len(categories) + 1)

    @classmethod
    def boolean(cls, featurizer: Any) -> _LookupColumn:
        return cls(featurizer, bool, [True, False, None], [True, False, None], None)

    def encode(self, values: list[Any], out: np.ndarray) -> bool:
        """Write the rows of ``values`` to ``out``; False when a value has no row here."""
        for i, value in enumerate(values):
            if value is not None and type(value) is not self.kind:
                return False
            row = self.index.get(value)
            if row is None:
                if self.other is None or not _utf8(value):
                    return False
                row = self.other
            out[i] = self.rows[row]
        return True


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: Arrow cannot hold it
        return False
    return True


class _NumericColumn:
    """A numeric column: the scaled value, 0 (the median) and the indicator when missing."""

    def __init__(self, featurizer: Any) -> None:
        raw = _raw(featurizer)
        self.scaler, self.indicator = raw.scaler_, bool(raw.indicator_)

    def encode(self, values: list[Any], out: np.ndarray) -> bool:
        # Arrow makes a column of ints int64; beside a float, an int must be exact as a double
        low, high = _EXACT if any(type(value) is float for value in values) else _INT64
        for i, value in enumerate(values):
            kind = type(value)
            if value is None:
                out[i, 0] = 0.0
            elif kind is float or (kind is int and low <= value < high):
                out[i, 0] = _scaled(self.scaler, float(value))
            else:
                return False
            if self.indicator:
                out[i, 1] = value is None
        return True


def iso_instant(text: str) -> tuple[int, bool] | None:
    """``(nanoseconds since the epoch in UTC, has a zone)`` of an ISO 8601 string of the forms taken
    (module docstring), as Arrow's parser reads it; None for any other string."""
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(year) not in _YEARS:
        return None
    try:
        days = _dt.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:  # no such day
        return None
    h, m, s = int(hour or 0), int(minute or 0), int(second or 0)
    if h > 23 or m > 59 or s > 59:
        return None
    ns = days * _NS_PER_DAY + ((h * 60 + m) * 60 + s) * _NS_PER_S + (int(fraction.ljust(9, "0")) if fraction else 0)
    if zone is None or zone == "Z":
        return ns, zone is not None
    zone_h, zone_m = int(zone[1:3]), int(zone[4:6])
    if zone_h > 23 or zone_m > 59:
        return None
    offset = (zone_h * 60 + zone_m) * 60 * _NS_PER_S
    return (ns - offset if zone[0] == "+" else ns + offset), True


class _DatetimeColumn:
    """A datetime column: the scaled ordinal, sin and cos of the calendar parts, the indicator."""

    def __init__(self, featurizer: Any) -> None:
        raw = _raw(featurizer)
        self.scaler, self.indicator = raw.scaler_, bool(raw.indicator_)
        self.parts = [(PART_FIELDS[part], *part_tables(part)) for part in raw.parts_]
        self.width = 1 + 2 * len(self.parts)

    def encode(self, values: list[Any], out: np.ndarray) -> bool:
        instants: list[tuple[int, bool] | None] = []
        for value in values:
            instant = None if value is None else iso_instant(value) if type(value) is str else None
            if instant is None and value is not None:
                return False
            instants.append(instant)
        if len({instant[1] for instant in instants if instant is not None}) > 1:
            return False  # naive and zoned strings together: Arrow parses neither way (the frame path decides)
        for i, instant in enumerate(instants):
            if instant is None:
                out[i, : self.width] = 0.0
            else:
                self._encode_one(instant[0], out[i])
            if self.indicator:
                out[i, -1] = instant is None
        return True

    def _encode_one(self, ns: int, row: np.ndarray) -> None:
        days, rest = divmod(ns, _NS_PER_DAY)
        date = _dt.date.fromordinal(days + _EPOCH_ORDINAL)
        minutes = rest // (60 * _NS_PER_S)
        fields = {"month": date.month, "day": date.day, "day_of_week": date.weekday(), "hour": minutes // 60,
                  "minute": minutes % 60}
        row[0] = _scaled(self.scaler, float(ns // _NS_PER_S))
        for i, (((a, a_low, _), (b, b_low, b_count)), sin, cos) in enumerate(self.parts):
            key = min(max((fields[a] - a_low) * b_count + (fields[b] - b_low), 0), len(sin) - 1)
            row[1 + 2 * i], row[2 + 2 * i] = sin[key], cos[key]


_COLUMNS = {
    "numeric": _NumericColumn,
    "boolean": _LookupColumn.boolean,
    "categorical": _LookupColumn.categorical,
    "datetime": _DatetimeColumn,
}


class RowEncoder:
    """The feature rows of a few checked JSON records, value by value (see the module docstring).

    Parameters
    ----------
    pipeline : FeaturePipeline
        A fitted pipeline whose featurizers are all of the kinds in ``_COLUMNS``, one column each
        (:meth:`for_pipeline` checks).
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.width = len(pipeline.input_feature_names_)
        self.columns = []
        start = 0
        for featurizer, weight in zip(pipeline.featurizers_, pipeline.block_weights_):
            stop = start + len(featurizer.feature_names_)
            self.columns.append((featurizer.column, _COLUMNS[featurizer.kind](featurizer), start, stop, weight))
            start = stop

    @classmethod
    def for_pipeline(cls, pipeline: Any) -> RowEncoder | None:
        """An encoder for ``pipeline``, or None when a featurizer is of another kind or reads other columns."""
        columns = set()
        for featurizer in pipeline.featurizers_:
            raw = _raw(featurizer)
            if featurizer.kind not in _COLUMNS or list(featurizer.input_columns) != [featurizer.column] \
                    or featurizer.column in columns:
                return None
            if featurizer.kind in ("numeric", "datetime") and not _scaler_ok(raw.scaler_):
                return None
            if featurizer.kind == "categorical" and raw.encoding_ not in ("onehot", "frequency"):
                return None
            columns.add(featurizer.column)
        try:
            return cls(pipeline)
        except Exception:  # noqa: BLE001 - a featurizer state the lookup rows cannot be built from: the general path serves
            return None

    def features(self, records: list[dict[str, Any]]) -> np.ndarray | None:
        """The float32 feature matrix of checked ``records`` (every column present), the numbers of
        ``pipeline.transform``; None for more than :data:`MAX_RECORDS` records or a value this
        encoder does not take (the caller then takes the general path)."""
        if not 0 < len(records) <= MAX_RECORDS:
            return None
        out = np.empty((len(records), self.width), np.float32)
        for column, encoder, start, stop, weight in self.columns:
            block = out[:, start:stop]
            if not encoder.encode([record[column] for record in records], block):
                return None
            if weight != 1.0:
                block *= np.float32(weight)
        return self.pipeline._project(out)


__all__ = ["MAX_RECORDS", "RowEncoder", "iso_instant"]
