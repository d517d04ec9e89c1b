"""Small, realistic run files for the report and UI tests.

``insights.json`` follows issue 17's schema (docs/insights.md): ``profiles`` per original
column in the data's units, ``observations`` as sentences ranked by score, ``heatmap``
clusters x features, ``feature_impact`` ``[{"column", "impact"}]`` largest first,
``associations`` a symmetric matrix with redundant pairs. ``selection.json`` holds one curve
per algorithm and the recommended model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLUSTERS = (0, 1, 2)
NAMES = {0: "high spend, plan=pro", 1: "low spend, plan=basic", 2: "Berlin reviewers"}


def insights_document(seed: int = 0) -> dict:
    """An insights.json of a 3-cluster model of a customer table (numeric, categorical,
    datetime, text, image and geo columns)."""
    rng = np.random.default_rng(seed)
    edges = [0, 50, 100, 150, 200, 250, 300]
    centres = {0: (48.85, 2.35), 1: (40.71, -74.0), 2: (52.52, 13.40)}

    def points(cid, n=25):
        lat, lon = centres[cid]
        return {"lat": (lat + rng.normal(0, 0.8, n)).round(4).tolist(), "lon": (lon + rng.normal(0, 0.8, n)).round(4).tolist()}

    profiles = [
        {"column": "spend", "kind": "numeric",
         "overall": {"mean": 131.2, "quartiles": [70.0, 120.5, 190.0], "histogram": {"edges": edges, "counts": [40, 90, 80, 70, 60, 20]}},
         "clusters": [
             {"cluster_id": 0, "mean": 215.3, "quartiles": [180.0, 212.0, 250.0], "histogram": {"edges": edges, "counts": [0, 2, 10, 30, 50, 18]}},
             {"cluster_id": 1, "mean": 60.4, "quartiles": [30.0, 58.0, 85.0], "histogram": {"edges": edges, "counts": [40, 70, 8, 2, 0, 0]}},
             {"cluster_id": 2, "mean": 120.9, "quartiles": [95.0, 121.0, 150.0], "histogram": {"edges": edges, "counts": [0, 18, 62, 38, 10, 2]}},
         ]},
        {"column": "plan", "kind": "categorical",
         "overall": {"top": [{"value": "basic", "share": 0.45}, {"value": "pro", "share": 0.31}, {"value": "team", "share": 0.24}]},
         "clusters": [
             {"cluster_id": 0, "top": [{"value": "pro", "share": 1.0}]},
             {"cluster_id": 1, "top": [{"value": "basic", "share": 0.92}, {"value": "team", "share": 0.08}]},
             {"cluster_id": 2, "top": [{"value": "team", "share": 0.6}, {"value": "basic", "share": 0.4}]},
         ]},
        {"column": "signup", "kind": "datetime",
         "overall": {"min": "2023-01-02", "max": "2024-12-30", "typical_month": "March", "typical_weekday": "Monday", "typical_hour": 10},
         "clusters": [{"cluster_id": c, "min": "2023-01-02", "max": "2024-12-30", "typical_month": m, "typical_weekday": "Monday", "typical_hour": 9 + c}
                      for c, m in zip(CLUSTERS, ("March", "July", "November"))]},
        {"column": "review", "kind": "text", "overall": {},
         "clusters": [{"cluster_id": 0, "terms": ["fast", "reliable", "premium"]}, {"cluster_id": 1, "terms": ["cheap", "slow"]},
                      {"cluster_id": 2, "terms": ["berlin", "delivery", "friendly"]}]},
        {"column": "photo", "kind": "image", "overall": {},
         "clusters": [{"cluster_id": c, "representative": [{"file": f"gallery/photo/cluster{c}-1.png", "probability": 0.97}],
                       "borderline": [{"file": f"gallery/photo/cluster{c}-2.png", "probability": 0.51}]} for c in CLUSTERS]},
        {"column": "location", "kind": "geo", "overall": {"centroid": {"lat": 47.4, "lon": -19.4}, "spread_deg": 30.1},
         "clusters": [{"cluster_id": c, "centroid": {"lat": centres[c][0], "lon": centres[c][1]}, "spread_deg": 0.8,
                       "points": points(c)} for c in CLUSTERS]},
    ]
    observations = [
        {"cluster_id": 0, "text": "100% of the cluster has plan=pro (31% overall)", "score": 2.2},
        {"cluster_id": 0, "text": "spend is on average 64% greater", "score": 1.9},
        {"cluster_id": 1, "text": "spend is on average 54% lower", "score": 1.7},
        {"cluster_id": 1, "text": "92% of the cluster has plan=basic (45% overall)", "score": 1.2},
        {"cluster_id": 2, "text": "location is around Berlin (52.5°, 13.4°)", "score": 2.5},
    ]
    features = ["spend", "plan=pro", "plan=basic", "signup", "location"]
    heatmap = {"clusters": list(CLUSTERS), "features": features,
               "values": [[1.4, 1.5, -0.9, 0.1, -0.3], [-1.2, -0.7, 1.1, -0.2, -0.6], [-0.1, -0.6, -0.3, 0.2, 1.8]]}
    impact = [{"column": "spend", "impact": 1.0, "changed_share": 0.41}, {"column": "location", "impact": 0.72, "changed_share": 0.30},
              {"column": "plan", "impact": 0.55, "changed_share": 0.22}, {"column": "review", "impact": 0.12, "changed_share": 0.05},
              {"column": "signup", "impact": 0.03, "changed_share": 0.01}]
    columns = ["spend", "spend_eur", "plan", "signup", "location"]
    matrix = [[1, 0.98, 0.4, 0.05, 0.1], [0.98, 1, 0.39, 0.05, 0.1], [0.4, 0.39, 1, 0.02, 0.2], [0.05, 0.05, 0.02, 1, 0.01],
              [0.1, 0.1, 0.2, 0.01, 1]]
    associations = {"columns": columns, "matrix": matrix, "statistic": "normalized mutual information",
                    "redundant": [{"columns": ["spend", "spend_eur"], "value": 0.98}]}
    return {"format": "clustra-insights", "profiles": profiles, "observations": observations, "heatmap": heatmap,
            "feature_impact": impact, "associations": associations,
            "names": {str(c): n for c, n in NAMES.items()}}


def selection_document(leaderboard: dict, recommended: str) -> dict:
    """A selection.json: per algorithm the metrics against k, from the leaderboard's models."""
    curves: dict[str, dict[str, list]] = {}
    for entry in leaderboard["models"]:
        if entry.get("requested_clusters") is None or entry.get("status") != "ok":
            continue
        curve = curves.setdefault(entry["algorithm"], {"k": [], "silhouette": [], "davies_bouldin": []})
        curve["k"].append(entry["requested_clusters"])
        curve["silhouette"].append(entry["silhouette"])
        curve["davies_bouldin"].append(entry["davies_bouldin"])
    return {"format": "clustra-selection", "curves": curves, "recommended": recommended,
            "reason": "the elbow of the silhouette curve"}


def png(color: tuple[int, int, int], side: int = 16) -> bytes:
    """A small solid PNG."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_fixture_run(root: Path, *, insights: bool = True, selection: bool = True, n_points: int = 90, seed: int = 0) -> Path:
    """A run directory with two models (kmeans-k3 fully described, kmeans-k2 with only its files
    of today) and optionally the insights and selection files."""
    rng = np.random.default_rng(seed)
    run = root / "run"
    models = [
        {"model_id": "kmeans-k3", "algorithm": "kmeans", "n_clusters": 3, "requested_clusters": 3, "silhouette": 0.61,
         "davies_bouldin": 0.55, "calinski_harabasz": 310.2, "noise_fraction": 0.0, "cluster_sizes": {"0": 30, "1": 35, "2": 25},
         "fit_seconds": 0.1, "status": "ok", "error": None, "rank": 1},
        {"model_id": "kmeans-k2", "algorithm": "kmeans", "n_clusters": 2, "requested_clusters": 2, "silhouette": 0.48,
         "davies_bouldin": 0.81, "calinski_harabasz": 200.5, "noise_fraction": 0.0, "cluster_sizes": {"0": 50, "1": 40},
         "fit_seconds": 0.1, "status": "ok", "error": None, "rank": 2},
        {"model_id": "gmm-k9", "algorithm": "gmm", "n_clusters": None, "requested_clusters": 9, "status": "failed",
         "error": "k=9 exceeds the 8 rows of the smallest partition", "rank": None},
    ]
    board = {"best": "kmeans-k3", "metric": "silhouette", "models": models}
    if selection:
        board["recommended"] = "kmeans-k3"
    (run / "models").mkdir(parents=True)
    (run / "leaderboard.json").write_text(json.dumps(board))
    (run / "run.json").write_text(json.dumps({"data": "customers/", "n_rows": 900}))
    if selection:
        (run / "selection.json").write_text(json.dumps(selection_document(board, "kmeans-k3")))
    for entry in models[:2]:
        k = entry["n_clusters"]
        model_dir = run / "models" / entry["model_id"]
        model_dir.mkdir()
        labels = rng.integers(0, k, n_points)
        centres = rng.normal(0, 4, (k, 2))
        xy = centres[labels] + rng.normal(0, 0.7, (n_points, 2))
        probs = rng.dirichlet(np.ones(k), n_points)
        probs[np.arange(n_points), labels] += 2
        probs /= probs.sum(axis=1, keepdims=True)
        clusters = [{"cluster_id": c, "name": f"generated name {c}", "size": int((labels == c).sum()),
                     "share": float((labels == c).mean()), "top_features": []} for c in range(k)]
        (model_dir / "model.json").write_text(json.dumps({"format": "clustra-model", "model_id": entry["model_id"],
                                                          "algorithm": "kmeans", "n_clusters": k, "clusters": clusters}))
        gallery = []
        for c in range(k):
            folder = model_dir / "gallery" / "photo"
            folder.mkdir(parents=True, exist_ok=True)
            images = []
            for i in (1, 2):
                (folder / f"cluster{c}-{i}.png").write_bytes(png((60 * c, 200 - 40 * i, 90)))
                images.append({"file": f"gallery/photo/cluster{c}-{i}.png", "source": f"photos/{c}-{i}.jpg", "row": i,
                               "probability": round(float(probs[i, c]), 4)})
            gallery.append({"cluster_id": c, "images": images})
        view = {"format": "clustra-embedding-view", "method": "pca", "axes": ["pc1", "pc2"],
                "explained_variance_ratio": [0.52, 0.21], "n_points": n_points,
                "x": xy[:, 0].round(4).tolist(), "y": xy[:, 1].round(4).tolist(), "cluster": labels.tolist(),
                "probability": probs[np.arange(n_points), labels].round(4).tolist(),
                "clusters": [{"cluster_id": c, "size": int((labels == c).sum()), "x": 0.0, "y": 0.0} for c in range(k)],
                "galleries": {"photo": gallery}}
        if entry["model_id"] == "kmeans-k3":
            view["probabilities"] = probs.round(4).tolist()
            view["probability_clusters"] = list(range(k))
        (model_dir / "embedding_view.json").write_text(json.dumps(view))
        if insights and entry["model_id"] == "kmeans-k3":
            (model_dir / "insights.json").write_text(json.dumps(insights_document(seed)))
    return run
