"""Run directories: what ``clustra train`` writes, and how a model is found in one.

::

    RUN_DIR/
      leaderboard.json   {"best": MODEL_ID, "metric": "silhouette", "recommended": MODEL_ID,
                          "recommended_reason": "...", "models": [...best first]}
      selection.json     per algorithm variant, the criteria against k (docs/selection.md)
      run.json           config, dataset, row counts, timings
      schema.json        the inferred (and overridden) column kinds
      models/MODEL_ID/   one model directory per successful model

The run is assembled in a hidden sibling directory and renamed into place at the end,
so a failed or interrupted run never leaves a directory that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

from ._state import check_output, staged_directory, write_json
from .errors import ArtifactError, InvalidInputError
from .insights import write_insights
from .model import MODEL_FILE, ClusteringModel
from .projection import write_embedding_views
from .selection import selection_curves
from .training import TrainResult

LEADERBOARD_FILE = "leaderboard.json"
SELECTION_FILE = "selection.json"


def write_run(result: TrainResult, run_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the run directory atomically; refuse to replace an existing one unless ``overwrite``."""
    run_dir = check_output(run_dir, overwrite=overwrite)
    with staged_directory(run_dir, overwrite=overwrite) as staging:
        models = result.models()
        for model in models:
            model.save(staging / "models" / model.model_id)
            if model.model_id in result.insights:
                write_insights(staging / "models" / model.model_id, result.insights[model.model_id])
        config = result.config
        write_embedding_views(
            models, result.data.view_sample, staging / "models",
            method=config.view_method, gallery_size=config.gallery_size, seed=config.seed,
        )
        write_json(staging / "schema.json", result.data.schema.to_dict())
        write_json(
            staging / "run.json",
            {
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "data": result.dataset_path,
                "n_rows": result.n_rows,
                "n_train": result.data.n_train,
                "n_validation": result.data.n_validation,
                "n_features": result.data.pipeline.n_features,
                "features_persisted": result.data.persisted,
                "seconds": round(result.seconds, 3),
                "insights_seconds": round(result.insights_seconds, 3),
                "config": result.config.model_dump(),
            },
        )
        leaderboard = result.leaderboard()
        write_json(staging / LEADERBOARD_FILE, leaderboard)
        write_json(staging / SELECTION_FILE, selection_curves(leaderboard))
    return run_dir


def _read_run_json(run_dir: str | os.PathLike, name: str, missing: str) -> dict:
    """The JSON file ``name`` of a run directory; ArtifactError(``missing``) when it is absent."""
    try:
        return json.loads((Path(run_dir) / name).read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(missing) from exc


def read_leaderboard(run_dir: str | os.PathLike) -> dict:
    """``leaderboard.json`` of a run directory."""
    return _read_run_json(run_dir, LEADERBOARD_FILE, f"{str(run_dir)!r} is not a run directory (no {LEADERBOARD_FILE})")


def chosen_model(leaderboard: dict) -> str | None:
    """The model a run stands for: its recommended model (runs written before there was one: the best)."""
    return leaderboard.get("recommended") or leaderboard.get("best")


def read_selection(run_dir: str | os.PathLike) -> dict:
    """``selection.json`` of a run directory."""
    return _read_run_json(
        run_dir, SELECTION_FILE, f"run {str(run_dir)!r} has no {SELECTION_FILE} (written by clustra train since curves exist)"
    )


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A model directory from a model directory or a run directory (its recommended model)."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"model path {str(path)!r} does not exist")
    if (path / MODEL_FILE).is_file():
        return path
    if (path / LEADERBOARD_FILE).is_file():
        best = chosen_model(read_leaderboard(path))
        if not best:
            raise ArtifactError(f"run {str(path)!r} has no successful model")
        return path / "models" / best
    raise InvalidInputError(f"{str(path)!r} is neither a model directory ({MODEL_FILE}) nor a run directory ({LEADERBOARD_FILE})")


def load_model(path: str | os.PathLike) -> ClusteringModel:
    """Load a model from a model directory or a run directory (its recommended model)."""
    return ClusteringModel.load(resolve_model_dir(path))
