"""What a job does: the checks made when it is submitted, and its body when it runs.

Every kind calls the library (:func:`cluster_core.usecases.train_run`,
:func:`cluster_core.usecases.apply_run`, :func:`cluster_core.drift_check.check_drift`; for a
train spec with ``series`` and an apply spec on a series run,
:func:`cluster_core.series.train_series_run` and :func:`cluster_core.series.apply_series_run`)
on the Dask client the runner gives them. Every path is checked against the roots on submission and
again right before it is used.
"""

from __future__ import annotations

import os
import time
from typing import Any

from cluster_core.errors import ArtifactError, ClustraError, InvalidInputError, NotFoundError
from cluster_core.progress import Progress

from .paths import PathPolicy
from .specs import ApplySpec, DriftSpec, FieldError, PublishSpec, TrainSpec, parse_spec, spec_path_fields
from .store import JobRecord, JobStateError, JobStore


def is_series_run(path: str) -> bool:
    """Whether ``path`` is a series run directory (:func:`cluster_core.series.is_series_run`)."""
    from cluster_core.series import is_series_run as _is_series_run

    return _is_series_run(path)


def default_output(policy: PathPolicy, job_id: str) -> str:
    """Where a job writes when its spec names no output: ``OUTPUT_ROOT/JOB_ID``."""
    return os.path.join(policy.output_root, job_id)


def _train_job_run_dir(spec: ApplySpec | DriftSpec, store: JobStore) -> str:
    """The run directory of the succeeded train job an apply or drift spec names."""
    assert spec.job is not None
    try:
        parent = store.get(spec.job)
    except NotFoundError:
        raise FieldError("job", f"no job with id {spec.job!r}") from None
    if parent.kind != "train":
        raise FieldError("job", f"job {spec.job} is an {parent.kind} job; name a train job")
    if parent.state != "succeeded" or not parent.result:
        raise JobStateError(f"job: train job {spec.job} is {parent.state}; apply its models once it has succeeded")
    return str(parent.result["run_dir"])


def model_source(spec: ApplySpec | DriftSpec, policy: PathPolicy, store: JobStore) -> str:
    """The checked model or run directory an apply or drift spec reads."""
    from cluster_core.runs import read_leaderboard

    if spec.job is None:
        assert spec.model is not None
        return policy.readable(spec.model, "model")
    run_dir = _train_job_run_dir(spec, store)
    if spec.model_id is None:
        return policy.readable(run_dir, "job")
    if is_series_run(run_dir):
        raise FieldError("model_id", f"job {spec.job} is a series run: it assigns new series with the model it chose "
                                     "(series.json's model_id); drop model_id")
    board = read_leaderboard(run_dir)
    usable = [m["model_id"] for m in board["models"] if m.get("status") == "ok"]
    if spec.model_id not in usable:
        raise FieldError("model_id", f"job {spec.job} has no model {spec.model_id!r}; its models: {usable}")
    return policy.readable(os.path.join(run_dir, "models", spec.model_id), "model_id")


def read_paths(spec: TrainSpec | ApplySpec | DriftSpec, policy: PathPolicy) -> dict[str, str]:
    """Every path the spec reads, confined by its field's role: ``{field: checked path}``.

    The fields come from the spec's declaration (:func:`jobs.specs.spec_path_fields`), so a
    new path field is confined without a change here. Outputs are checked by the caller
    (:meth:`PathPolicy.writable` needs the default and the inputs); an apply or drift spec's
    ``model`` goes through :func:`model_source` (it may name a train job instead).
    """
    checked: dict[str, str] = {}
    for name, role in spec_path_fields(spec).items():
        if role == "output" or (isinstance(spec, (ApplySpec, DriftSpec)) and name == "model"):
            continue
        path = policy.check_field(name, getattr(spec, name), role)
        if path is not None:
            checked[name] = path
    return checked


def job_train_config(spec: TrainSpec, paths: dict[str, str]) -> Any:
    """The library's settings of a train spec, its path fields replaced by their checked paths."""
    config = spec.train_config()
    replaced = {name: path for name, path in paths.items() if name in type(config).model_fields}
    return config.model_copy(update=replaced) if replaced else config


def _dataset_column_names(data: str) -> list[str] | None:
    """Column names of a local Parquet dataset from one footer (and hive directory names);
    None when that is not cheap or not possible here (the job checks them in its first second)."""
    import glob as _glob

    import pyarrow.dataset as pads

    if "://" in data:
        return None
    source: Any = sorted(_glob.glob(data)) if set(data) & set("*?[") else data
    try:
        return list(pads.dataset(source, format="parquet", partitioning="hive").schema.names)
    except Exception:  # noqa: BLE001 - unreadable here: the job reports the library's error
        return None


def check_kinds(spec: TrainSpec) -> None:
    """The kinds ``kinds`` and ``kind_weights`` name are column kinds (with every featurizer registered).

    Raises
    ------
    InvalidInputError
        Naming the setting and the unknown kinds (422).
    """
    if not (spec.kinds or spec.kind_weights):
        return
    import cluster_core.features  # noqa: F401 - registers the kinds of the built-in featurizers
    from cluster_core.schema import check_kind_names

    check_kind_names(spec.kinds, spec.kind_weights)


def check_columns(spec: TrainSpec, data: str) -> None:
    """Columns named by include / exclude / kinds / weights / geo_pairs exist in the dataset's
    footer schema (the same check and message as the job's first step).

    Raises
    ------
    InvalidInputError
        Naming the setting and the unknown columns (422).
    """
    from cluster_core.usecases import check_named_columns

    if spec.series is not None:  # these settings name columns of the per-series table, made by the job
        return
    if not (spec.include or spec.exclude or spec.kinds or spec.weights or spec.geo_pairs):
        return
    columns = _dataset_column_names(data)
    if columns is not None:
        check_named_columns(spec.train_config(), columns)


def check_drift_reference(spec: DriftSpec, model: str) -> None:
    """The model a drift spec names keeps a training sample (``drift.json``); :class:`FieldError` otherwise."""
    from cluster_core.drift import STATE_NAME, has_reference
    from cluster_core.errors import ClustraError
    from cluster_core.runs import resolve_model_dir

    field = "job" if spec.job is not None and spec.model_id is None else ("model_id" if spec.job else "model")
    if is_series_run(model):
        raise FieldError(field, f"{model!r} is a series run: drift compares rows with a model's training sample, "
                                "which series runs do not keep; name a model trained on rows")
    try:
        model_dir = resolve_model_dir(model)
    except ClustraError as exc:
        raise FieldError(field, exc.message) from None
    if not has_reference(model_dir):
        raise FieldError(field, f"model {str(model_dir)!r} has no drift reference ({STATE_NAME}.json): it was "
                                "trained before Clustra kept a training sample with each model; train it again")


def admit(spec: TrainSpec | ApplySpec | DriftSpec, job_id: str, policy: PathPolicy, store: JobStore) -> str:
    """Check a spec's paths, references and named columns before it is queued; its output path.

    Raises
    ------
    PathNotAllowedError, PathMissingError, ProtectedPathError, FieldError, JobStateError, InvalidInputError
    """
    paths = read_paths(spec, policy)
    if isinstance(spec, TrainSpec):
        output = policy.writable(spec.output, default_output(policy, job_id), inputs=(paths["data"],))
        check_kinds(spec)
        check_columns(spec, paths["data"])
        return output
    model = model_source(spec, policy, store)
    if isinstance(spec, DriftSpec):
        check_drift_reference(spec, model)
    elif spec.explain and is_series_run(model):
        raise FieldError("explain", f"{model!r} is a series run: explain is for rows scored by a model; "
                                    "series are assigned without it (drop explain)")
    return policy.writable(spec.output, default_output(policy, job_id), overwrite=spec.overwrite,
                           inputs=(paths["data"], model))


class PublishError(ArtifactError):
    """The sweep trained, but its model could not be published (names the run directory, so nothing
    is lost). A job's error, never an HTTP answer: the model_id is only known to exist after training."""


def publish_trained(publish: PublishSpec, run_dir: str, board: dict[str, Any], registry_url: str) -> dict[str, Any]:
    """Publish the recommended model of a run (or ``publish.model_id``) to the registry.

    Returns
    -------
    dict
        ``{"name", "version", "alias", "model_id", "registry"}``: what the job's result reports.

    Raises
    ------
    PublishError
        The named model is not a usable model of the run, or the registry refused the version.
    """
    from cluster_core.registry import ModelRegistry
    from cluster_core.runs import chosen_model

    usable = [m["model_id"] for m in board["models"] if m.get("status") == "ok"]
    model_id = publish.model_id or chosen_model(board)
    where = f"the run {run_dir} is kept; publish it with `clustra publish`"
    if model_id is None or model_id not in usable:
        wanted = f"model_id {model_id!r} is not" if publish.model_id else "the run has no recommended model, so nothing is"
        raise PublishError(f"{wanted} a usable model of this sweep (usable: {usable}); {where}", field="publish.model_id")
    try:
        info = ModelRegistry(registry_url).publish(os.path.join(run_dir, "models", model_id), publish.name, alias=publish.alias)
    except (ArtifactError, InvalidInputError) as exc:
        raise PublishError(f"model {model_id!r} could not be published as {publish.name!r}: {exc}; {where}",
                           field="publish") from None
    return {"name": info["name"], "version": info["version"], "alias": info.get("alias"), "model_id": model_id,
            "registry": info["registry"]}


def run_train(spec: TrainSpec, job: JobRecord, policy: PathPolicy, client: Any, progress: Progress,
              registry: str | None = None) -> dict[str, Any]:
    """Train the sweep and write the run directory; the job's result.

    With ``spec.publish``, the recommended (or named) model is then published to
    ``registry`` (default: ``CLUSTRA_REGISTRY``) and the result's ``published`` says what
    went in: ``{"name", "version", "alias", "model_id", "registry"}``.
    """
    from cluster_core.usecases import train_run

    paths = read_paths(spec, policy)
    data = paths["data"]
    out = policy.writable(spec.output, default_output(policy, job.id), inputs=(data,))
    if spec.series is not None:
        return run_train_series(spec, data, out, job_train_config(spec, paths), client, progress, registry)
    outcome = train_run(data, job_train_config(spec, paths), out=out, cluster=client, progress=progress)
    board = outcome.leaderboard()
    published = _publish(spec, out, board, progress, registry)
    return {"run_dir": out, **_board_result(board), "n_rows": outcome.result.n_rows,
            "train_seconds": round(outcome.result.seconds, 3),
            **({"published": published} if published is not None else {})}


def _board_result(board: dict[str, Any]) -> dict[str, Any]:
    """What a train job's result says of its leaderboard."""
    ok = [m for m in board["models"] if m["status"] == "ok"]
    return {"best": board["best"], "recommended": board.get("recommended"), "n_models": len(board["models"]),
            "n_failed": len(board["models"]) - len(ok)}


def _publish(spec: TrainSpec, out: str, board: dict[str, Any], progress: Progress,
             registry: str | None) -> dict[str, Any] | None:
    """Publish as ``spec.publish`` says (None without it), with the job's log lines."""
    if spec.publish is None:
        return None
    from cluster_core.registry import default_registry_url

    progress.message(f"publishing {spec.publish.model_id or 'the recommended model'} as {spec.publish.name!r}")
    published = publish_trained(spec.publish, out, board, registry or default_registry_url())
    alias = f" ({published['alias']} -> v{published['version']})" if published["alias"] else ""
    progress.message(f"published {published['model_id']} as {published['name']} v{published['version']}{alias}")
    return published


MAX_DROPPED_IN_RESULT = 20


def _series_field(exc: ClustraError) -> ClustraError:
    """``exc`` naming its setting as the spec does (``time`` -> ``series.time``) when it is a series setting."""
    from cluster_core.series import SeriesSettings

    if exc.field is not None and exc.field.partition(".")[0] in SeriesSettings.model_fields:
        exc.field = f"series.{exc.field}"
        exc.args = (f"{exc.field}: {exc.message}",)
    return exc


def series_outputs(run_dir: str, method: str) -> dict[str, str]:
    """The series files of a series run directory, by what they hold."""
    from cluster_core.series import ASSIGNMENTS_FILE, PROFILES_FILE, SEGMENTS_FILE, SERIES_FILE
    from cluster_core.series.run import SHAPE_MODEL

    files = {"summary": SERIES_FILE, "assignments": ASSIGNMENTS_FILE, "segments": SEGMENTS_FILE,
             "profiles": PROFILES_FILE}
    if method != "features":
        files["shape_model"] = f"{SHAPE_MODEL}.json"
    return {what: os.path.join(run_dir, name) for what, name in files.items()}


def run_train_series(spec: TrainSpec, data: str, out: str, config: Any, client: Any, progress: Progress,
                     registry: str | None = None) -> dict[str, Any]:
    """Segment the series of a long table (``spec.series``) into the run directory ``out``, as
    ``clustra train --series-id`` does; the job's result.

    The result has the keys of a train job's (``best`` and ``recommended`` name the chosen
    model; for the shape methods ``n_models`` counts the cluster counts tried) plus
    ``series``: the method, the counts of series (kept, dropped: the first
    :data:`MAX_DROPPED_IN_RESULT` dropped series and why; all are in ``series.json``), the
    chosen model and its number of segments, the segment sizes and ``outputs`` (the files).
    A bad setting or column is an error naming ``series.FIELD``.
    """
    from cluster_core.series import train_series_run

    started = time.perf_counter()
    try:
        outcome = train_series_run(data, spec.series, config, out=out, cluster=client, progress=progress)
    except ClustraError as exc:
        raise _series_field(exc) from None
    summary = outcome.summary
    counts = outcome.assignments["cluster_id"].value_counts().sort_index()
    series = {
        "method": summary["method"], "values": summary["values"], "n_series": summary["n_series"],
        "n_series_kept": summary["n_series_kept"], "n_series_dropped": summary["n_series_dropped"],
        "dropped": summary["dropped"][:MAX_DROPPED_IN_RESULT], "model_id": summary["model_id"],
        "n_clusters": summary["n_clusters"], "segment_sizes": {str(k): int(v) for k, v in counts.items()},
        "outputs": series_outputs(out, summary["method"]),
    }
    progress.message(f"{summary['n_series_kept']:,} series segmented by {summary['model_id']} ({summary['method']}) "
                     f"into {len(counts)} segment(s)")
    if summary["method"] == "features":
        board = outcome.result.leaderboard()
        published = _publish(spec, out, board, progress, registry)
        return {"run_dir": out, **_board_result(board), "n_rows": outcome.result.n_rows,
                "train_seconds": round(outcome.result.seconds, 3), "series": series,
                **({"published": published} if published is not None else {})}
    return {"run_dir": out, "best": summary["model_id"], "recommended": summary["model_id"],
            "n_rows": summary["n_series_kept"], "n_models": len(outcome.sweep), "n_failed": 0,
            "train_seconds": round(time.perf_counter() - started, 3), "series": {**series, "sweep": outcome.sweep}}


def run_apply(spec: ApplySpec, job: JobRecord, policy: PathPolicy, store: JobStore, client: Any,
              progress: Progress) -> dict[str, Any]:
    """Score the data with the model; the job's result (output summary)."""
    from cluster_core.usecases import apply_run

    model_path = model_source(spec, policy, store)
    data = policy.readable(spec.data, "data")
    out = policy.writable(spec.output, default_output(policy, job.id), overwrite=spec.overwrite, inputs=(data, model_path))
    from cluster_core.runs import LEADERBOARD_FILE

    if is_series_run(model_path):
        return run_apply_series(model_path, data, out, spec, client, progress)
    if os.path.isfile(os.path.join(model_path, LEADERBOARD_FILE)):  # a run: its recommended model
        progress.message(f"applying the recommended model of run {model_path}")
    summary = apply_run(model_path, data, out, overwrite=spec.overwrite, cluster=client, progress=progress,
                        explain=spec.explain, columns=spec.columns)
    summary["model"] = model_path
    if os.path.isfile(os.path.join(model_path, LEADERBOARD_FILE)):
        summary["chosen"] = "recommended"
    return summary


def run_apply_series(run_dir: str, data: str, out: str, spec: ApplySpec, client: Any,
                     progress: Progress) -> dict[str, Any]:
    """Assign the series of a long table with a series run, as ``clustra apply`` on it; the job's result.

    Writes ``OUT/series_assignments.parquet`` and ``OUT/series_report.json``; the result is
    :func:`cluster_core.series.apply_series_run`'s summary (``out``, ``n_series``,
    ``n_series_dropped``, ``cluster_counts``, ``model_id``) plus ``model`` (the run),
    ``chosen`` and ``outputs``.
    """
    from cluster_core.series import ASSIGNMENTS_FILE, apply_series_run

    progress.message(f"series run {run_dir}: assigning each series of the long table")
    summary = apply_series_run(run_dir, data, out, overwrite=spec.overwrite, cluster=client, progress=progress)
    progress.message(f"{summary['n_series']:,} series assigned ({summary['n_series_dropped']} dropped)")
    return {**summary, "model": run_dir, "chosen": "series run",
            "outputs": {"assignments": os.path.join(out, ASSIGNMENTS_FILE),
                        "report": os.path.join(out, "series_report.json")}}


def run_drift(spec: DriftSpec, job: JobRecord, policy: PathPolicy, store: JobStore, progress: Progress) -> dict[str, Any]:
    """Compare the batch with the model's training sample; the report is the job's result and ``OUTPUT/drift.json``.

    The result holds the whole report of :func:`cluster_core.drift_check.check_drift` (``verdict``:
    ``drift`` or ``pass``, ``reasons``, cluster shares, PSI per feature) plus ``out`` and
    ``report_file``; a drift verdict is a succeeded job (the check ran), read its ``verdict``.
    """
    import json

    from cluster_core._state import staged_directory
    from cluster_core.drift import verdict_line
    from cluster_core.drift_check import REPORT_FILE, check_drift

    model_path = model_source(spec, policy, store)
    data = policy.readable(spec.data, "data")
    out = policy.writable(spec.output, default_output(policy, job.id), overwrite=spec.overwrite, inputs=(data, model_path))
    progress.step("comparing the batch with the training sample")
    report = check_drift(model_path, data, sample_rows=spec.sample_rows, seed=spec.seed,
                         psi_threshold=spec.threshold, share_threshold=spec.share_threshold)
    progress.step("writing the drift report")
    with staged_directory(out, overwrite=spec.overwrite) as staging:
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    progress.message(verdict_line(report))
    return {**report, "out": out, "report_file": os.path.join(out, REPORT_FILE)}


def run_job(job: JobRecord, policy: PathPolicy, store: JobStore, client: Any, progress: Progress,
            registry: str | None = None) -> dict[str, Any]:
    """Run a claimed job to completion; its result (exceptions propagate). ``registry``: where
    ``publish`` writes (default: ``CLUSTRA_REGISTRY``)."""
    spec = parse_spec(job.spec)
    started = time.perf_counter()
    if isinstance(spec, TrainSpec):
        result = run_train(spec, job, policy, client, progress, registry)
    elif isinstance(spec, ApplySpec):
        result = run_apply(spec, job, policy, store, client, progress)
    elif isinstance(spec, DriftSpec):
        result = run_drift(spec, job, policy, store, progress)
    else:  # pragma: no cover - parse_spec returns one of the three
        raise InvalidInputError(f"unknown job kind {job.kind!r}")
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


__all__ = ["MAX_DROPPED_IN_RESULT", "PublishError", "admit", "check_columns", "check_drift_reference", "default_output", "is_series_run",
           "job_train_config",
           "model_source", "publish_trained", "read_paths", "run_apply", "run_apply_series", "run_drift", "run_job", "run_train",
           "run_train_series", "series_outputs"]
