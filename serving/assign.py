"""Assigning records with a loaded model: column checks, JSON and Arrow answers (no Ray here).

The numbers come from :meth:`cluster_core.model.ClusteringModel.featurize` and the
estimator's ``assign``, the same calls ``clustra apply`` makes, so the API, the bulk
path and ``apply`` give identical cluster ids for the same rows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from cluster_core.errors import ClustraError, InvalidInputError
from cluster_core.model import ClusteringModel
from cluster_core.registry import ModelRef

from .errors import error_result
from .records import read_arrow, write_table

# JSON-level expectations for the kinds whose values are single scalars; kinds not listed
# here (text, image, geo, ...) are left to their featurizer to accept or refuse.
SCALAR_KINDS = {
    "numeric": "a number",
    "boolean": "true or false",
    "categorical": "a string or number",
    "datetime": "a date/time string",
}
_FEATURIZE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, OverflowError)


class ServedModel:
    """A published model version ready to answer requests.

    Parameters
    ----------
    model : ClusteringModel
    ref : ModelRef
        The registry name and version it was loaded from.
    """

    def __init__(self, model: ClusteringModel, ref: ModelRef) -> None:
        self.model = model
        self.ref = ref
        pipeline = model.pipeline
        self.required = list(dict.fromkeys(pipeline.input_columns))
        self._required_set = frozenset(self.required)
        self.known = frozenset(c.name for c in pipeline.schema.columns) | self._required_set
        kinds = {f.column: f.kind for f in pipeline.featurizers_}
        self._scalar_columns = [(c, SCALAR_KINDS[kinds[c]]) for c in self.required if kinds.get(c) in SCALAR_KINDS]
        names = model.cluster_names()
        self._names = [names.get(i) for i in range(model.n_clusters)]
        # what each assignment carries besides the cluster id (nothing for a model with neither)
        if model.has_distance:
            self.scalar, self.detail = "distance", "distances"
        elif model.has_probability:
            self.scalar, self.detail = "probability", "probabilities"
        else:
            self.scalar = self.detail = None

    # -- checks ---------------------------------------------------------------------------
    def check_records(self, records: list[Any]) -> None:
        """Raise InvalidInputError naming the record and column that is missing, unknown or mistyped."""
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidInputError(f"records[{index}] is not an object of column: value pairs")
            keys = record.keys()
            if keys != self._required_set:
                self._check_keys(index, keys)
            for column, expected in self._scalar_columns:
                if isinstance(record[column], (list, dict)):
                    kind = "an array" if isinstance(record[column], list) else "an object"
                    raise InvalidInputError(f"records[{index}]: column {column!r} is {kind}, expected {expected}")

    def _check_keys(self, index: int, keys: Any) -> None:
        missing = [c for c in self.required if c not in keys]
        if missing:
            raise InvalidInputError(f"records[{index}]: column {missing[0]!r} is missing (the model needs {self.required})")
        unknown = sorted(k for k in keys if k not in self.known)
        if unknown:
            raise InvalidInputError(
                f"records[{index}]: column {unknown[0]!r} is unknown to model {self.ref.name!r} (it knows {sorted(self.known)})"
            )

    def check_table(self, table: Any) -> None:
        """Column checks for an Arrow table: missing, unknown, or nested where a scalar is expected."""
        import pyarrow as pa

        names = set(table.column_names)
        missing = [c for c in self.required if c not in names]
        if missing:
            raise InvalidInputError(f"column {missing[0]!r} is missing (the model needs {self.required})")
        unknown = sorted(names - self.known)
        if unknown:
            raise InvalidInputError(f"column {unknown[0]!r} is unknown to model {self.ref.name!r} (it knows {sorted(self.known)})")
        for column, expected in self._scalar_columns:
            arrow_type = table.schema.field(column).type
            if pa.types.is_nested(arrow_type):
                raise InvalidInputError(f"column {column!r} has Arrow type {arrow_type}, expected {expected}")

    # -- inference ------------------------------------------------------------------------
    def records_frame(self, records: list[dict]) -> pd.DataFrame:
        """The model's input columns of ``records`` as a frame (checked records only)."""
        try:
            return pd.DataFrame({c: [r[c] for r in records] for c in self.required}, index=pd.RangeIndex(len(records)))
        except _FEATURIZE_ERRORS as exc:
            raise InvalidInputError(f"the records cannot form a table: {exc}") from None

    def featurize(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature matrix; a featurizer's failure becomes InvalidInputError naming its column."""
        try:
            return self.model.featurize(frame)
        except InvalidInputError:
            raise
        except _FEATURIZE_ERRORS as exc:
            raise InvalidInputError(f"column {self._failing_column(frame)!r}: {exc}") from None

    def _failing_column(self, frame: pd.DataFrame) -> str:
        for featurizer in self.model.pipeline.featurizers_:
            try:
                featurizer.transform(frame)
            except Exception:  # noqa: BLE001 - looking for the one that fails
                return featurizer.column
        return "?"

    def assignments(self, frame: pd.DataFrame) -> list[dict]:
        """One ``{"cluster_id", "cluster_name", "is_noise", distance|probability, distances|probabilities}`` per row
        (the last two only for models with distances or probabilities)."""
        if len(frame) == 0:
            return []
        features = self.featurize(frame)
        result = self.model.estimator.assign(features)
        labels = result.labels.tolist()
        names = self._names
        if self.scalar is None:
            return [{"cluster_id": label, "cluster_name": names[label] if label >= 0 else None, "is_noise": label < 0}
                    for label in labels]
        scalars = (result.distance if self.model.has_distance else result.probability).tolist()
        details = self._detail_matrix(features, result).tolist()
        return [
            {
                "cluster_id": label,
                "cluster_name": names[label] if label >= 0 else None,
                "is_noise": label < 0,
                self.scalar: scalar,
                self.detail: detail,
            }
            for label, scalar, detail in zip(labels, scalars, details)
        ]

    def _detail_matrix(self, features: np.ndarray, result: Any) -> np.ndarray:
        """Distances to every centroid (KMeans) or membership probabilities per cluster."""
        estimator = self.model.estimator
        if self.model.has_distance:
            return estimator.transform(features)
        if hasattr(estimator, "predict_proba"):
            return estimator.predict_proba(features)
        # HDBSCAN: approximate prediction gives one membership strength (0 for noise)
        matrix = np.zeros((len(result.labels), self.model.n_clusters))
        member = result.labels >= 0
        matrix[np.flatnonzero(member), result.labels[member]] = result.probability[member]
        return matrix

    def explain_records(self, records: list[Any]) -> bytes:
        """Checked records -> assignments with ``runner_up``, ``margin`` and ``explanation`` (docs/insights.md)."""
        from cluster_core.insights import explain_frame, explanation_records

        self.check_records(records)
        frame = self.records_frame(records)
        answers = self.assignments(frame)
        if answers:
            self.featurize(frame)  # a featurizer's failure names its column before explaining
            for answer, why in zip(answers, explanation_records(explain_frame(self.model, frame))):
                answer.update(why)
        return json.dumps(answers).encode()

    def assign_records(self, records: list[Any]) -> bytes:
        """Checked records -> the JSON array of assignments, as bytes."""
        self.check_records(records)
        return json.dumps(self.assignments(self.records_frame(records))).encode()

    def assign_batch(self, requests: list[list[Any]]) -> list[tuple[int, bytes, int]]:
        """Several requests' records assigned in one call; ``(status, body, n_records)`` per request.

        ``body`` is the JSON array of assignments, or the JSON error body of a failed request
        (:func:`serving.errors.error_result`), which the ingress sends as it is.

        A request with bad input fails alone: the batch is then redone request by
        request, so one bad record never fails its neighbours.
        """
        try:
            for records in requests:
                self.check_records(records)
            rows = self.assignments(self.records_frame([r for records in requests for r in records]))
        except ClustraError:
            return [self._assign_one(records) for records in requests]
        out, start = [], 0
        for records in requests:
            out.append((200, json.dumps(rows[start : start + len(records)]).encode(), len(records)))
            start += len(records)
        return out

    def _assign_one(self, records: list[Any]) -> tuple[int, bytes, int]:
        try:
            return 200, self.assign_records(records), len(records)
        except ClustraError as exc:
            return error_result(exc)

    def score_table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``cluster_id``, ``cluster_probability`` or ``distance``, ``cluster_name``: the columns ``clustra apply`` adds."""
        features = self.featurize(frame)
        result = self.model.estimator.assign(features)
        out = {"cluster_id": result.labels.astype(np.int64)}
        if self.model.has_probability:
            out["cluster_probability"] = np.asarray(result.probability, np.float64)
        if self.model.has_distance:
            out["distance"] = np.asarray(result.distance, np.float64)
        out["cluster_name"] = self.model.name_column(out["cluster_id"])
        return pd.DataFrame(out)

    def checked_table(self, body: bytes) -> Any:
        """Decode and check an Arrow IPC stream; the ``pyarrow.Table`` of the model's input columns."""
        table = read_arrow(body)
        self.check_table(table)
        return table.select(self.required)

    def score_arrow(self, table: Any) -> Any:
        """The apply columns of an Arrow table, as an Arrow table."""
        import pyarrow as pa

        try:
            frame = table.to_pandas(use_threads=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise InvalidInputError(f"the Arrow table cannot be converted: {exc}") from None
        return pa.Table.from_pandas(self.score_table(frame), preserve_index=False, nthreads=1)

    def assign_arrow(self, body: bytes) -> bytes:
        """An Arrow IPC stream of records -> an Arrow IPC stream of the apply columns, row for row."""
        return write_table(self.score_arrow(self.checked_table(body)))

    def assign_arrow_batch(self, bodies: list[bytes]) -> list[tuple[int, bytes, int]]:
        """Several Arrow requests; those with the same schema are scored in one call.

        Featurizing has a fixed cost per call, so eight 1,000-row tables scored together
        take a fraction of eight calls. ``(status, body, n_records)`` per request: an Arrow
        IPC stream, or the JSON error body of a failed request.
        """
        import pyarrow as pa

        out: list[tuple[int, bytes, int] | None] = [None] * len(bodies)
        groups: dict[Any, list[tuple[int, Any]]] = {}
        for index, body in enumerate(bodies):
            try:
                table = self.checked_table(body)
            except ClustraError as exc:
                out[index] = error_result(exc)
                continue
            groups.setdefault(table.schema, []).append((index, table))
        for members in groups.values():
            try:
                scored = self.score_arrow(pa.concat_tables([t for _, t in members])) if len(members) > 1 else None
            except ClustraError:
                scored = None
            start = 0
            for index, table in members:
                if scored is None:
                    out[index] = self._score_one(table)
                else:
                    out[index] = (200, write_table(scored.slice(start, table.num_rows)), table.num_rows)
                start += table.num_rows
        return out  # type: ignore[return-value]

    def _score_one(self, table: Any) -> tuple[int, bytes, int]:
        try:
            return 200, write_table(self.score_arrow(table)), table.num_rows
        except ClustraError as exc:
            return error_result(exc)
