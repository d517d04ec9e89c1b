"""Series mode: segments of time series, one row per series (docs/series.md).

A long table (series id, timestamp, value columns) becomes one row per series
(:mod:`.table`, per partition after a shuffle by series id), each series resampled to the
regular grid of its median step (:mod:`.resample`). Method ``features`` clusters the
series features (:mod:`.features`) with the usual algorithms and sweep; ``shape`` and
``kshape`` cluster the z-normalized shapes with tslearn (:mod:`.shape`); their centers are
published and served as a :class:`SeriesShapeModel` (:mod:`.published`).
"""

from __future__ import annotations

from .features import SCALARS, feature_names
from .published import SeriesShapeModel
from .run import (
    ASSIGNMENTS_FILE,
    PROFILES_FILE,
    SEGMENTS_FILE,
    SERIES_FILE,
    SeriesOutcome,
    apply_series_run,
    is_series_run,
    series_settings,
    train_series_run,
)
from .settings import METHODS, SeriesSettings

__all__ = [
    "ASSIGNMENTS_FILE",
    "METHODS",
    "PROFILES_FILE",
    "SCALARS",
    "SEGMENTS_FILE",
    "SERIES_FILE",
    "SeriesOutcome",
    "SeriesSettings",
    "SeriesShapeModel",
    "apply_series_run",
    "feature_names",
    "is_series_run",
    "series_settings",
    "train_series_run",
]
