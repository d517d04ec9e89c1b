"""User-given cluster names, stored with the model (``model.json`` and ``insights.json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._state import write_json
from ..errors import ArtifactError, InvalidInputError
from .build import INSIGHTS_FILE

MAX_NAME_LENGTH = 100
MODEL_FILE = "model.json"  # cluster_core.model.MODEL_FILE (insights never import the model module)
REGISTRY_VERSION_FILE = "version.json"  # cluster_core.registry.VERSION_FILE (a published, immutable version)


def check_name(name: object) -> str:
    """The name stripped; InvalidInputError (field ``name``) when it is not 1-100 printable characters."""
    if not isinstance(name, str):
        raise InvalidInputError(f"name must be a string, got {type(name).__name__}", field="name")
    text = " ".join(name.split())
    if not text or len(text) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"name {name!r} should have 1 to {MAX_NAME_LENGTH} characters (got {len(text)})", field="name")
    if not text.isprintable():
        raise InvalidInputError(f"name {name!r} has non-printable characters", field="name")
    return text


def rename_cluster(model_dir: str | os.PathLike, cluster_id: int, name: str) -> dict:
    """Name cluster ``cluster_id`` of the model at ``model_dir``; returns its ``model.json`` entry.

    Raises
    ------
    InvalidInputError
        Unknown cluster (field ``cluster``), a bad name (field ``name``), or a published
        registry version (immutable: rename the model directory and publish a new version).
    """
    model_dir = Path(model_dir)
    text = check_name(name)
    if (model_dir / REGISTRY_VERSION_FILE).is_file():
        raise InvalidInputError(
            f"{str(model_dir)!r} is a published registry version, which never changes; rename the model directory "
            "it came from and publish it as a new version", field="model",
        )
    info = _read_model_json(model_dir)
    check_cluster(cluster_id, int(info.get("n_clusters") or 0), info.get("model_id"))
    info["clusters"], entry = named_clusters(info.get("clusters") or [], cluster_id, text)
    write_json(model_dir / MODEL_FILE, info)
    insights = model_dir / INSIGHTS_FILE
    if insights.is_file():
        try:
            document = json.loads(insights.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{str(insights)!r} is not valid JSON: {exc}") from exc
        name_insights(document, cluster_id, text)
        write_json(insights, document)
    return entry


def check_cluster(cluster_id: object, n_clusters: int, model_id: object) -> int:
    """``cluster_id`` when it is a cluster of the model; InvalidInputError (field ``cluster``) otherwise."""
    if isinstance(cluster_id, bool) or not isinstance(cluster_id, int) or not 0 <= cluster_id < n_clusters:
        raise InvalidInputError(
            f"cluster={cluster_id!r} is not a cluster of model {model_id!r} (expected 0..{n_clusters - 1})",
            field="cluster",
        )
    return cluster_id


def named_clusters(clusters: list[dict], cluster_id: int, text: str) -> tuple[list[dict], dict]:
    """``model.json``'s ``clusters`` (by id) with cluster ``cluster_id`` named ``text`` by the user; and its entry."""
    by_id = {int(c["cluster_id"]): c for c in clusters}
    entry = by_id.setdefault(cluster_id, {"cluster_id": cluster_id})
    entry["name"], entry["name_source"] = text, "user"
    return [by_id[c] for c in sorted(by_id)], entry


def name_insights(document: dict, cluster_id: int, text: str) -> None:
    """Name cluster ``cluster_id`` ``text`` (by the user) in an ``insights.json`` document, in place."""
    for cluster in document.get("clusters", []):
        if cluster.get("cluster_id") == cluster_id:
            cluster["name"], cluster["name_source"] = text, "user"


def _read_model_json(model_dir: Path) -> dict:
    file = model_dir / MODEL_FILE
    if not file.is_file():
        raise InvalidInputError(f"{str(model_dir)!r} is not a Clustra model directory (no {MODEL_FILE})", field="model")
    try:
        info = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{str(file)!r} is not valid JSON: {exc}") from exc
    if info.get("format") != "clustra-model":
        raise ArtifactError(f"{str(file)!r} is not a Clustra model (format={info.get('format')!r})")
    return info
