"""Assigning records with a loaded model: column checks, JSON and Arrow answers (no Ray here).

The numbers come from :meth:`cluster_core.model.ClusteringModel.featurize` and the
estimator's ``assign``, the same calls ``clustra apply`` makes, so the API, the bulk
path and ``apply`` give identical cluster ids for the same rows.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from cluster_core.errors import ClustraError, InvalidInputError
from cluster_core.model import ClusteringModel
from cluster_core.registry import ModelRef

from .errors import error_result
from .memo import memoized
from .record_table import arrow_columns, records_table
from .records import read_arrow, write_table
from .row_encoder import RowEncoder

# JSON-level expectations for the kinds whose values are single scalars; kinds not listed
# here (text, image, geo, ...) are left to their featurizer to accept or refuse. ``null`` is
# always accepted (the model's imputation). Types are strict: "1.5" is not a number, true is
# not a number and 1 is not true or false.
SCALAR_KINDS = {
    "numeric": "a number",
    "boolean": "true or false",
    "categorical": "a string or number",
    "datetime": "a date/time string",
}
_MAX_SHOWN = 60


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    if not _is_number(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond float range
        return False


_ACCEPTS = {
    "numeric": _is_finite_number,
    "boolean": lambda value: isinstance(value, bool),
    "categorical": lambda value: isinstance(value, str) or _is_finite_number(value),
    "datetime": lambda value: isinstance(value, str),
}


def shown(value: Any) -> str:
    """``repr`` of a request value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN - 3]}..."


def value_problem(value: Any, kind: str) -> str | None:
    """Why ``value`` (from JSON) cannot be a value of a ``kind`` column, or None when it can."""
    if value is None or _ACCEPTS[kind](value):
        return None
    expected = SCALAR_KINDS[kind]
    if isinstance(value, (list, dict)):
        return f"value is {'an array' if isinstance(value, list) else 'an object'}, expected {expected}"
    if _is_number(value) and not _is_finite_number(value):
        return f"value {shown(value)} is not {expected} (not finite, or beyond the range of a 64-bit float)"
    return f"value {shown(value)} is not {expected}"


_FEATURIZE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, OverflowError)


def _arrow_numeric(arrow_type: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type) \
        or pa.types.is_null(arrow_type)


def _arrow_boolean(arrow_type: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_boolean(arrow_type) or pa.types.is_null(arrow_type)


_ARROW_ACCEPTS = {
    "numeric": _arrow_numeric,
    "boolean": _arrow_boolean,
    "categorical": lambda arrow_type: True,
    "datetime": lambda arrow_type: True,
}


def _fails(featurizer: Any, frame: pd.DataFrame) -> bool:
    try:
        featurizer.transform(frame)
    except Exception:  # noqa: BLE001 - looking for the rows that fail
        return True
    return False


def _first_failing_row(featurizer: Any, frame: pd.DataFrame) -> int | None:
    """The first row on which ``featurizer`` fails alone (bisection), or None when no single row does."""
    lo, hi = 0, len(frame)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fails(featurizer, frame.iloc[lo:mid]):
            hi = mid
        else:
            lo = mid
    return lo if hi - lo == 1 and _fails(featurizer, frame.iloc[lo:hi]) else None


def answer_batch(requests: list[list[Any]], assign_all: Callable[[list[list[Any]]], list[dict]],
                 assign_one: Callable[[list[Any]], tuple[int, bytes, int]]) -> list[tuple[int, bytes, int]]:
    """``(status, body, n_records)`` per request: every request's records assigned by one
    ``assign_all`` call and split back; when it raises a :class:`ClustraError` each request is
    redone alone by ``assign_one``, so one bad record never fails its neighbours."""
    try:
        rows = assign_all(requests)
    except ClustraError:
        return [assign_one(records) for records in requests]
    out, start = [], 0
    for records in requests:
        out.append((200, json.dumps(rows[start : start + len(records)]).encode(), len(records)))
        start += len(records)
    return out


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
        # small requests skip the featurizer call for categorical and boolean values seen before
        pipeline.featurizers_ = [memoized(f) for f in pipeline.featurizers_]
        self.required = list(dict.fromkeys(pipeline.input_columns))
        self._required_set = frozenset(self.required)
        self.known = frozenset(c.name for c in pipeline.schema.columns) | self._required_set
        kinds = {f.column: f.kind for f in pipeline.featurizers_}
        self._kinds = kinds
        self._scalar_columns = [(c, kinds[c]) for c in self.required if kinds.get(c) in SCALAR_KINDS]
        names = model.cluster_names()
        self._names = [names.get(i) for i in range(model.n_clusters)]
        # a model of series features (docs/series.md): one series per record, resampled and described here
        self.series = model.metadata.get("series")
        # records go to the pipeline as an Arrow table when every column's kind allows (serving.record_table)
        self._arrow_columns = arrow_columns(pipeline.featurizers_) if self.series is None else None
        # a few records of those kinds skip the table too: encoded value by value (serving.row_encoder)
        self._row_encoder = RowEncoder.for_pipeline(pipeline) if self._arrow_columns else None
        # a few records of scalar columns only take about a millisecond: cheap enough for the event loop
        # (serving.inprocess); text, image or series features may run a model and stay in a thread
        self.cheap_records = self._arrow_columns is not None
        # cluster names by label, the last entry for noise (-1): the apply column's values
        self._name_lookup = np.array(self._names + [None], dtype=object)
        # what each assignment carries besides the cluster id (nothing for a model with neither)
        if model.has_distance:
            self.scalar, self.detail = "distance", "distances"
        elif model.has_probability:
            self.scalar, self.detail = "probability", "probabilities"
        else:
            self.scalar = self.detail = None

    # -- checks ---------------------------------------------------------------------------
    def check_records(self, records: list[Any]) -> None:
        """Raise InvalidInputError naming the record and column that is missing, unknown or mistyped
        (for a series model: the record that is not a series it can take)."""
        if self.series is not None:
            self._series_frame(records)
            return
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidInputError(f"records[{index}] is not an object of column: value pairs")
            keys = record.keys()
            if keys != self._required_set:
                self._check_keys(index, keys)
            for column, kind in self._scalar_columns:
                problem = value_problem(record[column], kind)
                if problem:
                    raise InvalidInputError(f"records[{index}]: column {column!r}: {problem}")

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

        if self.series is not None:
            raise InvalidInputError(f"model {self.ref.name!r} clusters series: send JSON records, one series each "
                                    "({\"values\": [...]} or {\"points\": [{\"time\": ..., ...}]})")
        if table.num_rows == 0:
            raise InvalidInputError("the Arrow stream has no rows; send at least one record")
        duplicated = sorted({c for c in table.column_names if table.column_names.count(c) > 1})
        if duplicated:
            raise InvalidInputError(f"column {duplicated[0]!r} appears more than once in the Arrow stream; column names must be unique")
        names = set(table.column_names)
        missing = [c for c in self.required if c not in names]
        if missing:
            raise InvalidInputError(f"column {missing[0]!r} is missing (the model needs {self.required})")
        unknown = sorted(names - self.known)
        if unknown:
            raise InvalidInputError(f"column {unknown[0]!r} is unknown to model {self.ref.name!r} (it knows {sorted(self.known)})")
        for column, kind in self._scalar_columns:
            arrow_type = table.schema.field(column).type
            if pa.types.is_nested(arrow_type) or not _ARROW_ACCEPTS[kind](arrow_type):
                raise InvalidInputError(f"column {column!r} has Arrow type {arrow_type}, expected {SCALAR_KINDS[kind]}")

    # -- inference ------------------------------------------------------------------------
    def _series_frame(self, records: list[Any]) -> pd.DataFrame:
        from cluster_core.series.records import series_feature_frame
        from cluster_core.series.settings import SeriesSettings

        settings = SeriesSettings(**self.series["settings"])
        return series_feature_frame(records, settings, list(self.series["values"]), self.required)

    def records_frame(self, records: list[dict]) -> pd.DataFrame:
        """The model's input columns of ``records`` as a frame (checked records only; for a series
        model, each record's series features)."""
        if self.series is not None:
            return self._series_frame(records)
        try:
            return pd.DataFrame({c: [r[c] for r in records] for c in self.required}, index=pd.RangeIndex(len(records)))
        except _FEATURIZE_ERRORS as exc:
            raise InvalidInputError(f"the records cannot form a table: {exc}") from None

    def records_features(self, records: list[dict], rows: str = "row") -> np.ndarray:
        """The feature matrix of checked, non-empty ``records``: value by value for a few records whose
        values allow it (:class:`serving.row_encoder.RowEncoder`), else through an Arrow table when their
        values allow it (:func:`serving.record_table.records_table`: the same numbers without pandas objects),
        else -- or when that fails -- through :meth:`records_frame` and :meth:`featurize`, whose errors
        name the failing record (``rows="records"``)."""
        if self._row_encoder is not None:
            features = self._row_encoder.features(records)
            if features is not None:
                return features
        table = records_table(records, self._arrow_columns) if self._arrow_columns else None
        if table is not None:
            try:
                return self.model.featurize(table)
            except Exception:  # noqa: BLE001 - the frame path below decides, and names the error
                pass
        return self.featurize(self.records_frame(records), rows)

    def arrow_features(self, table: Any) -> np.ndarray:
        """The feature matrix of a checked Arrow table: the pipeline's Arrow path (no pandas frame), or,
        when that fails, the table converted to pandas and :meth:`featurize` (whose errors name the row)."""
        import pyarrow as pa

        try:
            return self.model.featurize(table)
        except Exception:  # noqa: BLE001 - the pandas path below decides, and names the error
            pass
        try:
            frame = table.to_pandas(use_threads=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise InvalidInputError(f"the Arrow table cannot be converted: {exc}") from None
        return self.featurize(frame)

    def featurize(self, frame: pd.DataFrame, rows: str = "row") -> np.ndarray:
        """The feature matrix; a featurizer's failure becomes InvalidInputError naming its column and
        the first failing row (``records[i]`` for JSON records, ``rows="records"``)."""
        try:
            return self.model.featurize(frame)
        except InvalidInputError as exc:  # the featurizer's own message: add the record's index
            featurizer = self._failing_featurizer(frame) if rows == "records" else None
            index = _first_failing_row(featurizer, frame) if featurizer is not None else None
            if index is None:
                raise
            raise InvalidInputError(f"records[{index}]: {exc.message}", field=exc.field) from None
        except _FEATURIZE_ERRORS as exc:
            raise self._featurize_error(frame, exc, rows) from None

    def _featurize_error(self, frame: pd.DataFrame, exc: Exception, rows: str) -> InvalidInputError:
        featurizer = self._failing_featurizer(frame)
        if featurizer is None:
            return InvalidInputError(f"the records cannot be featurized: {exc}")
        column = featurizer.column
        index = _first_failing_row(featurizer, frame)
        if index is None:
            return InvalidInputError(f"column {column!r}: {exc}")
        value = frame[column].iloc[index] if column in frame.columns else None
        expected = SCALAR_KINDS.get(self._kinds.get(column, ""), "a value the model can use")
        where = f"records[{index}]: column {column!r}" if rows == "records" else f"column {column!r} (row {index})"
        return InvalidInputError(f"{where}: value {shown(value)} is not {expected} ({exc})")

    def _failing_featurizer(self, frame: pd.DataFrame) -> Any:
        for featurizer in self.model.pipeline.featurizers_:
            if _fails(featurizer, frame):
                return featurizer
        return None

    def assignments(self, frame: pd.DataFrame, rows: str = "row") -> list[dict]:
        """One ``{"cluster_id", "cluster_name", "is_noise", distance|probability, distances|probabilities}`` per row
        (the last two only for models with distances or probabilities)."""
        if len(frame) == 0:
            return []
        return self.feature_assignments(self.featurize(frame, rows))

    def feature_assignments(self, features: np.ndarray) -> list[dict]:
        """:meth:`assignments` of rows already featurized."""
        estimator = self.model.estimator
        names = self._names
        if self.scalar is None:
            labels = estimator.assign(features).labels.tolist()
            return [{"cluster_id": label, "cluster_name": names[label] if label >= 0 else None, "is_noise": label < 0}
                    for label in labels]
        result, detail = self._assign_detail(features)
        labels = result.labels.tolist()
        scalars = (result.distance if self.model.has_distance else result.probability).tolist()
        details = detail.tolist()
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

    def _assign_detail(self, features: np.ndarray) -> tuple[Any, np.ndarray]:
        """The estimator's assignment and :meth:`_detail_matrix`, from one ``assign_detail`` call (one
        input check, one pass) where the estimator has one: KMeans (``transform``), GaussianMixture
        (``predict_proba``)."""
        estimator = self.model.estimator
        if hasattr(estimator, "assign_detail"):
            return estimator.assign_detail(features)
        result = estimator.assign(features)
        return result, self._detail_matrix(features, result)

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
        if not records or self.series is not None:
            return json.dumps(self.assignments(self.records_frame(records), rows="records")).encode()
        return json.dumps(self.feature_assignments(self.records_features(records, rows="records"))).encode()

    def assign_batch(self, requests: list[list[Any]]) -> list[tuple[int, bytes, int]]:
        """Several requests' records assigned in one call; ``(status, body, n_records)`` per request.

        ``body`` is the JSON array of assignments, or the JSON error body of a failed request
        (:func:`serving.errors.error_result`), which the ingress sends as it is.

        A request with bad input fails alone: the batch is then redone request by
        request, so one bad record never fails its neighbours.
        """
        def assign_all(requests: list[list[Any]]) -> list[dict]:
            for records in requests:
                self.check_records(records)
            merged = [r for records in requests for r in records]
            if not merged or self.series is not None:
                return self.assignments(self.records_frame(merged))
            return self.feature_assignments(self.records_features(merged))

        return answer_batch(requests, assign_all, self._assign_one)

    def _assign_one(self, records: list[Any]) -> tuple[int, bytes, int]:
        try:
            return 200, self.assign_records(records), len(records)
        except ClustraError as exc:
            return error_result(exc)

    def score_table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``cluster_id``, ``cluster_probability`` or ``distance``, ``cluster_name``: the columns ``clustra apply`` adds."""
        return self.feature_scores(self.featurize(frame))

    def feature_scores(self, features: np.ndarray) -> pd.DataFrame:
        """:meth:`score_table` of rows already featurized."""
        result = self.model.estimator.assign(features)
        out = {"cluster_id": result.labels.astype(np.int64)}
        if self.model.has_probability:
            out["cluster_probability"] = np.asarray(result.probability, np.float64)
        if self.model.has_distance:
            out["distance"] = np.asarray(result.distance, np.float64)
        # ClusteringModel.name_column's values, looked up per label rather than per row in Python
        out["cluster_name"] = pd.array(self._name_lookup[np.where(out["cluster_id"] >= 0, out["cluster_id"], -1)], dtype="string")
        return pd.DataFrame(out)

    def checked_table(self, body: bytes) -> Any:
        """Decode and check an Arrow IPC stream; the ``pyarrow.Table`` of the model's input columns."""
        table = read_arrow(body)
        self.check_table(table)
        return table.select(self.required)

    def score_arrow(self, table: Any) -> Any:
        """The apply columns of an Arrow table, as an Arrow table."""
        import pyarrow as pa

        return pa.Table.from_pandas(self.feature_scores(self.arrow_features(table)), preserve_index=False, nthreads=1)

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
