"""One series per record (serving): a JSON record -> the row of series features a model takes.

A record is ``{"values": [y0, y1, ...]}`` (equally spaced observations of the one value
column; ``{"values": {"COL": [...], ...}}`` for several) or ``{"points": [{"time": T, "COL": y},
...]}`` (timestamps as ISO strings or numbers, any order, gaps allowed). ``null`` values are
missing observations. Each record is resampled and described exactly as a series of a long
table (:func:`~cluster_core.series.table.summarize_partition`), so serving answers what
``clustra apply`` answers for the same series.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ClustraError, InvalidInputError
from .settings import SeriesSettings
from .table import OK, summarize_partition

MAX_SHOWN = 60


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _long_frame(index: int, record: Any, settings: SeriesSettings, values: list[str]) -> pd.DataFrame:
    where = f"records[{index}]"
    if not isinstance(record, dict) or set(record) - {"values", "points", "series_id"} or len(set(record) & {"values", "points"}) != 1:
        raise InvalidInputError(f"{where}: expected an object with 'values' (an array of numbers) or 'points' "
                                "(an array of {\"time\": ..., \"VALUE\": number}), and optionally 'series_id'")
    if "values" in record:
        given = record["values"]
        columns = {values[0]: given} if isinstance(given, list) and len(values) == 1 else given
        if not isinstance(columns, dict) or set(columns) != set(values) or not all(isinstance(v, list) for v in columns.values()):
            raise InvalidInputError(f"{where}: 'values' must be an array of numbers"
                                    + ("" if len(values) == 1 else f" per value column, an object with keys {values}"))
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise InvalidInputError(f"{where}: the arrays of 'values' differ in length ({sorted(lengths)})")
        n = lengths.pop()
        frame = pd.DataFrame({settings.time: np.arange(n, dtype=np.float64), **columns})
    else:
        points = record["points"]
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise InvalidInputError(f"{where}: 'points' must be an array of objects with 'time' and {values}")
        for j, point in enumerate(points):
            missing = [c for c in ["time", *values] if c not in point]
            if missing:
                raise InvalidInputError(f"{where}: points[{j}] lacks {missing[0]!r} (each point has 'time' and {values})")
        frame = pd.DataFrame({settings.time: [p["time"] for p in points], **{c: [p[c] for p in points] for c in values}})
    for column in values:
        bad = next((v for v in frame[column] if not _number(v)), "none") if len(frame) else "none"
        if bad != "none":
            text = repr(bad)
            raise InvalidInputError(f"{where}: value {text[:MAX_SHOWN]} of {column!r} is not a finite number or null")
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    frame[settings.series_id] = index
    return frame


def series_feature_frame(records: list[Any], settings: SeriesSettings, values: list[str], columns: list[str]) -> pd.DataFrame:
    """The ``columns`` (series features) of one row per record; InvalidInputError naming the record
    that is malformed, too short or too long."""
    rows = []
    for index, record in enumerate(records):
        long = _long_frame(index, record, settings, values)
        try:
            summary = summarize_partition(long, settings, values, [])
        except ClustraError as exc:
            raise InvalidInputError(f"records[{index}]: {exc.message}") from None
        if len(summary) == 0:
            raise InvalidInputError(f"records[{index}]: the series has no observations")
        status = summary["status"].iloc[0]
        if status != OK:
            raise InvalidInputError(f"records[{index}]: the series has {status.removeprefix('dropped: ')}")
        rows.append(summary[columns].iloc[0])
    return pd.DataFrame(rows, columns=columns).reset_index(drop=True)


__all__ = ["series_feature_frame"]
