"""What a job does: the checks made when it is submitted, and its body when it runs.

Both kinds call the library's use cases (:func:`cluster_core.usecases.train_run`,
:func:`cluster_core.usecases.apply_run`) on the Dask client the runner gives them. Every path is checked against the roots on submission and
again right before it is used.
"""

from __future__ import annotations

import os
import time
from typing import Any

from cluster_core.errors import InvalidInputError, NotFoundError
from cluster_core.progress import Progress

from .paths import PathPolicy
from .specs import ApplySpec, FieldError, TrainSpec, parse_spec
from .store import JobRecord, JobStateError, JobStore


def default_output(policy: PathPolicy, job_id: str) -> str:
    """Where a job writes when its spec names no output: ``OUTPUT_ROOT/JOB_ID``."""
    return os.path.join(policy.output_root, job_id)


def _train_job_run_dir(spec: ApplySpec, store: JobStore) -> str:
    """The run directory of the succeeded train job an apply spec names."""
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


def model_source(spec: ApplySpec, policy: PathPolicy, store: JobStore) -> str:
    """The checked model or run directory an apply spec reads."""
    from cluster_core.runs import read_leaderboard

    if spec.job is None:
        assert spec.model is not None
        return policy.readable(spec.model, "model")
    run_dir = _train_job_run_dir(spec, store)
    if spec.model_id is None:
        return policy.readable(run_dir, "job")
    board = read_leaderboard(run_dir)
    usable = [m["model_id"] for m in board["models"] if m.get("status") == "ok"]
    if spec.model_id not in usable:
        raise FieldError("model_id", f"job {spec.job} has no model {spec.model_id!r}; its models: {usable}")
    return policy.readable(os.path.join(run_dir, "models", spec.model_id), "model_id")


def admit(spec: TrainSpec | ApplySpec, job_id: str, policy: PathPolicy, store: JobStore) -> str:
    """Check a spec's paths and references before it is queued; its output path.

    Raises
    ------
    PathNotAllowedError, PathMissingError, FieldError, JobStateError
    """
    if isinstance(spec, TrainSpec):
        data = policy.readable(spec.data, "data")
        return policy.writable(spec.output, default_output(policy, job_id), inputs=(data,))
    model = model_source(spec, policy, store)
    data = policy.readable(spec.data, "data")
    return policy.writable(spec.output, default_output(policy, job_id), overwrite=spec.overwrite, inputs=(data, model))


def run_train(spec: TrainSpec, job: JobRecord, policy: PathPolicy, client: Any, progress: Progress) -> dict[str, Any]:
    """Train the sweep and write the run directory; the job's result."""
    from cluster_core.usecases import train_run

    data = policy.readable(spec.data, "data")
    out = policy.writable(spec.output, default_output(policy, job.id), inputs=(data,))
    outcome = train_run(data, spec.train_config(), out=out, cluster=client, progress=progress)
    board = outcome.leaderboard()
    ok = [m for m in board["models"] if m["status"] == "ok"]
    return {
        "run_dir": out,
        "best": board["best"],
        "recommended": board.get("recommended"),
        "n_rows": outcome.result.n_rows,
        "n_models": len(board["models"]),
        "n_failed": len(board["models"]) - len(ok),
        "train_seconds": round(outcome.result.seconds, 3),
    }


def run_apply(spec: ApplySpec, job: JobRecord, policy: PathPolicy, store: JobStore, client: Any,
              progress: Progress) -> dict[str, Any]:
    """Score the data with the model; the job's result (output summary)."""
    from cluster_core.usecases import apply_run

    model_path = model_source(spec, policy, store)
    data = policy.readable(spec.data, "data")
    out = policy.writable(spec.output, default_output(policy, job.id), overwrite=spec.overwrite, inputs=(data, model_path))
    from cluster_core.runs import LEADERBOARD_FILE

    if os.path.isfile(os.path.join(model_path, LEADERBOARD_FILE)):  # a run: its recommended model
        progress.message(f"applying the recommended model of run {model_path}")
    summary = apply_run(model_path, data, out, overwrite=spec.overwrite, cluster=client, progress=progress)
    summary["model"] = model_path
    if os.path.isfile(os.path.join(model_path, LEADERBOARD_FILE)):
        summary["chosen"] = "recommended"
    return summary


def run_job(job: JobRecord, policy: PathPolicy, store: JobStore, client: Any, progress: Progress) -> dict[str, Any]:
    """Run a claimed job to completion; its result (exceptions propagate)."""
    spec = parse_spec(job.spec)
    started = time.perf_counter()
    if isinstance(spec, TrainSpec):
        result = run_train(spec, job, policy, client, progress)
    elif isinstance(spec, ApplySpec):
        result = run_apply(spec, job, policy, store, client, progress)
    else:  # pragma: no cover - parse_spec returns one of the two
        raise InvalidInputError(f"unknown job kind {job.kind!r}")
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


__all__ = ["admit", "default_output", "model_source", "run_apply", "run_job", "run_train"]
