"""Long table (one row per observation) -> one row per series.

:func:`summarize_frame` works per partition after a shuffle by series id (every series
whole in one partition), so tens of thousands of series are summarized in parallel on the
Dask workers and only the per-series rows (features and a fixed-length shape) reach the
driver. :func:`summarize_partition` is the pure per-partition function.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, InvalidInputError
from .features import describe, feature_names
from .resample import Grid, regular_grid, to_length, znormalize
from .settings import SeriesSettings

INFO_COLUMNS = ("n_observations", "n_points", "step", "n_gaps", "status")
OK = "ok"


def shape_names(value_columns: list[str], length: int) -> list[str]:
    """Columns of the fixed-length z-normalized shape of every value column."""
    return [f"shape__{column}__{i}" for column in value_columns for i in range(length)]


def shape_array(table: pd.DataFrame, value_columns: list[str], length: int) -> np.ndarray:
    """(n_series, length, n_values) z-normalized shapes from the ``shape__*`` columns of a per-series table."""
    flat = table[shape_names(value_columns, length)].to_numpy(np.float64)
    return flat.reshape(len(table), len(value_columns), length).transpose(0, 2, 1).copy()


def resolve_columns(settings: SeriesSettings, meta: pd.DataFrame, carry: list[str] | None = None) -> list[str]:
    """The value columns; InvalidInputError naming the setting for a missing or unusable column.

    ``meta``: an empty frame with the table's columns and dtypes.
    """
    columns = [str(c) for c in meta.columns]
    for field, name in (("series_id", settings.series_id), ("time", settings.time)):
        if name not in columns:
            raise InvalidInputError(f"column {name!r} is not in the data; its columns: {columns}", field=field)
    if settings.series_id == settings.time:
        raise InvalidInputError(f"the series id and the time are the same column {settings.time!r}", field="time")
    time_dtype = meta[settings.time].dtype
    if not (pd.api.types.is_datetime64_any_dtype(time_dtype) or _is_number(time_dtype)
            or pd.api.types.is_object_dtype(time_dtype) or pd.api.types.is_string_dtype(time_dtype)):
        raise InvalidInputError(
            f"column {settings.time!r} has dtype {time_dtype}; expected timestamps (datetime) or numbers", field="time")
    skip = {settings.series_id, settings.time, *(carry or [])}
    if settings.values is None:
        values = [c for c in columns if c not in skip and _is_number(meta[c].dtype)]
        if not values:
            raise InvalidInputError(
                f"no numeric value column besides {sorted(skip)}; name them with `values` (columns: {columns})", field="values")
        return values
    for name in settings.values:
        if name not in columns:
            raise InvalidInputError(f"column {name!r} is not in the data; its columns: {columns}", field="values")
        if name in (settings.series_id, settings.time):
            raise InvalidInputError(f"column {name!r} is the series id or the time, not a value", field="values")
        if not _is_number(meta[name].dtype):
            raise InvalidInputError(f"column {name!r} has dtype {meta[name].dtype}; series values must be numeric",
                                    field="values")
    return list(settings.values)


def _is_number(dtype: Any) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)


def output_meta(settings: SeriesSettings, values: list[str], id_dtype: Any, carry: list[str]) -> pd.DataFrame:
    """The empty per-series frame :func:`summarize_partition` returns (columns and dtypes)."""
    columns: dict[str, Any] = {settings.series_id: pd.Series([], dtype=id_dtype)}
    columns.update({c: pd.Series([], dtype="int64") for c in ("n_observations", "n_points", "n_gaps")})
    columns["step"] = pd.Series([], dtype="float64")
    columns["status"] = pd.Series([], dtype="object")
    columns.update({c: pd.Series([], dtype="object") for c in carry})
    for name in feature_names(values, settings.profile_points) + shape_names(values, settings.shape_length):
        columns[name] = pd.Series([], dtype="float64")
    return pd.DataFrame(columns)


def time_numbers(times: pd.Series, column: str) -> np.ndarray:
    """Timestamps as float seconds since the epoch (datetimes, or text parsed as dates), numbers as they are."""
    if _is_number(times.dtype):
        return times.to_numpy(np.float64, na_value=np.nan)
    if not pd.api.types.is_datetime64_any_dtype(times.dtype):
        try:
            with warnings.catch_warnings():  # pandas' "could not infer format" notice: each value is parsed alone
                warnings.simplefilter("ignore", UserWarning)
                times = pd.to_datetime(times, errors="raise", utc=True)
        except (ValueError, TypeError) as exc:
            example = next((v for v in times if v is not None), None)
            raise DataError(f"column {column!r}: value {example!r} is not a timestamp ({exc})", field="time") from None
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    nanoseconds = times.astype("datetime64[ns]").to_numpy().astype("int64").astype(np.float64)
    nanoseconds[times.isna().to_numpy()] = np.nan
    return nanoseconds / 1e9


def summarize_partition(part: pd.DataFrame, settings: SeriesSettings, values: list[str], carry: list[str]) -> pd.DataFrame:
    """One row per series of ``part`` (which holds every row of each of its series).

    Series with fewer than ``settings.min_points`` usable observations get a ``status``
    saying why and no features (NaN); a series whose grid exceeds ``settings.max_length``
    raises DataError naming it.
    """
    meta = output_meta(settings, values, part[settings.series_id].dtype if len(part.columns) else object, carry)
    part = part.dropna(subset=[settings.series_id])
    if len(part) == 0:
        return meta
    times = time_numbers(part[settings.time], settings.time)
    observed = part[values].to_numpy(np.float64, na_value=np.nan)
    usable = np.isfinite(times) & np.isfinite(observed).all(axis=1)
    n_features = len(meta.columns) - len(INFO_COLUMNS) - 1 - len(carry)
    rows = []
    for key, index in part.groupby(settings.series_id, sort=True, observed=True).indices.items():
        keep = index[usable[index]]
        info: list[Any] = [key, int(keep.size), 0, 0, 0.0, OK] + [part[c].iloc[index[0]] for c in carry]
        if keep.size < settings.min_points:
            info[5] = f"dropped: {keep.size} usable observation(s), at least {settings.min_points} needed"
            rows.append(info + [np.nan] * n_features)
            continue
        grid = regular_grid(times[keep], observed[keep], settings.max_length)
        if not isinstance(grid, Grid):
            raise DataError(
                f"series {key!r} spans {grid:,} points on its regular grid (median step), more than the limit of "
                f"{settings.max_length:,}; raise `max_length` or aggregate the series to a coarser step", field="max_length")
        info[2], info[3], info[4] = int(grid.values.shape[0]), int(grid.n_gaps), float(grid.step)
        described: list[float] = []
        shapes: list[float] = []
        for column in range(len(values)):
            y = grid.values[:, column]
            described += describe(y, settings.profile_points, settings.max_period)
            shapes += to_length(znormalize(y), settings.shape_length).tolist()
        rows.append(info + described + shapes)
    out = pd.DataFrame(rows, columns=meta.columns)
    return out.astype(meta.dtypes.to_dict())


def summarize_frame(frame: Any, settings: SeriesSettings, values: list[str], carry: list[str]) -> pd.DataFrame:
    """:func:`summarize_partition` over a Dask DataFrame (shuffled by series id when it has several
    partitions) or a pandas DataFrame; returns the per-series pandas frame, sorted by series id."""
    if isinstance(frame, pd.DataFrame):
        return summarize_partition(frame, settings, values, carry)
    columns = [settings.series_id, settings.time, *values, *[c for c in carry if c not in values]]
    frame = frame[list(dict.fromkeys(columns))]
    meta = output_meta(settings, values, frame._meta[settings.series_id].dtype, carry)
    if frame.npartitions > 1:
        frame = frame.shuffle(on=settings.series_id)
    result = frame.map_partitions(summarize_partition, settings, values, carry, meta=meta).compute()
    return result.sort_values(settings.series_id, kind="stable").reset_index(drop=True)


def dropped_report(table: pd.DataFrame, settings: SeriesSettings) -> list[dict]:
    """``[{"series_id", "reason"}]`` for every series left out (JSON values)."""
    dropped = table[table["status"] != OK]
    return [{"series_id": _json_value(k), "reason": r} for k, r in zip(dropped[settings.series_id], dropped["status"])]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


__all__ = ["INFO_COLUMNS", "OK", "dropped_report", "output_meta", "resolve_columns", "shape_array", "shape_names", "summarize_frame",
           "summarize_partition", "time_numbers"]
