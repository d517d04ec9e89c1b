"""The publishable model of a shape-method series run (``shape``: DTW k-means, ``kshape``: k-Shape).

A features run's models are regular :class:`~cluster_core.model.ClusteringModel` directories;
a shape run's answer is a set of centers, so it gets a model directory of its own kind,
written by :func:`~cluster_core.series.train_series_run` at ``RUN/models/MODEL_ID/``
(JSON + ``.npz``, never pickle)::

    model.json         format "clustra-model", model_type "series-shape", id, algorithm,
                       clusters (id, name, size, share), metrics, input schema (the value
                       columns, kind "series"), output columns, metadata.series (the
                       settings: shape length, DTW window, resampling limits; the value columns)
    shape_model.json/npz the centers (k, length, n_values), the algorithm, the DTW radius

:meth:`SeriesShapeModel.assign_records` takes one series per record (the forms of
:mod:`cluster_core.series.records`), resamples and z-normalizes it exactly as a series of a
long table (:func:`~cluster_core.series.table.summarize_partition`) and assigns it with
:meth:`ShapeModel.assign <cluster_core.series.shape.ShapeModel.assign>` -- the calls
``clustra apply`` makes on a run -- so served and applied answers agree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._state import read_state, staged_directory, write_json, write_state
from ..errors import ArtifactError, InvalidInputError
from ..model import MODEL_FILE, SERIES_SHAPE, model_header, read_model_info
from .records import series_feature_frame
from .settings import SeriesSettings
from .shape import ShapeModel
from .table import shape_array, shape_names

MODEL_TYPE = SERIES_SHAPE
STATE_NAME = "shape_model"
SERIES_FILE = "series.json"
DISTANCES = {"dtw-kmeans": "DTW distance (Sakoe-Chiba band) to the nearest center",
             "kshape": "k-Shape's shape-based distance 1 - max NCC to the nearest center"}


def segment_name(cluster_id: int) -> str:
    """The name a shape run gives cluster ``cluster_id`` (``segment 0``, ...)."""
    return f"segment {int(cluster_id)}"


@dataclass
class SeriesShapeModel:
    """Fitted shape centers with the series settings they need to take one series per record.

    Parameters
    ----------
    shape : ShapeModel
        The centers, algorithm (``dtw-kmeans`` or ``kshape``) and DTW radius.
    settings : SeriesSettings
        How a series is resampled (``shape_length``, ``min_points``, ``max_length``, ``dtw_window``).
    values : list of str
        The value columns, in the order of the centers' last axis.
    model_id : str
    clusters : list of dict, optional
        ``{"cluster_id", "name", "size", "share"}`` per cluster.
    metrics : dict, optional
    metadata : dict, optional
    """

    shape: ShapeModel
    settings: SeriesSettings
    values: list[str]
    model_id: str
    clusters: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        """``dtw-kmeans`` or ``kshape``."""
        return self.shape.algorithm

    @property
    def n_clusters(self) -> int:
        """Number of centers."""
        return self.shape.n_clusters

    @property
    def series(self) -> dict[str, Any]:
        """``{"settings", "values"}``: what a record must be (as ``metadata.series`` of a features model)."""
        return {"settings": self.settings.model_dump(), "values": list(self.values)}

    def cluster_names(self) -> dict[int, str | None]:
        """Cluster id -> name."""
        names = {int(c["cluster_id"]): c.get("name") for c in self.clusters}
        return {c: names.get(c, segment_name(c)) for c in range(self.n_clusters)}

    # -- inference ------------------------------------------------------------------------
    def record_shapes(self, records: list[Any]) -> np.ndarray:
        """(n_records, shape_length, n_values) z-normalized shapes of ``records``, one series each.

        Raises
        ------
        InvalidInputError
            Naming ``records[i]``: not an object of ``values`` or ``points``, a value that is
            not a finite number, fewer than ``min_points`` observations, longer than ``max_length``.
        """
        length = self.settings.shape_length
        table = series_feature_frame(records, self.settings, self.values, shape_names(self.values, length))
        return shape_array(table, self.values, length)

    def distances(self, shapes: np.ndarray) -> np.ndarray:
        """(n, k) distances of ``shapes`` to every center (DTW or k-Shape's)."""
        return self.shape.distances(shapes)

    def assign_records(self, records: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(labels, distance to the assigned center, distances to every center)`` of ``records``."""
        if not isinstance(records, list) or not records:
            raise InvalidInputError("expected a non-empty list of records, one series each")
        distances = self.distances(self.record_shapes(records))
        labels = distances.argmin(axis=1).astype(np.int64)
        return labels, distances[np.arange(len(labels)), labels], distances

    # -- persistence ----------------------------------------------------------------------
    def output_columns(self) -> dict[str, str]:
        """What an assignment carries (as ``clustra apply`` writes it for a shape run)."""
        return {"cluster_id": "int64", "distance": "float64", "cluster_name": "string"}

    def describe(self) -> dict[str, Any]:
        """The content of ``model.json``."""
        return {
            **model_header(self, model_type=MODEL_TYPE),
            "input_schema": [{"name": v, "kind": "series", "dtype": "float64"} for v in self.values],
            "feature_names": [],
            "output_columns": self.output_columns(),
            "metadata": {**self.metadata, "series": self.series, "algorithm": self.algorithm,
                         "dtw_radius": self.shape.radius if self.algorithm == "dtw-kmeans" else None,
                         "distance": DISTANCES.get(self.algorithm)},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model directory at ``path`` atomically (InvalidInputError when it exists)."""
        path = Path(path)
        if path.exists():
            raise InvalidInputError(f"model directory {str(path)!r} already exists", field="output")
        with staged_directory(path) as staging:
            write_state(staging, STATE_NAME, self.shape.get_state())
            write_json(staging / MODEL_FILE, self.describe())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SeriesShapeModel:
        """Load a directory written by :meth:`save` (no pickle involved).

        Raises
        ------
        ArtifactError
            Not a series shape model, or a part is missing or corrupt.
        """
        path = Path(path)
        info = read_model_info(path)
        if info.get("model_type") != MODEL_TYPE:
            raise ArtifactError(f"{str(path)!r} is not a series shape model (model_type={info.get('model_type')!r})")
        try:
            shape = ShapeModel.from_state(read_state(path, STATE_NAME))
            series = info["metadata"]["series"]
            settings = SeriesSettings(**series["settings"])
            values = [str(v) for v in series["values"]]
            if shape.centers.ndim != 3 or shape.centers.shape[1:] != (settings.shape_length, len(values)):
                raise ValueError(f"centers of shape {shape.centers.shape}, expected (k, {settings.shape_length}, {len(values)})")
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"series shape model {str(path)!r} is corrupt: {exc}") from None
        metadata = {k: v for k, v in info.get("metadata", {}).items() if k not in ("series", "algorithm")}
        metadata["created_at"] = info.get("created_at")
        return cls(shape, settings, values, str(info["model_id"]), clusters=list(info.get("clusters") or []),
                   metrics=dict(info.get("metrics") or {}), metadata=metadata)


def is_shape_model_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a series shape model (``model.json`` with ``model_type`` ``series-shape``)."""
    try:
        return read_model_info(path).get("model_type") == MODEL_TYPE
    except ArtifactError:
        return False


def shape_run_model_dir(run: str | os.PathLike) -> Path | None:
    """The publishable model directory of a shape-method series run (``RUN/models/MODEL_ID``), None for
    any other directory.

    Raises
    ------
    ArtifactError
        A shape run written before shape runs kept a model directory.
    """
    run = Path(run)
    try:
        summary = json.loads((run / SERIES_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("method") not in ("shape", "kshape"):
        return None
    model_dir = run / "models" / str(summary.get("model_id"))
    if not (model_dir / MODEL_FILE).is_file():
        raise ArtifactError(f"series run {str(run)!r} has no model directory {str(model_dir)!r} (written before shape "
                            "runs kept one); train it again to publish it")
    return model_dir


def shape_model_from_run(shape: ShapeModel, settings: SeriesSettings, values: list[str], model_id: str,
                         labels: np.ndarray, metrics: dict) -> SeriesShapeModel:
    """The publishable model of a shape run: its chosen centers and the sizes of its clusters."""
    sizes = np.bincount(np.asarray(labels, np.int64), minlength=shape.n_clusters)
    total = max(int(sizes.sum()), 1)
    clusters = [{"cluster_id": c, "name": segment_name(c), "size": int(sizes[c]), "size_basis": "series",
                 "share": round(float(sizes[c]) / total, 6)} for c in range(shape.n_clusters)]
    return SeriesShapeModel(shape, settings.model_copy(update={"values": list(values)}), list(values), model_id,
                            clusters=clusters, metrics=metrics)


__all__ = ["MODEL_TYPE", "SeriesShapeModel", "is_shape_model_dir", "segment_name", "shape_model_from_run",
           "shape_run_model_dir"]
