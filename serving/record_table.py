"""JSON records as an Arrow table for the feature pipeline's Arrow path (no pandas objects).

A request's records used to become a pandas frame, and each featurizer then converted its
column with pandas: a fixed cost per call, paid in full by a single record (about half of a
served record's model work). The pipeline encodes the Arrow columns of numeric, boolean,
categorical and datetime columns directly, with the same numbers
(:mod:`cluster_core.features._arrow`), so records whose values give every column its plain
Arrow type go that way. Anything else (numbers in a categorical column, dates that are not
ISO 8601, a column of nulls only, other kinds of columns) returns None: the caller keeps the
frame, whose errors name the failing record.
"""

from __future__ import annotations

from typing import Any

#: the column kinds the fast path takes
KINDS = frozenset({"numeric", "boolean", "categorical", "datetime"})
#: column kind -> the Arrow type given to a column of nulls only (which a frame holds as None objects:
#: the featurizers read them as missing either way)
_NULLS = {"numeric": "float64", "boolean": "bool_", "categorical": "string"}


def _plain(kind: str, arrow_type: Any) -> bool:
    """True when ``arrow_type`` is the type the Arrow path takes for a ``kind`` column of JSON values."""
    import pyarrow as pa

    if kind == "numeric":
        return arrow_type == pa.int64() or arrow_type == pa.float64()
    if kind == "boolean":
        return arrow_type == pa.bool_()
    if kind == "categorical":
        return arrow_type == pa.string()
    return pa.types.is_timestamp(arrow_type)  # datetime: the ISO strings, parsed


def arrow_columns(featurizers: list[Any]) -> dict[str, str] | None:
    """``{column: kind}`` when every featurizer encodes one column of a kind the fast path takes, else None.

    Parameters
    ----------
    featurizers : list of Featurizer
        A fitted pipeline's ``featurizers_``.
    """
    columns: dict[str, str] = {}
    for featurizer in featurizers:
        kind = getattr(featurizer, "kind", None)
        if kind not in KINDS or list(featurizer.input_columns) != [featurizer.column] or featurizer.column in columns:
            return None
        columns[featurizer.column] = kind
    return columns


def records_table(records: list[dict[str, Any]], columns: dict[str, str]) -> Any:
    """The ``pyarrow.Table`` of ``columns`` of checked JSON ``records``, or None where a column's values
    would not have their kind's plain Arrow type (the caller then builds a pandas frame).

    Parameters
    ----------
    records : list of dict
        Records that passed the model's column checks (every column present).
    columns : dict
        ``{column: kind}`` from :func:`arrow_columns`.
    """
    import pyarrow as pa

    from cluster_core.features.datetime import iso_timestamps

    if not records:
        return None
    arrays = {}
    for column, kind in columns.items():
        values = [record[column] for record in records]
        try:
            if kind == "datetime":  # ISO strings, parsed as the datetime featurizer parses them
                array = iso_timestamps(pa.array(values, pa.string()))
            else:
                array = pa.array(values)
                if pa.types.is_null(array.type):
                    array = pa.nulls(len(values), getattr(pa, _NULLS[kind])())
        except (pa.ArrowException, TypeError, ValueError, OverflowError):  # mixed types, huge ints, bad text
            return None
        if array is None or not _plain(kind, array.type):
            return None
        arrays[column] = array
    return pa.table(arrays)


__all__ = ["KINDS", "arrow_columns", "records_table"]
