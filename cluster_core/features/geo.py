"""Geospatial columns: points on the globe as 3-D unit-sphere coordinates.

A place is given either as a latitude/longitude pair of numeric columns (detected by
name and range, or declared) or as one column of WKT ``POINT (lon lat)`` / GeoJSON
``{"type": "Point", "coordinates": [lon, lat]}`` values. Every point becomes

    x = cos(lat) cos(lon),  y = cos(lat) sin(lon),  z = sin(lat)

so Euclidean distance is the chord of the great circle: it grows monotonically with the
distance along the globe, and ±180° longitude are neighbours. Latitudes outside
[-90, 90], longitudes outside [-180, 180], and unparseable points are rejected with an
error naming the value; missing points get the sample's mean direction and an indicator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..kinds import parse_point  # the point formats, shared with kind detection
from ._base import Featurizer, as_float, register


def check_coordinates(lat: np.ndarray, lon: np.ndarray, where: str, values: pd.Series | None = None) -> None:
    """Raise InvalidInputError for the first latitude outside [-90, 90] or longitude outside [-180, 180]."""
    for name, array, limit in (("latitude", lat, 90.0), ("longitude", lon, 180.0)):
        bad = np.flatnonzero(np.abs(np.nan_to_num(array, nan=0.0)) > limit)
        if bad.size:
            row = int(bad[0])
            shown = f" (value {str(values.iloc[row])[:60]!r})" if values is not None else ""
            raise InvalidInputError(
                f"{where}: row {row} has {name} {float(array[row])!r}{shown}; expected a number in [-{limit:g}, {limit:g}]"
            )


def unit_sphere(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(n, 3) float64 unit vectors of degrees latitude/longitude (NaN rows stay NaN)."""
    phi, lam = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1)


@register
class GeoFeaturizer(Featurizer):
    """``<name>__x``, ``__y``, ``__z`` (unit sphere) and ``<name>__missing`` when the sample had gaps.

    Options: ``lat`` and ``lon`` — the two numeric columns of a pair (the featurizer's
    column is then the latitude column); without them the column holds WKT/GeoJSON points.
    """

    kind = "geo"
    balance = True

    @property
    def input_columns(self) -> list[str]:
        if "lat" in self.options:
            return [self.options["lat"], self.options["lon"]]
        return [self.column]

    def coordinates(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) in degrees with NaN for missing; invalid values raise InvalidInputError."""
        if "lat" in self.options:
            lat_name, lon_name = self.options["lat"], self.options["lon"]
            lat, lon = as_float(frame[lat_name], lat_name), as_float(frame[lon_name], lon_name)
            check_coordinates(lat, lon, f"columns ({lat_name!r}, {lon_name!r})")
            return lat, lon
        values = frame[self.column]
        lat = np.full(len(values), np.nan)
        lon = np.full(len(values), np.nan)
        for row, value in enumerate(values.tolist()):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            try:
                lat[row], lon[row] = parse_point(value)
            except (ValueError, TypeError) as exc:
                raise InvalidInputError(
                    f"column {self.column!r}: row {row} value {str(value)[:60]!r} is not a point "
                    f"(expected WKT 'POINT (lon lat)' or GeoJSON {{\"type\": \"Point\", \"coordinates\": [lon, lat]}}): {exc}"
                ) from None
        check_coordinates(lat, lon, f"column {self.column!r}", values)
        return lat, lon

    def fit(self, frame: pd.DataFrame) -> GeoFeaturizer:
        lat, lon = self.coordinates(frame)
        xyz = unit_sphere(lat, lon)
        present = xyz[~np.isnan(lat) & ~np.isnan(lon)]
        mean = present.mean(axis=0) if len(present) else np.array([1.0, 0.0, 0.0])
        norm = np.linalg.norm(mean)
        self.fill_ = mean / norm if norm > 1e-12 else np.array([1.0, 0.0, 0.0])
        self.indicator_ = bool(len(present) < len(xyz))
        self.feature_names_ = [f"{self.column}__{axis}" for axis in "xyz"] + (
            [f"{self.column}__missing"] if self.indicator_ else []
        )
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        lat, lon = self.coordinates(frame)
        missing = np.isnan(lat) | np.isnan(lon)
        xyz = unit_sphere(np.where(missing, 0.0, lat), np.where(missing, 0.0, lon))
        xyz[missing] = self.fill_
        if self.indicator_:
            xyz = np.hstack([xyz, missing[:, None].astype(np.float64)])
        return xyz.astype(np.float32)

    def fitted_state(self) -> dict:
        return {"fill": self.fill_, "indicator": self.indicator_}

    def load_fitted_state(self, state: dict) -> None:
        self.fill_ = np.asarray(state["fill"], np.float64)
        self.indicator_ = bool(state["indicator"])
