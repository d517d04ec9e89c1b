"""Settings of series mode (defaults documented once, here; docs/series.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..config import ColumnName

METHODS = ("features", "shape", "kshape")
MAX_POINTS = 10_000_000


class SeriesSettings(BaseModel):
    """How a long table (one row per observation) becomes one row per series.

    ``series_id``: the column naming the series; ``time``: its timestamps (datetime or
    numeric); ``values``: the numeric columns observed (default: every numeric column but
    the two). ``method``: ``features`` (series features fed to the algorithms and the
    sweep of :class:`~cluster_core.config.TrainConfig`), ``shape`` (DTW k-means on
    z-normalized series) or ``kshape`` (k-Shape, cross-correlation distance).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    series_id: ColumnName
    time: ColumnName
    values: list[ColumnName] | None = Field(None, min_length=1, max_length=100)
    method: Annotated[str, StringConstraints(pattern="^(features|shape|kshape)$")] = Field(
        "features", description="features, shape (DTW k-means) or kshape")
    profile_points: int = Field(16, ge=2, le=1024, description="points of the z-normalized shape profile among the features")
    shape_length: int = Field(64, ge=4, le=4096, description="common length the series are resampled to for shapes and profiles")
    max_length: int = Field(10_000, ge=2, le=MAX_POINTS,
                            description="longest series allowed, in points of its regular grid (longer: an error)")
    min_points: int = Field(3, ge=2, le=MAX_POINTS, description="series with fewer observations are dropped and reported")
    dtw_window: float = Field(0.1, ge=0.0, le=1.0,
                              description="Sakoe-Chiba band of DTW as a fraction of shape_length (0: Euclidean)")
    max_period: int = Field(400, ge=2, le=MAX_POINTS, description="longest seasonal period searched, in grid steps")

    def dtw_radius(self) -> int:
        """The Sakoe-Chiba radius in points of ``shape_length``."""
        return int(round(self.dtw_window * self.shape_length))


__all__ = ["METHODS", "SeriesSettings"]
