"""Arrow columns to the numpy values the featurizers encode, without pandas.

Each helper returns exactly what the featurizer's pandas conversion (``as_float``,
``as_bool``, ``as_labels`` + ``get_indexer``, ``as_datetime``) returns for the same
column read through pandas, or ``None`` when the column's Arrow type has no direct path
(numbers stored as strings, dates as text, categories that are not strings): the
featurizer then converts that one column to pandas (:meth:`Featurizer.transform_arrow`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError

def is_arrow_table(frame: Any) -> bool:
    """True for a pyarrow Table or RecordBatch (checked by module: pyarrow is imported only when used)."""
    return type(frame).__module__.startswith("pyarrow") and hasattr(frame, "column_names")


#: seconds per unit of an Arrow timestamp
_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _decoded(values: Any) -> Any:
    """A dictionary-encoded column as its plain values (others unchanged)."""
    import pyarrow as pa

    if pa.types.is_dictionary(values.type):
        return values.cast(values.type.value_type)
    return values


def _to_numpy_float(values: Any) -> np.ndarray:
    """float64 Arrow values as a numpy array (read-only when Arrow's buffer is shared), null as NaN."""
    import pyarrow.compute as pc

    if values.null_count:
        values = pc.fill_null(values, np.nan)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)


def _is_number(arrow_type: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type)


def arrow_float(values: Any) -> np.ndarray | None:
    """Numbers and booleans as float64, NaN for null/NaN/inf (as :func:`~._base.as_float`); None for other types."""
    import pyarrow as pa

    values = _decoded(values)
    if not _is_number(values.type) or pa.types.is_float16(values.type):
        return None
    out = _to_numpy_float(values.cast(pa.float64(), safe=False))
    infinite = np.isinf(out)
    if infinite.any():
        out = np.where(infinite, np.nan, out)
    return out


def arrow_bool(values: Any, column: str) -> np.ndarray | None:
    """Booleans (or 0/1 numbers) as float 1/0, NaN for null (as :func:`~.numeric.as_bool`); None for text."""
    import pyarrow as pa

    values = _decoded(values)
    if not _is_number(values.type) or pa.types.is_float16(values.type):
        return None
    out = _to_numpy_float(values.cast(pa.float64(), safe=False))
    present = out[~np.isnan(out)]
    other = present[~np.isin(present, (0.0, 1.0))]
    if other.size:
        raise InvalidInputError(f"column {column!r}: expected booleans (0/1), got {float(other[0])!r}")
    return out


def arrow_category_codes(values: Any, categories: list[str], missing_label: str) -> np.ndarray | None:
    """Position of each value's label in ``categories`` (-1 when absent), null counting as
    ``missing_label``, as ``pd.Index(categories).get_indexer(as_labels(values))``; None unless
    the column holds strings (plain or dictionary-encoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_type = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type) or pa.types.is_string_view(value_type)):
        return None
    lookup = pa.array(categories, pa.string())
    missing_code = categories.index(missing_label) if missing_label in categories else -1
    if pa.types.is_dictionary(values.type):  # look the (few) dictionary values up once, then gather
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        parts = []
        for chunk in chunks:
            dictionary = chunk.dictionary.cast(pa.string())
            dictionary_codes = _codes(pc.index_in(dictionary, value_set=lookup), -1)
            dictionary_codes[dictionary.is_null().to_numpy(zero_copy_only=False)] = missing_code
            indices = pc.fill_null(chunk.indices, 0).to_numpy(zero_copy_only=False)
            part = dictionary_codes[indices] if len(dictionary_codes) else np.full(len(chunk), missing_code, np.int64)
            if chunk.null_count:
                part = np.where(chunk.is_null().to_numpy(zero_copy_only=False), missing_code, part)
            parts.append(part)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    codes = _codes(pc.index_in(values.cast(pa.string()), value_set=lookup), -1)
    if values.null_count:
        codes = np.where(values.is_null().to_numpy(zero_copy_only=False), missing_code, codes)
    return codes


def _codes(index: Any, absent: int) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.fill_null(index, absent).to_numpy(zero_copy_only=False).astype(np.int64)


class ArrowStamps:
    """A timestamp column in UTC, as the parts :class:`~.datetime.DatetimeFeaturizer` reads."""

    def __init__(self, values: Any):
        import pyarrow as pa
        import pyarrow.compute as pc

        unit = values.type.unit
        # the stored integers are UTC instants whatever the time zone: drop it, keep them
        self.values = values.cast(pa.timestamp(unit)) if values.type.tz is not None else values
        self.missing = self.values.is_null().to_numpy(zero_copy_only=False)
        self._fields: dict[str, np.ndarray] = {}
        ticks = pc.fill_null(self.values.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        per_second = _UNITS_PER_SECOND[unit]
        seconds = (ticks // per_second).astype(np.float64)  # floor, as pandas' as_unit("s")
        seconds[self.missing] = np.nan
        self.seconds = seconds
        self._pc = pc

    def field(self, name: str) -> np.ndarray:
        """``month``, ``day``, ``day_of_week`` (Monday = 0), ``hour`` or ``minute`` as int64, 0 where missing."""
        if name not in self._fields:
            values = getattr(self._pc, name)(self.values)
            if values.null_count:
                values = self._pc.fill_null(values, 0)
            self._fields[name] = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)
        return self._fields[name]

    def __getattr__(self, name: str) -> np.ndarray:
        """The fields of :meth:`field` as attributes, like those of a ``DatetimeIndex``."""
        if name.startswith("_") or name not in ("month", "day", "day_of_week", "hour", "minute"):
            raise AttributeError(name)
        return self.field(name)


def arrow_stamps(values: Any) -> ArrowStamps | None:
    """A timestamp column's UTC parts (naive values taken as UTC, as :func:`~.datetime.as_datetime`); None for other types."""
    import pyarrow as pa

    values = _decoded(values)
    if not pa.types.is_timestamp(values.type):
        return None
    return ArrowStamps(values)
