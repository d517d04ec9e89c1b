"""One series onto a regular grid, then to a fixed length.

Resampling rule (docs/series.md): observations with a missing value or timestamp are
dropped; duplicate timestamps are averaged; the grid step is the **median** step between
consecutive timestamps; the grid starts at the first timestamp and ends at or just before
the last (a whole number of steps); every grid
point gets the value linearly interpolated between its neighbouring observations, so gaps
are filled by straight lines and irregular timestamps are evened out. ``n_gaps`` counts
grid points with no observation within half a step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


RESAMPLING = (
    "observations with a missing value or timestamp are dropped; duplicate timestamps are averaged; each series is "
    "put on a regular grid whose step is the median step between its consecutive timestamps, from its first "
    "timestamp to its last (a whole number of steps); grid points get values linearly interpolated between the "
    "neighbouring observations (gaps become straight lines); shapes are z-normalized and brought to a common length "
    "by piecewise means (shortening) or linear interpolation (lengthening)"
)
"""The rule above in one line (``series.json``'s ``resampling``)."""


class Grid(NamedTuple):
    """A series on its regular grid: ``values`` (n_points, n_columns), the step (time units), gap count."""

    values: np.ndarray
    step: float
    n_gaps: int


def regular_grid(times: np.ndarray, values: np.ndarray, max_length: int) -> Grid | int:
    """``values`` (n_obs, n_columns) observed at ``times`` on the regular grid of the median step.

    Parameters
    ----------
    times : ndarray of shape (n_obs,), float (seconds or time units), finite, any order
    values : ndarray of shape (n_obs, n_columns), float, finite
    max_length : int
        The longest grid allowed.

    Returns
    -------
    Grid, or the grid's length (int) when it would exceed ``max_length`` (nothing allocated).
    """
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    unique, start = np.unique(times, return_index=True)
    if unique.size < times.size:  # duplicate timestamps: their mean
        counts = np.diff(np.append(start, times.size))
        values = np.add.reduceat(values, start, axis=0) / counts[:, None]
        times = unique
    if times.size == 1:
        return Grid(values.astype(np.float64), 0.0, 0)
    step = float(np.median(np.diff(times)))
    length = int(np.floor((times[-1] - times[0]) / step + 1e-9)) + 1  # the grid never passes the last timestamp
    if length > max_length:
        return length
    grid = times[0] + step * np.arange(length)
    out = np.empty((length, values.shape[1]))
    for column in range(values.shape[1]):
        out[:, column] = np.interp(grid, times, values[:, column])
    nearest = np.searchsorted(times, grid).clip(1, times.size - 1)
    distance = np.minimum(np.abs(times[nearest] - grid), np.abs(times[nearest - 1] - grid))
    return Grid(out, step, int((distance > step / 2).sum()))


def znormalize(y: np.ndarray) -> np.ndarray:
    """``(y - mean) / std`` per column; a constant column becomes zeros."""
    y = np.asarray(y, np.float64)
    std = y.std(axis=0)
    return (y - y.mean(axis=0)) / np.where(std > 0, std, 1.0)


def to_length(y: np.ndarray, length: int) -> np.ndarray:
    """``y`` (n,) or (n, d) at ``length`` points: piecewise means when shortening (PAA, which averages
    the noise out), linear interpolation when lengthening; both map the first to the last point."""
    y = np.asarray(y, np.float64)
    flat = y.ndim == 1
    y = y[:, None] if flat else y
    n = y.shape[0]
    if n == length:
        out = y.copy()
    elif n > length:
        edges = np.linspace(0, n, length + 1)
        bounds = np.round(edges).astype(np.int64)
        bounds[1:] = np.maximum(bounds[1:], bounds[:-1] + 1)
        bounds = np.minimum(bounds, n)
        sums = np.add.reduceat(y, bounds[:-1].clip(0, n - 1), axis=0)
        out = sums / np.maximum(np.diff(bounds), 1)[:, None]
    else:
        source = np.linspace(0.0, 1.0, n)
        target = np.linspace(0.0, 1.0, length)
        out = np.stack([np.interp(target, source, y[:, c]) for c in range(y.shape[1])], axis=1)
    return out[:, 0] if flat else out


__all__ = ["RESAMPLING", "Grid", "regular_grid", "to_length", "znormalize"]
