"""The original columns behind a fitted pipeline: their names, kinds, raw values and feature blocks.

Insights speak in the user's columns, never in feature names: one :class:`ColumnView` per
featurizer (a latitude/longitude pair is one ``geo`` column named ``"LAT:LON"``), with the
slice of the pipeline's *input* feature space (before any projection) its block occupies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..features import FeaturePipeline
from ..features._base import Featurizer, as_float


@dataclass(frozen=True)
class ColumnView:
    """One original column (or geo pair) as insights see it."""

    name: str
    kind: str
    featurizer: Featurizer
    start: int
    stop: int

    @property
    def block(self) -> slice:
        """Its features in the input feature space (weighted blocks, before any projection)."""
        return slice(self.start, self.stop)


def column_name(featurizer: Featurizer) -> str:
    """The user's name of a featurizer's column (``"LAT:LON"`` for a coordinate pair)."""
    if featurizer.kind == "geo" and "lat" in featurizer.options:
        return f"{featurizer.options['lat']}:{featurizer.options['lon']}"
    return featurizer.column


def column_views(pipeline: FeaturePipeline) -> list[ColumnView]:
    """One view per featurizer, in the pipeline's (table) order."""
    views, start = [], 0
    for featurizer in pipeline.featurizers_:
        stop = start + len(featurizer.feature_names_)
        views.append(ColumnView(column_name(featurizer), featurizer.kind, featurizer, start, stop))
        start = stop
    return views


def feature_to_column(pipeline: FeaturePipeline) -> dict[str, str]:
    """Internal input feature name -> the user's column name."""
    return {name: view.name for view in column_views(pipeline) for name in view.featurizer.feature_names_}


def weighted_blocks(pipeline: FeaturePipeline, frame: pd.DataFrame) -> np.ndarray:
    """The input feature matrix of ``frame``: every block times its weight, before any projection."""
    pipeline.check_columns(frame)
    blocks = pipeline._blocks(frame, None)
    return np.hstack([b.astype(np.float64) * w for b, w in zip(blocks, pipeline.block_weights_)]) if blocks else np.zeros((len(frame), 0))


def project(pipeline: FeaturePipeline, inputs: np.ndarray) -> np.ndarray:
    """The model's features from the input feature matrix (:func:`weighted_blocks`)."""
    projection = pipeline.projection_
    if projection is not None:
        inputs = (inputs - projection["mean"]) @ projection["components"].T.astype(np.float64)
    return np.ascontiguousarray(inputs, dtype=np.float32)


def numeric_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """float64 with NaN for missing."""
    return as_float(frame[column], column)


def boolean_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    from ..features.numeric import as_bool

    return as_bool(frame[column], column)


def label_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    from ..features.categorical import as_labels

    return np.asarray(as_labels(frame[column]), dtype=object)


def datetime_values(frame: pd.DataFrame, column: str) -> pd.DatetimeIndex:
    from ..features.datetime import as_datetime

    return as_datetime(frame[column], column)


def text_values(frame: pd.DataFrame, column: str) -> list[str]:
    from ..features.text import as_texts

    return as_texts(frame[column])[0]


def image_values(frame: pd.DataFrame, column: str) -> list[str | None]:
    from ..features.image import _describe

    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else _describe(v) for v in frame[column].tolist()]


def geo_values(view: ColumnView, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) in degrees, NaN for missing."""
    return view.featurizer.coordinates(frame)


def clean(value, digits: int = 6):
    """A JSON-safe float rounded to ``digits`` significant digits (None for NaN/inf)."""
    if value is None:
        return None
    value = float(value)
    if not np.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")
