"""Read what a run directory holds for the report: every file optional except the leaderboard.

A run written before insights or selection existed has no ``insights.json`` /
``selection.json``; their sections are then ``None`` and shown as "not computed".
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, InvalidInputError

LEADERBOARD_FILE = "leaderboard.json"
SELECTION_FILE = "selection.json"
RUN_FILE = "run.json"
MODEL_FILE = "model.json"
VIEW_FILE = "embedding_view.json"
INSIGHTS_FILE = "insights.json"
NAMES_FILE = "cluster_names.json"
SERIES_FILE = "series.json"  # a series run (cluster_core.series): its summary and the clusters' shapes
SERIES_PROFILES_FILE = "series_profiles.json"
MAX_IMAGE_BYTES = 512 * 1024  # larger image files are not embedded
THUMBNAIL_SIDE = 96


def read_json(path: Path, what: str) -> Any:
    """A JSON file, ``None`` when absent; :class:`ArtifactError` naming the file when unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArtifactError(f"cannot read the {what} {str(path)!r}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"the {what} {str(path)!r} is not valid JSON: {exc}") from exc


@dataclass
class ModelReport:
    """Everything the report shows about one model (``None`` for what the run does not hold)."""

    model_id: str
    entry: dict[str, Any]
    model: dict[str, Any] | None = None
    view: dict[str, Any] | None = None
    insights: dict[str, Any] | None = None
    images: dict[str, str] = field(default_factory=dict)  # gallery file or "path:" + image path -> data: URI
    best: bool = False
    recommended: bool = False

    @property
    def ok(self) -> bool:
        """The model trained (a failed model has only its leaderboard entry)."""
        return self.entry.get("status", "ok") == "ok" and self.model is not None

    def cluster_names(self) -> dict[int, str]:
        """Cluster id -> name: renamed names first, then the insights' names, then model.json's."""
        names: dict[int, str] = {}
        for cluster in (self.model or {}).get("clusters") or []:
            if cluster.get("name"):
                names[int(cluster["cluster_id"])] = str(cluster["name"])
        for cid, name in _pairs((self.insights or {}).get("clusters")):  # docs/insights.md: the current names
            names[cid] = name
        for cid, name in _pairs((self.model or {}).get("cluster_names")):
            names[cid] = name
        return names

    def image_src(self, image: dict[str, Any]) -> str | None:
        """The ``data:`` URI of a gallery entry (``file``) or an insights image (``path``), if embedded."""
        if image.get("file"):
            return self.images.get(str(image["file"]))
        return self.images.get(f"path:{image.get('path')}")

    def cluster_ids(self) -> list[int]:
        """Every cluster id the model or its view mentions, sorted (noise -1 first when present)."""
        ids = {int(c["cluster_id"]) for c in (self.model or {}).get("clusters") or []}
        ids |= {int(c) for c in (self.view or {}).get("cluster") or []}
        return sorted(ids)


def _pairs(value: Any) -> list[tuple[int, str]]:
    """Cluster names given as ``{"0": "name"}``, ``[{"cluster_id": 0, "name": ...}]`` or a list of names."""
    if isinstance(value, dict):
        out = []
        for key, name in value.items():
            if isinstance(name, dict):
                name = name.get("name")
            if name is not None and str(key).lstrip("-").isdigit():
                out.append((int(key), str(name)))
        return out
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict) and item.get("name") is not None:
                out.append((int(item.get("cluster_id", i)), str(item["name"])))
            elif isinstance(item, str):
                out.append((i, item))
        return out
    return []


@dataclass
class RunReport:
    """A run directory as the report reads it."""

    run_dir: Path
    leaderboard: dict[str, Any]
    selection: dict[str, Any] | None
    run: dict[str, Any] | None
    models: list[ModelReport]
    series: dict[str, Any] | None = None  # series.json of a series run
    series_profiles: dict[str, Any] | None = None  # series_profiles.json of a series run

    @property
    def recommended(self) -> str | None:
        """The recommended model id (the leaderboard's ``recommended``, docs/selection.md), when the run has one."""
        value = self.leaderboard.get("recommended")
        return str(value) if value else None

    def model(self, model_id: str) -> ModelReport:
        """One model by id; :class:`InvalidInputError` listing the run's models otherwise."""
        for model in self.models:
            if model.model_id == model_id:
                return model
        known = [m.model_id for m in self.models]
        raise InvalidInputError(f"run {str(self.run_dir)!r} has no model {model_id!r}; its models: {known}", field="model")


def _data_uri(path: Path, thumbnail: bool) -> str | None:
    """A file as a ``data:`` URI (a 96 px PNG thumbnail when Pillow is installed and asked for)."""
    if not path.is_file():
        return None
    if thumbnail:
        try:
            import io

            from PIL import Image

            with Image.open(path) as image:
                image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG")
            return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        except Exception:  # not an image Pillow reads (or no Pillow): embed small files as they are
            pass
    if path.stat().st_size > MAX_IMAGE_BYTES:
        return None
    mime = {".png": "image/png", ".gif": "image/gif", ".webp": "image/webp"}.get(path.suffix.lower(), "image/jpeg")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _embed_images(
    model_dir: Path, view: dict[str, Any] | None, insights: dict[str, Any] | None,
    image_root: str | None, image_roots: list[str] | None,
) -> dict[str, str]:
    """Images as ``data:`` URIs, so the page needs no file access: the gallery thumbnails of the
    embedding view (files under the model directory, key ``file``) and the representative and
    borderline images of the insights' image profiles (key ``path:`` + the value as given,
    relative to the run's ``image_root``; with ``image_roots``, only files under those)."""
    images = {}
    root = model_dir.resolve()
    for clusters in ((view or {}).get("galleries") or {}).values():
        for cluster in clusters or []:
            for image in cluster.get("images") or []:
                name = str(image.get("file") or "")
                path = (model_dir / name).resolve()
                if name and name not in images and root in path.parents and (uri := _data_uri(path, False)):
                    images[name] = uri
    allowed = [Path(r).resolve() for r in image_roots] if image_roots is not None else None
    for entry in _image_profiles(insights):
        for key in ("representative", "borderline"):
            for image in entry.get(key) or []:
                value = image.get("path") if isinstance(image, dict) else None
                if not isinstance(value, str) or f"path:{value}" in images or "://" in value:
                    continue
                path = Path(value) if os.path.isabs(value) or not image_root else Path(image_root) / value
                path = path.resolve()
                if allowed is not None and not _under(path, allowed):
                    continue
                if uri := _data_uri(path, True):
                    images[f"path:{value}"] = uri
    return images


def _image_profiles(insights: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-cluster stats of image columns in the insights' profiles (for their thumbnails)."""
    from ._sections import profile_columns

    out = []
    for column in profile_columns(insights):
        if column["kind"] == "image":
            out.extend(column["clusters"].values())
    return out


def load_model_report(
    model_dir: Path, entry: dict[str, Any], *, image_root: str | None = None, image_roots: list[str] | None = None
) -> ModelReport:
    """One model's files (those present); see :func:`_embed_images` for the images."""
    model_id = str(entry["model_id"])
    model = read_json(model_dir / MODEL_FILE, "model file")
    view = read_json(model_dir / VIEW_FILE, "embedding view")
    insights = read_json(model_dir / INSIGHTS_FILE, "insights file")
    names = read_json(model_dir / NAMES_FILE, "cluster names file")
    if names is not None and model is not None:
        model = {**model, "cluster_names": names.get("names", names) if isinstance(names, dict) else names}
    return ModelReport(model_id, entry, model, view, insights, _embed_images(model_dir, view, insights, image_root, image_roots))


def load_run_report(
    run_dir: str | os.PathLike, model_ids: list[str] | None = None, *, image_roots: list[str] | None = None
) -> RunReport:
    """Read a run directory for the report.

    Parameters
    ----------
    run_dir : path-like
        A directory written by ``clustra train`` (its ``leaderboard.json`` is required).
    model_ids : list of str, optional
        Only these models (default: every model on the leaderboard, best first; ``[]``: none, the
        run-level sections only).
    image_roots : list of str, optional
        Embed the insights' images only from files under these folders (a service's data
        roots); default: any readable file.

    Raises
    ------
    InvalidInputError
        ``run_dir`` is not a run directory, or a model id is not on its leaderboard.
    ArtifactError
        A file of the run cannot be read.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InvalidInputError(f"run directory {str(run_dir)!r} does not exist")
    series = read_json(run_dir / SERIES_FILE, "series run summary")
    leaderboard = read_json(run_dir / LEADERBOARD_FILE, "leaderboard")
    if leaderboard is None and isinstance(series, dict) and series.get("sweep"):
        leaderboard = shape_leaderboard(series)
        chosen = str(series["model_id"])
        others = [m for m in model_ids or [] if m != chosen]
        if others:
            raise InvalidInputError(f"series run {str(run_dir)!r} keeps only its chosen model {chosen!r}, not {others[0]!r}",
                                    field="model")
        model_ids = [chosen]
    if not isinstance(leaderboard, dict) or not isinstance(leaderboard.get("models"), list):
        raise InvalidInputError(
            f"{str(run_dir)!r} is not a run directory (expected a {LEADERBOARD_FILE} with a list of models)"
        )
    entries = [m for m in leaderboard["models"] if isinstance(m, dict) and m.get("model_id")]
    if model_ids is not None:
        known = [str(m["model_id"]) for m in entries]
        missing = [m for m in model_ids if m not in known]
        if missing:
            raise InvalidInputError(f"run {str(run_dir)!r} has no model {missing[0]!r}; its models: {known}", field="model")
        entries = [m for m in entries if m["model_id"] in model_ids]
    selection = read_json(run_dir / SELECTION_FILE, "selection file")
    report = RunReport(run_dir, leaderboard, selection, read_json(run_dir / RUN_FILE, "run file"), [], series,
                       read_json(run_dir / SERIES_PROFILES_FILE, "series profiles file") if series is not None else None)
    image_root = ((report.run or {}).get("config") or {}).get("image_root")
    for entry in entries:
        model = load_model_report(run_dir / "models" / str(entry["model_id"]), entry, image_root=image_root,
                                  image_roots=image_roots)
        model.best = entry["model_id"] == leaderboard.get("best")
        model.recommended = entry["model_id"] == report.recommended
        report.models.append(model)
    return report


def shape_leaderboard(series: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard of a shape-method series run, from its sweep in ``series.json`` (one entry per k)."""
    chosen = series.get("model_id")
    models = [{"model_id": e.get("model_id"), "algorithm": str(e.get("model_id", "")).rsplit("-k", 1)[0],
               "n_clusters": e.get("k"), "requested_clusters": e.get("k"), "silhouette": e.get("silhouette"), "status": "ok",
               "cluster_sizes": {str(c): n for c, n in enumerate(e.get("cluster_sizes") or [])}}
              for e in series.get("sweep") or []]
    ranked = sorted(models, key=lambda m: (m["model_id"] != chosen, -(m["silhouette"] if m["silhouette"] is not None else -2)))
    for rank, model in enumerate(ranked, start=1):
        model["rank"] = rank
    return {"best": chosen, "recommended": chosen, "metric": "silhouette", "models": ranked,
            "recommended_reason": f"ranked by {series.get('ranked_by') or 'silhouette'} ({series.get('method')} method)"}
