"""The jobs service behind the HTTP routes: the store, the path policy and the runner of one process."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cluster_core.errors import NotFoundError

from ..metrics import JobMetrics
from ..paths import PathPolicy
from ..runner import Runner
from ..settings import ServiceSettings
from ..specs import ApplySpec, FieldError, TrainSpec, parse_spec
from ..store import JobRecord, JobStateError, JobStore, new_job_id
from ..tasks import admit
from .schemas import JobView, job_view


class JobService:
    """Submit, read, cancel and rerun jobs.

    Opening it takes the store's process lock and creates the output root; :meth:`start`
    recovers what a dead process left running and starts the runner.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.store = JobStore(settings.store_path)
        try:
            self.policy = PathPolicy.create(settings.resolved_data_roots(), settings.resolved_output_root(),
                                            model_roots=settings.model_roots, protected=settings.protected_paths())
        except BaseException:
            self.store.close()
            raise
        self.runner = Runner(self.store, self.policy, settings)
        self.metrics = JobMetrics(self.store, self.runner)
        self.runner.on_finish.append(self.metrics.job_finished)

    def start(self) -> None:
        """Confine image reads to the readable roots, recover and start running jobs.

        ``CLUSTRA_IMAGE_ROOTS`` is set in this process before the embedded cluster starts, so
        its workers inherit it: a path in an image column is read only under a root (workers of
        a ``--scheduler`` cluster need the variable set where they run).
        """
        from cluster_core.features.image import IMAGE_ROOTS_ENV

        self._image_roots_before = os.environ.get(IMAGE_ROOTS_ENV)
        os.environ[IMAGE_ROOTS_ENV] = os.pathsep.join(self.policy.read_roots)
        self.runner.start()

    def stop(self) -> None:
        """Stop the runner (running jobs end ``interrupted``), close the store, restore the environment."""
        from cluster_core.features.image import IMAGE_ROOTS_ENV

        try:
            self.runner.stop()
        finally:
            self.store.close()
            before = getattr(self, "_image_roots_before", None)
            if before is None:
                os.environ.pop(IMAGE_ROOTS_ENV, None)
            else:
                os.environ[IMAGE_ROOTS_ENV] = before

    # -- views -----------------------------------------------------------------------------

    def view(self, job: JobRecord) -> JobView:
        """The API view of a job (with the ids of its reruns)."""
        return job_view(job, self.store.children(job.id), time.time())

    def get(self, job_id: str) -> JobView:
        """A job by id (404 when unknown)."""
        return self.view(self.store.get(job_id))

    # -- submitting ------------------------------------------------------------------------

    def submit(
        self, spec: TrainSpec | ApplySpec, *, idempotency_key: str | None = None, parent_id: str | None = None,
        rerun: dict[str, Any] | None = None,
    ) -> tuple[JobRecord, bool]:
        """Check and queue a spec; ``(job, created)`` (``created`` is False for a replayed key)."""
        payload = spec.model_dump(mode="json")
        if idempotency_key is not None:
            existing = self.store.find_by_idempotency_key(idempotency_key)
            if existing is not None:
                record, _ = self.store.create(payload, idempotency_key=idempotency_key)
                return record, False
        job_id = new_job_id()
        output = admit(spec, job_id, self.policy, self.store)
        record, created = self.store.create(
            payload, output=output, parent_id=parent_id, rerun=rerun, idempotency_key=idempotency_key,
            max_queued=self.settings.max_queued_jobs, job_id=job_id,
        )
        if created:
            self.runner.wake()
        return record, created

    def _train_parent(self, job_id: str) -> JobRecord:
        parent = self.store.get(job_id)
        if parent.kind != "train":
            raise JobStateError(f"job {job_id} is an {parent.kind} job; only train jobs can be rerun with other counts")
        return parent

    @staticmethod
    def _rerun_spec(parent: JobRecord, **changes: Any) -> TrainSpec | ApplySpec:
        # a rerun writes its own output and publishes nothing (it explores; moving an alias is a decision)
        spec = {k: v for k, v in parent.spec.items() if k not in ("output", "publish")}
        spec.update(changes)
        return parse_spec(spec)

    def rerun_sweep(self, job_id: str, k: list[int] | None) -> JobRecord:
        """A new job linked to ``job_id``: its whole sweep, with counts ``k`` (default: the same)."""
        parent = self._train_parent(job_id)
        spec = self._rerun_spec(parent, **({"k": k} if k is not None else {}))
        record, _ = self.submit(spec, parent_id=job_id, rerun={"of": job_id, "k": k})
        return record

    def rerun_model(self, job_id: str, model_id: str, k: int) -> JobRecord:
        """A new job linked to ``job_id``: model ``model_id``'s algorithm with ``k`` clusters."""
        parent = self._train_parent(job_id)
        if parent.state != "succeeded" or not parent.result:
            raise JobStateError(f"job {job_id} is {parent.state}; its models can be rerun once it has succeeded")
        board = self.leaderboard(job_id)
        entry = next((m for m in board["models"] if m["model_id"] == model_id), None)
        if entry is None:
            known = [m["model_id"] for m in board["models"]]
            raise NotFoundError(f"job {job_id} has no model {model_id!r}; its models: {known}")
        if entry.get("requested_clusters") is None:
            raise FieldError("k", f"model {model_id!r} ({entry['algorithm']}) has no cluster count to change")
        spec = self._rerun_spec(parent, algorithms=[entry["algorithm"]], k=[k])
        record, _ = self.submit(spec, parent_id=job_id, rerun={"of": job_id, "model_id": model_id, "k": k})
        return record

    def leaderboard(self, job_id: str) -> dict[str, Any]:
        """A succeeded train job's leaderboard."""
        from cluster_core.runs import read_leaderboard

        job = self.store.get(job_id)
        if job.kind != "train":
            raise JobStateError(f"job {job_id} is an {job.kind} job; only train jobs have a leaderboard")
        if job.state != "succeeded" or not job.result:
            raise JobStateError(f"job {job_id} is {job.state}; its leaderboard exists once it has succeeded")
        method = (job.result.get("series") or {}).get("method", "features")
        if method != "features":
            raise JobStateError(f"job {job_id} segmented series with method {method!r}, which has no leaderboard: its "
                                "sweep over k is the result's series.sweep (and series.json)")
        board = read_leaderboard(job.result["run_dir"])
        return {"job_id": job_id, "run_dir": job.result["run_dir"], **board}

    def model_dir(self, job_id: str, model_id: str) -> Path:
        """The directory of model ``model_id`` of a succeeded train job."""
        board = self.leaderboard(job_id)
        known = [m["model_id"] for m in board["models"] if m.get("status") == "ok"]
        if model_id not in known:
            raise NotFoundError(f"job {job_id} has no model {model_id!r}; its models: {known}")
        return Path(board["run_dir"]) / "models" / model_id

    def insights(self, job_id: str, model_id: str) -> dict[str, Any]:
        """``insights.json`` of a model of a succeeded train job (docs/insights.md)."""
        from cluster_core.insights import INSIGHTS_FILE, read_insights

        model_dir = self.model_dir(job_id, model_id)
        if not (model_dir / INSIGHTS_FILE).is_file():
            raise NotFoundError(f"model {model_id!r} of job {job_id} has no insights (the job ran with insights off)")
        return read_insights(model_dir)

    def rename_cluster(self, job_id: str, model_id: str, cluster_id: int, name: str) -> dict[str, Any]:
        """Name a cluster of a model of a succeeded train job (stored in its model.json and insights.json)."""
        from cluster_core.insights import rename_cluster

        entry = rename_cluster(self.model_dir(job_id, model_id), cluster_id, name)
        return {"job_id": job_id, "model_id": model_id, "cluster_id": cluster_id, "name": entry["name"],
                "name_source": entry["name_source"]}


__all__ = ["JobService"]
