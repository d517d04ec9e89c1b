"""Clusters x features: standardized difference of each cluster's mean from the overall mean.

The features are the user's: numeric and boolean columns as they are, datetime as time,
each of a categorical column's overall top values as an indicator ``column=value``, a geo
column's latitude and longitude. Observations rank the same quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._columns import ColumnView, boolean_values, clean, datetime_values, geo_values, label_values, numeric_values
from .profiles import top_categories


@dataclass
class ProfileFeature:
    """One heatmap column: a name in the user's terms and its values (NaN = missing)."""

    name: str
    column: str
    kind: str
    values: np.ndarray
    value: str | None = None  # the category of an indicator


def profile_features(views: list[ColumnView], frame: pd.DataFrame) -> list[ProfileFeature]:
    """The heatmap's features of ``frame``, in column order."""
    out = []
    for view in views:
        name, kind = view.name, view.kind
        if kind == "numeric":
            out.append(ProfileFeature(name, name, kind, numeric_values(frame, name)))
        elif kind == "boolean":
            out.append(ProfileFeature(name, name, kind, boolean_values(frame, name), "true"))
        elif kind == "datetime":
            stamps = datetime_values(frame, name)
            seconds = stamps.as_unit("s").asi8.astype(np.float64)
            seconds[np.asarray(stamps.isna())] = np.nan
            out.append(ProfileFeature(name, name, kind, seconds))
        elif kind == "categorical":
            labels = label_values(frame, name)
            for value in top_categories(labels):
                out.append(ProfileFeature(f"{name}={value}", name, kind, (labels == value).astype(np.float64), value))
        elif kind == "geo":
            lat, lon = geo_values(view, frame)
            out.append(ProfileFeature(f"{name}:latitude", name, kind, lat))
            out.append(ProfileFeature(f"{name}:longitude", name, kind, lon))
    return out


def standardized_differences(features: list[ProfileFeature], labels: np.ndarray, clusters: list[int]) -> np.ndarray:
    """(len(clusters), len(features)): (cluster mean - overall mean) / overall std (0 when std is 0)."""
    out = np.zeros((len(clusters), len(features)))
    for j, feature in enumerate(features):
        values = feature.values
        present = ~np.isnan(values)
        if not present.any():
            continue
        mean, std = values[present].mean(), values[present].std()
        if std <= 1e-12 * max(1.0, abs(mean)):
            continue
        for i, cluster in enumerate(clusters):
            member = present & (labels == cluster)
            if member.any():
                out[i, j] = (values[member].mean() - mean) / std
    return out


def heatmap(features: list[ProfileFeature], labels: np.ndarray, clusters: list[int]) -> dict:
    """``{"clusters", "features", "columns", "values"}`` (docs/insights.md)."""
    values = standardized_differences(features, labels, clusters)
    return {
        "clusters": [int(c) for c in clusters],
        "features": [f.name for f in features],
        "columns": [f.column for f in features],
        "values": [[clean(v, 4) for v in row] for row in values],
    }
