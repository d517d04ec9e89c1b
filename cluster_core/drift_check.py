"""Drift as a use case: score a batch with a model and compare it with the model's training sample.

What ``clustra drift MODEL DATA`` and a jobs API ``kind: drift`` spec run; the measures are
:mod:`cluster_core.drift`'s (kept apart from it: :mod:`cluster_core.model` imports that module
to build references, and this one loads models and datasets).
"""

from __future__ import annotations

import os
from typing import Any

from .data import sample_frame
from .drift import DEFAULT_BATCH_ROWS, DEFAULT_PSI_THRESHOLD, DEFAULT_SHARE_THRESHOLD, compare, read_reference
from .errors import InvalidInputError
from .model import ClusteringModel
from .runs import resolve_model_dir
from .usecases import open_dataset

REPORT_FILE = "drift.json"  # the report a drift job writes in its output directory


def check_drift(
    model_path: str | os.PathLike,
    data: Any,
    *,
    sample_rows: int = DEFAULT_BATCH_ROWS,
    seed: int = 0,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    share_threshold: float = DEFAULT_SHARE_THRESHOLD,
) -> dict[str, Any]:
    """Score about ``sample_rows`` rows of ``data`` with a model and compare them with its training sample.

    What ``clustra drift MODEL DATA`` and a jobs API ``kind: drift`` spec run.

    Parameters
    ----------
    model_path : str or path-like
        A model directory, or a run directory (its recommended model).
    data : str or DataFrame
        The batch: a Parquet file, directory or glob (anything :func:`cluster_core.usecases.open_dataset` reads).
    sample_rows : int
        About this many rows are drawn uniformly from ``data`` (with ``seed``).
    psi_threshold, share_threshold : float
        See :func:`compare`.

    Returns
    -------
    dict
        The report of :func:`compare` plus ``model_dir`` and ``verdict`` (``"drift"`` or ``"pass"``).
    """
    if not (isinstance(sample_rows, int) and sample_rows >= 1):
        raise InvalidInputError(f"sample_rows={sample_rows!r} should be a positive whole number of rows", field="sample_rows")
    model_dir = resolve_model_dir(model_path)
    reference = read_reference(model_dir)
    model = ClusteringModel.load(model_dir)
    batch = sample_frame(open_dataset(data), sample_rows, seed)
    report = compare(model, reference, batch, psi_threshold=psi_threshold, share_threshold=share_threshold)
    return {**report, "verdict": "drift" if report["drift"] else "pass", "model_dir": str(model_dir)}



__all__ = ["REPORT_FILE", "check_drift"]
