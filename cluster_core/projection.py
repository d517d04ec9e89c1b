"""The embedding view: a 2-D map of a sample with each point's cluster, and image galleries.

Every model directory of a run gets ``embedding_view.json``::

    {"format": "clustra-embedding-view", "method": "pca", "axes": ["pc1", "pc2"],
     "explained_variance_ratio": [..], "n_points": N,
     "x": [...], "y": [...], "cluster": [...],          # one entry per sampled row
     "probability": [...] | "distance": [...],           # as the model reports it
     "probabilities": [[...]], "probability_clusters": [...],  # mixtures: per cluster, for the hover
     "clusters": [{"cluster_id", "size", "x", "y"}],     # per-cluster centre on the map
     "galleries": {IMAGE_COLUMN: [{"cluster_id", "images": [{"file", "source",
                                   "probability" | "distance"}]}]}}

The sample is the same for every model of a run (rows of the feature-fitting sample) and
so is the projection (fitted once on its features), so maps of different models can be
compared side by side. For an image column each cluster's gallery holds its most
representative images — highest membership probability (mixtures, HDBSCAN) or smallest
distance to the centroid (KMeans) — as small PNG thumbnails under ``gallery/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._state import write_json
from .blocks import single_threaded_when_small
from .errors import InvalidInputError

VIEW_FILE = "embedding_view.json"
GALLERY_DIR = "gallery"
VIEW_METHODS = ("pca", "tsne")
THUMBNAIL_SIDE = 96


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, dict]:
    """2-D coordinates of ``features`` and facts about the projection.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    method : {"pca", "tsne"}
        PCA (default: linear, stable across runs) or t-SNE (scikit-learn; local structure).

    Returns
    -------
    coords : ndarray of shape (n_samples, 2)
    info : dict
        ``method``, ``axes`` and, for PCA, ``explained_variance_ratio``.
    """
    if method not in VIEW_METHODS:
        raise InvalidInputError(f"view method {method!r} is not one of {list(VIEW_METHODS)}")
    data = np.asarray(features, np.float64)
    coords = np.zeros((data.shape[0], 2))
    if data.shape[0] < 2 or data.shape[1] == 0:
        return coords, {"method": method, "axes": ["dim1", "dim2"], "explained_variance_ratio": [0.0, 0.0]}
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (data.shape[0] - 1) / 3)))
        coords = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(data)
        return coords, {"method": "tsne", "axes": ["tsne1", "tsne2"]}
    centred = data - data.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    coords[:, :k] = centred @ vt[:k].T
    energy = singular**2
    ratio = (energy[:2] / max(energy.sum(), 1e-300)).tolist() + [0.0] * (2 - k)
    return coords, {"method": "pca", "axes": ["pc1", "pc2"], "explained_variance_ratio": ratio}


def _rounded(values: np.ndarray, digits: int = 5) -> list:
    """Python floats rounded as ``round(float(v), digits)``; None where not finite."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values).tolist()
    return [round(v, digits) if ok else None for v, ok in zip(values.tolist(), finite)]


MAX_PROBABILITY_CLUSTERS = 50  # above this, the per-cluster probabilities are left out of the view


def build_view(coords: np.ndarray, info: dict, assignment, probabilities: np.ndarray | None = None) -> dict:
    """The JSON view of one model from the shared 2-D coordinates and its assignment of the sample.

    ``probabilities`` (n_points, n_clusters), when the model has them (mixtures' ``predict_proba``),
    are kept per point so a viewer can show every cluster's membership probability.
    """
    labels = np.asarray(assignment.labels, np.int64)
    view = {"format": "clustra-embedding-view", **info, "n_points": int(len(labels))}
    view["x"], view["y"] = _rounded(coords[:, 0]), _rounded(coords[:, 1])
    view["cluster"] = labels.tolist()
    if assignment.probability is not None:
        view["probability"] = _rounded(np.asarray(assignment.probability, np.float64), 4)
    if assignment.distance is not None:
        view["distance"] = _rounded(np.asarray(assignment.distance, np.float64), 4)
    if probabilities is not None and 0 < probabilities.shape[1] <= MAX_PROBABILITY_CLUSTERS:
        flat, k = _rounded(np.asarray(probabilities, np.float64).ravel(), 3), probabilities.shape[1]
        view["probabilities"] = [flat[i : i + k] for i in range(0, len(flat), k)]
        view["probability_clusters"] = list(range(probabilities.shape[1]))
    view["clusters"] = [
        {
            "cluster_id": int(c),
            "size": int((labels == c).sum()),
            "x": round(float(coords[labels == c, 0].mean()), 5),
            "y": round(float(coords[labels == c, 1].mean()), 5),
        }
        for c in np.unique(labels)
    ]
    return view


def representative_rows(assignment, cluster: int, n: int) -> list[int]:
    """Rows of ``cluster`` most typical of it: highest probability, else smallest distance."""
    labels = np.asarray(assignment.labels)
    rows = np.flatnonzero(labels == cluster)
    if assignment.probability is not None:
        order = np.argsort(-np.asarray(assignment.probability)[rows], kind="stable")
    elif assignment.distance is not None:
        order = np.argsort(np.asarray(assignment.distance)[rows], kind="stable")
    else:
        order = np.arange(len(rows))
    return rows[order][:n].tolist()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "column"


def write_gallery(model_dir: Path, frame: pd.DataFrame, column: str, assignment, options: dict, size: int) -> list[dict]:
    """Thumbnails of each cluster's representative images under ``gallery/<column>/``; their index."""
    from PIL import Image

    from .features.image import _describe, load_image

    folder = model_dir / GALLERY_DIR / _safe(column)
    values = frame[column].tolist()
    out = []
    for cluster in sorted(int(c) for c in np.unique(assignment.labels) if c >= 0):
        images = []
        for row in representative_rows(assignment, cluster, size * 2):
            try:
                pixels = load_image(values[row], THUMBNAIL_SIDE, options.get("root"))
            except Exception:  # unreadable images are reported by the pipeline, not shown
                continue
            folder.mkdir(parents=True, exist_ok=True)
            name = f"cluster{cluster}-{len(images) + 1}.png"
            Image.fromarray(pixels).save(folder / name)
            entry = {"file": f"{GALLERY_DIR}/{folder.name}/{name}", "source": _describe(values[row]), "row": int(row)}
            if assignment.probability is not None:
                entry["probability"] = round(float(assignment.probability[row]), 4)
            if assignment.distance is not None:
                entry["distance"] = round(float(assignment.distance[row]), 4)
            images.append(entry)
            if len(images) == size:
                break
        out.append({"cluster_id": cluster, "images": images})
    return out


def write_embedding_views(
    models: list, frame: pd.DataFrame, models_dir: Path, *, method: str = "pca", gallery_size: int = 8, seed: int = 0
) -> int:
    """Write ``embedding_view.json`` (and image galleries) into every ``models_dir/<model_id>``.

    Parameters
    ----------
    models : list of ClusteringModel
        Models of one run (they share the feature pipeline).
    frame : DataFrame
        The raw sample rows to show.

    Returns
    -------
    int
        Number of views written.
    """
    if not models or frame is None or len(frame) == 0:
        return 0
    pipeline = models[0].pipeline
    features = pipeline.transform(frame)
    coords, info = project_2d(features, method, seed)
    image_columns = [f for f in pipeline.featurizers_ if f.kind == "image"]
    for model in models:
        model_dir = Path(models_dir) / model.model_id
        with single_threaded_when_small(features):
            assignment = model.estimator.assign(features)
            proba = getattr(model.estimator, "predict_proba", None)
            probabilities = proba(features) if proba is not None else None
        view = build_view(coords, info, assignment, probabilities)
        view["galleries"] = {
            f.column: write_gallery(model_dir, frame, f.column, assignment, f.options, gallery_size) for f in image_columns
        }
        write_json(model_dir / VIEW_FILE, view, compact=True)  # thousands of points: bulk data
    return len(models)
