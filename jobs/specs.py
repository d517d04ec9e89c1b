"""Job specs: what a client asks the jobs service to do (pydantic, versioned, JSON or YAML).

Three kinds, told apart by ``kind``::

    {"kind": "train", "data": "customers/", "algorithms": ["kmeans"], "k": [3, 5],
     "publish": {"name": "customers", "alias": "production"}}
    {"kind": "apply", "job": "3f2a9c0d1b2e", "data": "customers/", "output": "scored/customers"}
    {"kind": "drift", "job": "3f2a9c0d1b2e", "data": "customers-2026-06/"}
    {"kind": "train", "data": "sales/", "series": {"series_id": "store", "time": "date", "values": ["sales"]}, "k": [3]}

A train spec *is* a :class:`cluster_core.config.TrainConfig` (every field, default and check
of ``clustra train``) plus the job fields (``data``, ``output``, ``name``, ``timeout_s``,
``version``); ``columns`` is accepted as another name for ``include``. With ``series`` (the
fields of :class:`cluster_core.series.SeriesSettings`, as ``clustra train --series-id``), the
data is a long table and one row per series is clustered (docs/series.md). An apply spec names a
model (a model or run directory, or a train job of this service and optionally one of its
models), the data to score and where to write it; a drift spec names a model the same way and
the batch to compare with its training sample. Paths are checked against the service's roots
by :mod:`jobs.paths`, not here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cluster_core.config import MAX_NAMES, ColumnName, PathRole, PathText, TrainConfig, path_fields
from cluster_core.drift import DEFAULT_BATCH_ROWS, DEFAULT_PSI_THRESHOLD, DEFAULT_SHARE_THRESHOLD
from cluster_core.errors import InvalidInputError
from cluster_core.series.settings import SeriesSettings
from cluster_core.validation import error_message

SPEC_VERSION = 1
JOB_KINDS = ("train", "apply", "drift")
MAX_NAME_LENGTH = 200
MAX_TIMEOUT_S = 30 * 24 * 3600.0
MAX_ID_LENGTH = 64

DataPath = Annotated[PathText, PathRole("data")]
# series methods a train job publishes (the features method's chosen model is a regular model of its
# leaderboard; a shape run's model directory is published with `clustra publish RUN_DIR`, not by a job yet)
PUBLISHABLE_SERIES_METHODS = ("features",)


class _JobFields(BaseModel):
    """Fields every spec has."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=(), allow_inf_nan=False)

    version: int = Field(SPEC_VERSION, description="spec format version (this server reads version 1)")
    name: str | None = Field(None, max_length=MAX_NAME_LENGTH, description="a label shown in job lists")
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S,
                                    description="fail the job when it runs longer than this (at most 30 days)")

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: int) -> int:
        if value != SPEC_VERSION:
            raise ValueError(f"unsupported spec version {value}; this server reads version {SPEC_VERSION}")
        return value


def _non_blank(value: str | None, what: str) -> str | None:
    if value is not None and not value.strip():
        raise ValueError(f"{what} must be a non-empty path")
    return value


def _registry_name(value: str | None, check: Any) -> str | None:
    """``value`` checked by a registry rule (:func:`cluster_core.registry.check_name` / ``check_alias``)
    as a pydantic ``ValueError`` (the field is then named in the 422)."""
    if value is None:
        return None
    try:
        return check(value)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None


class PublishSpec(BaseModel):
    """Publish a model of the sweep to the model registry once it has trained (``publish:`` of a train spec).

    ``model_id`` names a model of the sweep's leaderboard; without it the run's recommended
    model is published (the model ``clustra apply RUN_DIR`` uses). With ``alias``, the alias
    is moved to the new version once it is complete.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(min_length=1, max_length=128, description="registry model name (letters, digits, '.', '_', '-')")
    alias: str | None = Field(None, min_length=1, max_length=128,
                              description="alias to point at the new version (e.g. production); none: no alias moves")
    model_id: str | None = Field(None, min_length=1, max_length=MAX_NAME_LENGTH,
                                 description="a model of this sweep's leaderboard (default: the recommended model)")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        from cluster_core.registry import check_name

        return _registry_name(value, check_name)  # type: ignore[return-value]

    @field_validator("alias")
    @classmethod
    def _valid_alias(cls, value: str | None) -> str | None:
        from cluster_core.registry import check_alias

        return _registry_name(value, check_alias)


class TrainSpec(_JobFields, TrainConfig):
    """Train a sweep: a :class:`~cluster_core.config.TrainConfig` plus the data and job fields.

    ``data`` is a Parquet file, directory or glob under a data root; the run directory is
    written to ``output`` (default: ``OUTPUT_ROOT/JOB_ID``). With ``publish``, the
    recommended (or named) model goes to the model registry once the sweep has trained.
    With ``series``, ``data`` is a long table (one row per observation) and the job
    segments its series as ``clustra train --series-id`` does; the sweep fields then apply
    to the per-series table (method ``features``) or give ``k``, ``seed``, ``kmeans_n_init``
    and ``max_iter`` to the shape methods.
    """

    kind: Literal["train"] = Field(description="train: a sweep of models, ranked on a leaderboard")
    data: DataPath = Field(description="Parquet file, directory (hive partitions ok) or glob under a data root")
    output: Annotated[PathText | None, PathRole("output")] = Field(None, description="run directory to create (default: OUTPUT_ROOT/JOB_ID)")
    include: list[ColumnName] | None = Field(
        None, max_length=MAX_NAMES, validation_alias=AliasChoices("include", "columns"),
        description="use only these columns (alias: columns)"
    )
    publish: PublishSpec | None = Field(
        None, description="after training, publish the recommended model (or model_id) as registry model "
                          "NAME, moving ALIAS to it: {name, alias, model_id}"
    )
    series: SeriesSettings | None = Field(
        None, description="series mode (docs/series.md): data is a long table, one row per observation, and one row "
                          "per series is clustered: {series_id, time, values, method, profile_points, shape_length, "
                          "max_length, min_points, dtw_window, max_period} (the fields of clustra train --series-id ...)"
    )

    @field_validator("data", "output")
    @classmethod
    def _paths_not_blank(cls, value: str | None) -> str | None:
        return _non_blank(value, "the path")

    @model_validator(mode="after")
    def _series_method_fits(self) -> TrainSpec:
        if self.series is None or self.series.method == "features":
            return self
        method = self.series.method
        if self.metric != "euclidean":
            raise ValueError(f"metric={self.metric!r} applies to the features method; series.method={method!r} "
                             "uses its own distance (DTW or k-Shape's): drop metric or use series.method 'features'")
        if self.publish is not None and method not in PUBLISHABLE_SERIES_METHODS:
            raise ValueError(f"publish is not possible with series.method={method!r} in a job spec: a job publishes "
                             f"series.method one of {list(PUBLISHABLE_SERIES_METHODS)}; drop publish and publish the "
                             "run's model directory with `clustra publish RUN_DIR --name NAME`")
        return self

    def train_config(self) -> TrainConfig:
        """The library's settings for this spec (the job fields left out)."""
        return TrainConfig(**self.model_dump(include=set(TrainConfig.model_fields)))


class _ModelSourceSpec(_JobFields):
    """The model an apply or drift spec reads: ``model`` (a model directory, or a run directory
    for its recommended model) or ``job`` (a train job of this service) with an optional
    ``model_id`` (default: the recommended model)."""

    model: Annotated[PathText | None, PathRole("data")] = Field(
        None, description="model directory, or run directory (its recommended model)")
    job: str | None = Field(
        None, min_length=1, max_length=MAX_ID_LENGTH, validate_default=True,
        description="id of a succeeded train job (its run directory)"
    )
    model_id: str | None = Field(
        None, min_length=1, max_length=200, validate_default=True,
        description="a model of that job's leaderboard (default: the recommended model)"
    )

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str | None) -> str | None:
        return _non_blank(value, "the path")

    @field_validator("job")
    @classmethod
    def _one_model_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (info.data.get("model") is None) == (value is None) and "model" in info.data:
            raise ValueError("give exactly one of 'model' (a model or run directory) or 'job' (a train job id)")
        return value

    @field_validator("model_id")
    @classmethod
    def _model_id_needs_job(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("job") is None and "job" in info.data:
            raise ValueError("model_id selects a model of 'job'; with 'model', name the model directory itself")
        return value


class ApplySpec(_ModelSourceSpec):
    """Score a dataset with a model: adds ``cluster_id`` (and probability / distance) columns.

    The model is either ``model`` (a model directory, or a run directory for its recommended
    model) or ``job`` (a train job of this service) with an optional ``model_id`` (default:
    the recommended model). On a series run (docs/series.md) the new series of a long table
    are assigned instead.
    """

    kind: Literal["apply"] = Field(description="apply: add cluster columns to a dataset")
    data: DataPath = Field(description="Parquet file, directory or glob under a data root")
    output: Annotated[PathText | None, PathRole("output")] = Field(None, description="directory to create (default: OUTPUT_ROOT/JOB_ID)")
    overwrite: bool = Field(False, description="replace an existing output directory")
    explain: bool = Field(False, description="also write runner_up, margin and explanation (the columns that decided "
                                             "each row's cluster), as clustra apply --explain")
    columns: list[Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        None, max_length=10_000,
        description="input columns to write before the cluster columns, as clustra apply --columns (default: all)")

    @field_validator("data", "output")
    @classmethod
    def _paths_not_blank(cls, value: str | None) -> str | None:
        return _non_blank(value, "the path")


MAX_DRIFT_ROWS = 10_000_000
MAX_PSI_THRESHOLD = 10.0


class DriftSpec(_ModelSourceSpec):
    """Compare a batch with a model's training sample (``clustra drift`` as a job): cluster shares and per-feature PSI.

    The model is named as in an apply spec: ``model`` (a model directory, or a run directory
    for its recommended model) or ``job`` (a train job of this service) with an optional
    ``model_id``. The report is the job's result (``verdict``: ``drift`` or ``pass``) and
    ``OUTPUT/drift.json``.
    """

    kind: Literal["drift"] = Field(description="drift: has a batch drifted from the model's training sample?")
    data: DataPath = Field(description="the batch: Parquet file, directory or glob under a data root")
    output: Annotated[PathText | None, PathRole("output")] = Field(
        None, description="directory to create for drift.json (default: OUTPUT_ROOT/JOB_ID)")
    overwrite: bool = Field(False, description="replace an existing output directory")
    sample_rows: int = Field(DEFAULT_BATCH_ROWS, ge=1, le=MAX_DRIFT_ROWS,
                             description="compare about this many rows drawn uniformly from data")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the row sample")
    threshold: float = Field(DEFAULT_PSI_THRESHOLD, gt=0, le=MAX_PSI_THRESHOLD,
                             description="PSI at which a feature or the cluster shares count as drifted")
    share_threshold: float = Field(DEFAULT_SHARE_THRESHOLD, gt=0, le=1,
                                   description="absolute change of one cluster's share that counts as drift")

    @field_validator("data", "output")
    @classmethod
    def _paths_not_blank(cls, value: str | None) -> str | None:
        return _non_blank(value, "the path")


def spec_path_fields(spec: TrainSpec | ApplySpec | DriftSpec) -> dict[str, str]:
    """The path-valued fields of a spec's kind and their roles (``data``, ``model``, ``output``)."""
    return path_fields(type(spec))


JobSpec = Annotated[Union[TrainSpec, ApplySpec, DriftSpec], Field(discriminator="kind")]
_SPEC_ADAPTER: TypeAdapter[TrainSpec | ApplySpec | DriftSpec] = TypeAdapter(JobSpec)


def error_field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """The spec field a pydantic error location points at (``("train", "k", 0)`` -> ``"k"``).

    The union tag (``train`` / ``apply``) and FastAPI's ``body`` prefix are dropped; list
    indexes are kept as ``[i]``.
    """
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    if parts and parts[0] in JOB_KINDS:
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


_SPEC_FIELDS = set(TrainSpec.model_fields) | set(ApplySpec.model_fields) | set(DriftSpec.model_fields)


def _field_named_by(message: str) -> str | None:
    """The spec field a whole-spec message starts with (``"k=300 exceeds max_k=100"`` -> ``"k"``)."""
    head = re.match(r"[A-Za-z_]+", message)
    return head.group(0) if head and head.group(0) in _SPEC_FIELDS and message[head.end():head.end() + 1] in "= " else None


def describe_errors(errors: list[dict[str, Any]], *, values: bool = True) -> list[dict[str, Any]]:
    """pydantic errors as ``[{"field": ..., "message": ..., "type": ...}]``.

    A missing or unknown ``kind`` is reported on the field ``kind``; a check of the whole
    spec (``k=300 exceeds max_k=100``) on the field its message starts with. With
    ``values``, a message ends with the rejected value (``..., got 1e+20``).
    """
    out = []
    for error in errors:
        kind = error.get("type", "")
        field = error_field(error.get("loc", ()))
        message = error_message(error) if values else str(error.get("msg", "")).removeprefix("Value error, ")
        if field is None:
            field = _field_named_by(message)
        if kind in ("union_tag_not_found", "union_tag_invalid"):
            field = "kind"
            found = error.get("ctx", {}).get("tag")
            got = f", got {found!r}" if found is not None else " (missing)"
            message = f"kind must be one of {list(JOB_KINDS)}{got}"
        elif kind == "missing" and field:
            message = f"{field} is required"
        elif kind == "extra_forbidden" and field:
            message = f"unknown field {field!r}"
        out.append({"field": field, "message": message, "type": kind})
    return out


def format_errors(errors: list[dict[str, Any]]) -> str:
    """``field: message; field: message`` for people."""
    return "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)


class FieldError(InvalidInputError):
    """A spec value that is not acceptable where it points (a path, a job reference); names the field."""

    http_status = 422
    code = "invalid_spec"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class SpecError(InvalidInputError):
    """A spec that does not validate; ``errors`` names each field."""

    http_status = 422
    code = "invalid_spec"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(f"invalid job spec: {format_errors(errors)}")


def parse_spec(value: Any) -> TrainSpec | ApplySpec | DriftSpec:
    """A validated spec from a mapping; :class:`SpecError` naming the fields otherwise."""
    if not isinstance(value, dict):
        raise SpecError([{"field": None, "message": f"a job spec is a mapping with a 'kind', got {type(value).__name__}",
                          "type": "model_type"}])
    try:
        return _SPEC_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise SpecError(describe_errors(exc.errors())) from None


MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000


class SpecYAMLError(InvalidInputError):
    """YAML text that does not parse, or goes beyond what a job spec needs (aliases, depth, size)."""


def _bounded_loader_class() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses aliases (no expansion bombs) and caps nesting and node count."""

        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self._depth = 0
            self._nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise SpecYAMLError(f"uses the alias *{event.anchor}{_where(event.start_mark)}; "
                                    "a job spec may not use YAML aliases")
            self._depth += 1
            self._nodes += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    raise SpecYAMLError(f"is nested more than {MAX_YAML_DEPTH} levels deep"
                                        f"{_where(self.peek_event().start_mark)}")
                if self._nodes > MAX_YAML_NODES:
                    raise SpecYAMLError(f"has more than {MAX_YAML_NODES} values")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return BoundedLoader


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def load_spec_yaml(text: str) -> Any:
    """Parse YAML (or JSON) text of a job spec with the limits a service needs.

    Aliases are refused (a few hundred bytes of aliases can expand to millions of values),
    nesting is capped at :data:`MAX_YAML_DEPTH` and the document at :data:`MAX_YAML_NODES`
    values.

    Raises
    ------
    SpecYAMLError
        ``"is not valid YAML: PROBLEM at line L, column C"`` or the limit it went beyond.
    """
    import yaml

    try:
        return yaml.load(text, Loader=_bounded_loader_class())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecYAMLError(f"is not valid YAML or JSON: {problem}{_where(mark)}") from None
    except RecursionError:
        raise SpecYAMLError(f"is nested more than {MAX_YAML_DEPTH} levels deep") from None


def load_spec_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a spec file (YAML or JSON; ``-`` reads stdin) into a mapping, unvalidated."""
    import sys

    if str(path) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise InvalidInputError(f"spec file {str(path)!r} does not exist") from None
        except (IsADirectoryError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"spec file {str(path)!r} is not a YAML or JSON text file ({exc})") from None
    try:
        value = load_spec_yaml(text)
    except SpecYAMLError as exc:
        raise InvalidInputError(f"spec file {str(path)!r} {exc.message}") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"spec file {str(path)!r} must hold a mapping with a 'kind' (train, apply or drift)")
    return value


def spec_json_schema() -> dict[str, Any]:
    """The JSON schema of a job spec (both kinds)."""
    return _SPEC_ADAPTER.json_schema()


__all__ = [
    "ApplySpec", "DriftSpec", "FieldError", "JobSpec", "PUBLISHABLE_SERIES_METHODS", "SPEC_VERSION", "SpecError", "TrainSpec", "describe_errors", "error_field",
    "MAX_YAML_DEPTH", "MAX_YAML_NODES", "SpecYAMLError", "format_errors", "load_spec_file", "load_spec_yaml", "parse_spec", "spec_json_schema", "spec_path_fields",
]
