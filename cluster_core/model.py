"""A clustering model: fitted feature pipeline + fitted estimator + what we know about it.

On disk a model is a directory of JSON and ``.npz`` files (never pickle)::

    model.json        format, id, algorithm, metrics, clusters, input schema, training facts
    pipeline.json/npz the fitted featurizers
    estimator.json/npz the fitted algorithm state
    drift.json/npz    the training sample's cluster shares and feature histograms
                      (cluster_core.drift; absent in models trained before it was kept)

Saving writes a temporary sibling directory and renames it into place, so a reader
never sees a half-written model.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import drift
from ._state import read_state, staged_directory, write_json, write_state
from .algorithms import Assignment, ClusterEstimator, estimator_from_state, get_algorithm
from .errors import ArtifactError, InvalidInputError
from .features import FeaturePipeline
from .features._arrow import is_arrow_table

FORMAT = "clustra-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
# model.json's ``model_type`` of a shape-method series model (cluster_core.series.published):
# the same format and directory layout, centers instead of a pipeline and an estimator
SERIES_SHAPE = "series-shape"


class ClusteringModel:
    """Everything needed to assign a record to a cluster.

    Parameters
    ----------
    pipeline : FeaturePipeline
    estimator : ClusterEstimator
    model_id : str
    metrics : dict, optional
    clusters : list of dict, optional
        Profiles from :func:`cluster_core.insights.profile_clusters`.
    metadata : dict, optional
        Training facts (data path, rows, seed, timings).
    drift_reference : dict, optional
        From :func:`cluster_core.drift.build_reference`: what ``clustra drift`` compares with.
    """

    def __init__(
        self,
        pipeline: FeaturePipeline,
        estimator: ClusterEstimator,
        model_id: str,
        *,
        metrics: dict | None = None,
        clusters: list[dict] | None = None,
        metadata: dict | None = None,
        drift_reference: dict | None = None,
    ):
        self.pipeline = pipeline
        self.estimator = estimator
        self.model_id = model_id
        self.metrics = dict(metrics or {})
        self.clusters = list(clusters or [])
        self.metadata = dict(metadata or {})
        self.drift_reference = drift_reference

    @property
    def algorithm(self) -> str:
        """Algorithm name with variant (``kmeans``, ``gmm``, ``gmm-diag``, ``hdbscan``)."""
        return self.metadata.get("algorithm", self.estimator.algorithm)

    @property
    def n_clusters(self) -> int:
        """Clusters the model can assign (noise not counted)."""
        return self.estimator.n_clusters_found

    @property
    def has_probability(self) -> bool:
        """True when the algorithm reports membership probabilities (``probabilities`` in its registry entry)."""
        return get_algorithm(self.algorithm).probabilities

    @property
    def has_distance(self) -> bool:
        """True when the algorithm reports centroid distances (``distances`` in its registry entry)."""
        return get_algorithm(self.algorithm).distances

    @property
    def input_schema(self) -> list[dict]:
        """Columns a record must provide: name, kind and training dtype."""
        return [{"name": c.name, "kind": c.kind, "dtype": c.dtype} for c in self.pipeline.schema.used]

    def cluster_names(self) -> dict[int, str | None]:
        """Cluster id -> generated (or user-given) name."""
        return {int(c["cluster_id"]): c.get("name") for c in self.clusters}

    # -- inference ------------------------------------------------------------------------
    def featurize(self, frame: Any) -> np.ndarray:
        """The float32 feature matrix of ``frame`` (a pandas DataFrame or pyarrow Table / RecordBatch)."""
        return self.pipeline.transform(frame)

    def assign(self, frame: Any) -> Assignment:
        """Cluster ids (-1 = noise) with probabilities or distances for every row of ``frame`` (no rows:
        empty arrays, as an empty Parquet file or partition gives)."""
        features = self.featurize(frame)
        if len(features) == 0:
            empty = np.zeros(0, np.float64)
            return Assignment(np.zeros(0, np.int64), empty if self.has_probability else None,
                              empty if self.has_distance else None)
        return self.estimator.assign(features)

    def output_columns(self, explain: bool = False) -> dict[str, str]:
        """Columns :meth:`score_frame` adds, with their dtypes (``explain``: also ``runner_up``,
        ``margin`` and ``explanation``, see docs/insights.md)."""
        columns = {"cluster_id": "int64"}
        if self.has_probability:
            columns["cluster_probability"] = "float64"
        if self.has_distance:
            columns["distance"] = "float64"
        columns["cluster_name"] = "string"
        if explain:
            columns.update({"runner_up": "Int64", "margin": "float64", "explanation": "string"})
        return columns

    def name_column(self, labels: np.ndarray) -> pd.api.extensions.ExtensionArray:
        """The ``cluster_name`` column of cluster ids ``labels`` (missing for noise)."""
        names = self.cluster_names()
        return pd.array([names.get(int(c)) if c >= 0 else None for c in labels], dtype="string")

    def predict(self, frame: Any) -> np.ndarray:
        """Cluster id (-1 = noise) of every row of ``frame`` (a pandas DataFrame or pyarrow Table / RecordBatch,
        featurized through Arrow without pandas)."""
        return self.assign(_as_table(frame)).labels.astype(np.int64)

    def transform(self, frame: Any, explain: bool = False) -> pd.DataFrame:
        """The columns ``clustra apply`` adds (:meth:`output_columns`), one row per row of ``frame``
        (a pyarrow Table keeps its columns in Arrow, except for ``explain``)."""
        frame = _as_pandas(frame) if explain else _as_table(frame)
        result = self.assign(frame)
        labels = result.labels.astype(np.int64)
        columns = {"cluster_id": labels}
        if self.has_probability:
            columns["cluster_probability"] = np.asarray(result.probability, np.float64)
        if self.has_distance:
            columns["distance"] = np.asarray(result.distance, np.float64)
        columns["cluster_name"] = self.name_column(labels)
        if explain:
            import json

            from .insights import explain_frame, explanation_records

            records = explanation_records(explain_frame(self, frame)) if len(frame) else []
            columns["runner_up"] = pd.array([r["runner_up"] for r in records], dtype="Int64")
            columns["margin"] = np.array([r["margin"] for r in records], np.float64)
            columns["explanation"] = pd.array([json.dumps(r["explanation"]) for r in records], dtype="string")
        index = frame.index if isinstance(frame, pd.DataFrame) else pd.RangeIndex(frame.num_rows)
        return pd.DataFrame(columns, index=index)

    def score_frame(self, frame: pd.DataFrame, explain: bool = False) -> pd.DataFrame:
        """``frame`` with the columns of :meth:`output_columns` appended (row order kept)."""
        out = frame.copy()
        for name, values in self.transform(frame, explain).items():
            out[name] = values
        return out

    # -- persistence ----------------------------------------------------------------------
    def describe(self) -> dict:
        """The content of ``model.json``."""
        return {
            **model_header(self),
            "input_schema": self.input_schema,
            "feature_names": list(self.pipeline.feature_names_),
            "output_columns": self.output_columns(),
            "metadata": self.metadata,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model directory at ``path`` atomically (replacing nothing that exists).

        Raises
        ------
        InvalidInputError
            ``path`` exists already (field ``output``).
        """
        path = Path(path)
        if path.exists():
            raise InvalidInputError(f"model directory {str(path)!r} already exists", field="output")
        with staged_directory(path) as staging:
            write_state(staging, "pipeline", self.pipeline.get_state())
            write_state(staging, "estimator", self.estimator.get_state())
            if self.drift_reference is not None:
                drift.write_reference(staging, self.drift_reference)
            write_json(staging / MODEL_FILE, self.describe())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClusteringModel:
        """Load a model directory written by :meth:`save` (no pickle involved)."""
        path = Path(path)
        info = read_model_info(path)
        if info.get("model_type") == SERIES_SHAPE:
            raise ArtifactError(f"{str(path)!r} is a series shape model ({info.get('algorithm')}): it takes one series per "
                                "record; load it with cluster_core.registry.load_model_dir (docs/series.md)")
        try:
            pipeline = FeaturePipeline.from_state(read_state(path, "pipeline"))
            estimator = estimator_from_state(read_state(path, "estimator"))
            reference = drift.read_reference(path) if drift.has_reference(path) else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"model {str(path)!r} is corrupt: {exc}") from exc
        metadata = dict(info.get("metadata", {}))
        metadata.setdefault("algorithm", info.get("algorithm"))
        metadata["created_at"] = info.get("created_at")
        return cls(
            pipeline,
            estimator,
            info["model_id"],
            metrics=info.get("metrics"),
            clusters=info.get("clusters"),
            metadata=metadata,
            drift_reference=reference,
        )


def model_header(model: Any, **extra: Any) -> dict[str, Any]:
    """The fields every ``model.json`` starts with (table and series-shape models alike): format,
    versions, id, algorithm, cluster count, creation time, metrics and clusters; ``extra`` (e.g.
    ``model_type``) goes after the versions."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **extra,
        "clustra_version": __version__,
        "model_id": model.model_id,
        "algorithm": model.algorithm,
        "n_clusters": model.n_clusters,
        "created_at": model.metadata.get("created_at") or _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "metrics": model.metrics,
        "clusters": model.clusters,
    }


def _as_table(frame: Any) -> Any:
    """A pandas DataFrame or pyarrow Table / RecordBatch as it is; other tables (cuDF) as pandas."""
    if isinstance(frame, pd.DataFrame) or is_arrow_table(frame):
        return frame
    return _as_pandas(frame)


def _as_pandas(frame: Any) -> pd.DataFrame:
    """A pandas DataFrame from a DataFrame or a pyarrow Table / RecordBatch."""
    if isinstance(frame, pd.DataFrame):
        return frame
    if hasattr(frame, "to_pandas"):
        return frame.to_pandas()
    raise TypeError(f"expected a pandas DataFrame or a pyarrow Table, got {type(frame).__name__}")


def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """``model.json`` of a model directory, with its format checked."""
    import json

    file = Path(path) / MODEL_FILE
    if not file.is_file():
        raise ArtifactError(f"{str(path)!r} is not a Clustra model directory (no {MODEL_FILE})")
    try:
        info = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{str(file)!r} is not valid JSON: {exc}") from exc
    if info.get("format") != FORMAT:
        raise ArtifactError(f"{str(file)!r} is not a Clustra model (format={info.get('format')!r})")
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(
            f"{str(file)!r} has format_version={info.get('format_version')}, newer than this Clustra reads ({FORMAT_VERSION})"
        )
    return info
