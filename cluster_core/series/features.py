"""Features of one series on its regular grid (docs/series.md, "Series features").

Per value column ``V``:

* ``V__level`` — the mean;
* ``V__trend`` — slope of the least-squares line over the series' span, in standard
  deviations of the series (total change along the fitted line / std; about ±3.5 for a
  clean line, near 0 without trend);
* ``V__seasonal_period`` and ``V__seasonal_strength`` — the lag (in grid steps, 2 to
  ``max_period``) of the highest local peak of the autocorrelation function of the
  detrended series, and the autocorrelation there (0 and 0 when there is no peak);
* ``V__acf1`` — the lag-1 autocorrelation of the detrended series;
* ``V__volatility`` — std of the first differences / std of the series (about 1.4 for
  white noise, near 0 for a smooth curve);
* ``V__shape0`` ... — the z-normalized series at ``profile_points`` points
  (:func:`~cluster_core.series.resample.to_length`).
"""

from __future__ import annotations

import numpy as np

from .resample import to_length, znormalize

SCALARS = ("level", "trend", "seasonal_period", "seasonal_strength", "acf1", "volatility")


def feature_names(value_columns: list[str], profile_points: int) -> list[str]:
    """The feature columns, in order, for ``value_columns``."""
    names = []
    for column in value_columns:
        names += [f"{column}__{s}" for s in SCALARS]
        names += [f"{column}__shape{i}" for i in range(profile_points)]
    return names


def autocorrelation(y: np.ndarray, max_lag: int) -> np.ndarray:
    """ACF of ``y`` (n,) at lags 0..max_lag (FFT, biased estimator); zeros for a constant series."""
    n = y.shape[0]
    centered = y - y.mean()
    denominator = float(centered @ centered)
    if denominator == 0.0 or n < 2:
        return np.zeros(max_lag + 1)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(centered, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1] / denominator
    return acf


def seasonality(acf: np.ndarray) -> tuple[int, float]:
    """(period, strength): the highest local peak of ``acf`` at lag >= 2, or (0, 0.0)."""
    if acf.shape[0] < 4:
        return 0, 0.0
    inner = acf[2:-1]
    peaks = np.flatnonzero((inner > acf[1:-2]) & (inner >= acf[3:])) + 2
    if peaks.size == 0:
        return 0, 0.0
    best = peaks[np.argmax(acf[peaks])]
    strength = float(acf[best])
    return (int(best), strength) if strength > 0 else (0, 0.0)


def describe(y: np.ndarray, profile_points: int, max_period: int) -> list[float]:
    """The features of one value column ``y`` (n,) on its grid, in :data:`SCALARS` + shape order."""
    n = y.shape[0]
    std = float(y.std())
    position = np.linspace(0.0, 1.0, n)
    slope, intercept = np.polyfit(position, y, 1) if n >= 2 else (0.0, float(y.mean()))
    residual = y - (slope * position + intercept)
    acf = autocorrelation(residual, max(1, min(max_period, n // 2)))
    period, strength = seasonality(acf)
    volatility = float(np.diff(y).std() / std) if std > 0 and n >= 2 else 0.0
    scalars = [float(y.mean()), float(slope / std) if std > 0 else 0.0, float(period), strength,
               float(acf[1]) if acf.shape[0] > 1 else 0.0, volatility]
    return scalars + to_length(znormalize(y), profile_points).tolist()


__all__ = ["SCALARS", "autocorrelation", "describe", "feature_names", "seasonality"]
