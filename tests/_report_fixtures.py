"""Small, realistic run files for the report and UI tests.

``insights.json`` follows docs/insights.md (format 1) and ``selection.json`` docs/selection.md
(format 1): the documents the insights and selection work write; the leaderboard carries
``recommended`` and ``recommended_reason``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLUSTERS = (0, 1, 2)
NAMES = {0: "high spend, plan=pro", 1: "low spend, plan=basic", 2: "Berlin reviewers"}


def insights_document(seed: int = 0) -> dict:
    """An insights.json (docs/insights.md, format 1) of a 3-cluster model of a customer table:
    numeric, categorical, datetime, text, image and geo columns."""
    rng = np.random.default_rng(seed)
    edges = [0, 50, 100, 150, 200, 250, 300]
    centres = {0: (48.85, 2.35), 1: (40.71, -74.0), 2: (52.52, 13.40)}

    def points(cid, n=25):
        lat, lon = centres[cid]
        return [{"lat": round(float(lat + rng.normal(0, 0.8)), 4), "lon": round(float(lon + rng.normal(0, 0.8)), 4)} for _ in range(n)]

    def numeric(mean, q, counts, with_edges=False):
        hist = {"counts": counts, **({"bin_edges": edges} if with_edges else {})}
        return {"count": sum(counts), "missing_share": 0.02, "mean": mean, "std": 40.0, "min": 1.0, "q1": q[0], "median": q[1],
                "q3": q[2], "max": 299.0, "histogram": hist}

    def top(pairs):
        return {"count": 100, "missing_share": 0.0, "top": [{"value": v, "share": sh} for v, sh in pairs], "other_share": 0.0}

    plan_values = ("basic", "pro", "team")
    columns = {
        "spend": {"kind": "numeric", "overall": numeric(131.2, (70.0, 120.5, 190.0), [40, 90, 80, 70, 60, 20], True),
                  "clusters": {"0": numeric(215.3, (180.0, 212.0, 250.0), [0, 2, 10, 30, 50, 18]),
                               "1": numeric(60.4, (30.0, 58.0, 85.0), [40, 70, 8, 2, 0, 0]),
                               "2": numeric(120.9, (95.0, 121.0, 150.0), [0, 18, 62, 38, 10, 2])}},
        "plan": {"kind": "categorical", "overall": top(zip(plan_values, (0.45, 0.31, 0.24))),
                 "clusters": {"0": top(zip(plan_values, (0.0, 1.0, 0.0))), "1": top(zip(plan_values, (0.92, 0.0, 0.08))),
                              "2": top(zip(plan_values, (0.4, 0.0, 0.6)))}},
        "signup": {"kind": "datetime",
                   "overall": {"count": 300, "missing_share": 0.0, "min": "2023-01-02T00:00:00", "max": "2024-12-30T00:00:00",
                               "median": "2024-01-10T00:00:00", "month": [25] * 12, "weekday": [43] * 7, "hour": [12] * 24,
                               "typical_month": "Mar", "typical_weekday": "Mon", "typical_hour": 10},
                   "clusters": {str(c): {"count": 100, "missing_share": 0.0, "min": "2023-01-02T00:00:00",
                                         "max": "2024-12-30T00:00:00", "median": "2024-01-10T00:00:00", "month": [8] * 12,
                                         "weekday": [14] * 7, "hour": [4] * 24, "typical_month": m, "typical_weekday": "Mon",
                                         "typical_hour": 9 + c} for c, m in zip(CLUSTERS, ("Mar", "Jul", "Nov"))}},
        "review": {"kind": "text", "overall": {"count": 300, "missing_share": 0.0, "terms": [{"term": "delivery", "score": 0.2}],
                                               "mean_length": 80.0},
                   "clusters": {"0": {"terms": [{"term": t, "score": 0.3} for t in ("fast", "reliable", "premium")]},
                                "1": {"terms": [{"term": t, "score": 0.2} for t in ("cheap", "slow")]},
                                "2": {"terms": [{"term": t, "score": 0.25} for t in ("berlin", "delivery", "friendly")]}}},
        "photo": {"kind": "image", "overall": {"count": 300, "missing_share": 0.0},
                  "clusters": {str(c): {"count": 100, "missing_share": 0.0,
                                        "representative": [{"path": f"photos/{c}-1.png", "probability": 0.97}],
                                        "borderline": [{"path": f"photos/{c}-2.png", "probability": 0.51}]} for c in CLUSTERS}},
        "latitude:longitude": {"kind": "geo",
                               "overall": {"count": 300, "missing_share": 0.0, "centroid": {"lat": 47.4, "lon": -19.4},
                                           "spread_deg": 30.1, "spread_km": 3350.0},
                               "clusters": {str(c): {"count": 100, "missing_share": 0.0,
                                                     "centroid": {"lat": centres[c][0], "lon": centres[c][1]},
                                                     "spread_deg": 0.8, "spread_km": 89.0, "points": points(c)} for c in CLUSTERS}},
    }
    observations = {
        "0": [{"text": "100% of the cluster has plan=pro (31% overall)", "column": "plan", "feature": "plan=pro",
               "kind": "categorical", "direction": "higher", "cluster_value": 1.0, "overall_value": 0.31, "score": 2.2},
              {"text": "spend is on average 64% greater (mean 215 vs 131 overall)", "column": "spend", "feature": "spend",
               "kind": "numeric", "direction": "higher", "cluster_value": 215.3, "overall_value": 131.2, "score": 1.9}],
        "1": [{"text": "spend is on average 54% smaller (mean 60.4 vs 131 overall)", "column": "spend", "feature": "spend",
               "kind": "numeric", "direction": "lower", "cluster_value": 60.4, "overall_value": 131.2, "score": 1.7},
              {"text": "92% of the cluster has plan=basic (45% overall)", "column": "plan", "feature": "plan=basic",
               "kind": "categorical", "direction": "higher", "cluster_value": 0.92, "overall_value": 0.45, "score": 1.2}],
        "2": [{"text": "latitude:longitude is centred 1020 km from the overall centre (at 52.52, 13.40)",
               "column": "latitude:longitude", "feature": "latitude:longitude", "kind": "geo", "direction": "higher",
               "cluster_value": 1020.0, "overall_value": 0.0, "score": 2.5}],
    }
    features = ["spend", "plan=pro", "plan=basic", "signup", "latitude:longitude:latitude", "latitude:longitude:longitude"]
    heatmap = {"clusters": list(CLUSTERS), "features": features,
               "columns": ["spend", "plan", "plan", "signup", "latitude:longitude", "latitude:longitude"],
               "values": [[1.4, 1.5, -0.9, 0.1, -0.3, 0.2], [-1.2, -0.7, 1.1, -0.2, -0.6, -1.5], [-0.1, -0.6, -0.3, 0.2, 1.8, 0.9]]}
    impact = [{"column": "spend", "impact": 1.0, "changed_share": 0.41, "rmse": 0.37},
              {"column": "latitude:longitude", "impact": 0.72, "changed_share": 0.30, "rmse": 0.25},
              {"column": "plan", "impact": 0.55, "changed_share": 0.22, "rmse": 0.2},
              {"column": "review", "impact": 0.12, "changed_share": 0.05, "rmse": 0.04},
              {"column": "signup", "impact": 0.03, "changed_share": 0.01, "rmse": 0.01}]
    names = ["spend", "plan", "signup", "latitude:longitude", "spend_eur"]
    order = ["spend", "spend_eur", "plan", "signup", "latitude:longitude"]
    value = {("spend", "spend_eur"): 0.98, ("spend", "plan"): 0.4, ("plan", "spend_eur"): 0.39, ("plan", "latitude:longitude"): 0.2}
    matrix = [[1.0 if a == b else value.get((a, b), value.get((b, a), 0.05)) for b in names] for a in names]
    associations = {"columns": names, "order": order, "matrix": matrix, "method": "normalized mutual information",
                    "threshold": 0.8, "redundant": [{"a": "spend", "b": "spend_eur", "value": 0.98}]}
    clusters = [{"cluster_id": c, "name": NAMES[c], "name_source": "user" if c == 2 else "generated", "size": 100,
                 "share": round(1 / 3, 4)} for c in CLUSTERS]
    return {"format": "clustra-insights", "format_version": 1, "model_id": "kmeans-k3", "n_rows": 300,
            "columns": [{"name": n, "kind": e["kind"]} for n, e in columns.items()], "clusters": clusters, "noise": None,
            "profiles": {"columns": columns}, "observations": observations, "heatmap": heatmap,
            "feature_impact": impact, "associations": associations}


def selection_document(leaderboard: dict) -> dict:
    """A selection.json (docs/selection.md, format 1): per variant a list of points ascending in k."""
    curves: dict[str, list] = {}
    for entry in leaderboard["models"]:
        if entry.get("status") != "ok":
            continue  # failed models are left out
        curves.setdefault(entry["algorithm"], []).append({
            "k": entry["requested_clusters"], "n_clusters_found": entry["n_clusters"], "model_id": entry["model_id"],
            "algorithm": entry["algorithm"], "silhouette": entry["silhouette"], "davies_bouldin": entry["davies_bouldin"],
            "calinski_harabasz": entry["calinski_harabasz"], "stability": 0.9, "null_stability": 0.5,
            "stability_excess": 0.4, "bic": None, "icl": None})
    return {variant: sorted(points, key=lambda p: p["k"]) for variant, points in curves.items()}


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
        board.update(recommended="kmeans-k3", recommended_reason="the elbow of the silhouette curve")
    (run / "models").mkdir(parents=True)
    (run / "leaderboard.json").write_text(json.dumps(board))
    photos = root / "images" / "photos"
    photos.mkdir(parents=True)
    for c in CLUSTERS:
        for i in (1, 2):
            (photos / f"{c}-{i}.png").write_bytes(png((200 - 60 * c, 60 * i, 40 * c), side=120))
    (run / "run.json").write_text(json.dumps({"data": "customers/", "n_rows": 900, "config": {"image_root": str(root / "images")}}))
    if selection:
        (run / "selection.json").write_text(json.dumps(selection_document(board)))
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
        if entry["model_id"] == "kmeans-k3":  # a per-cluster probability per point (where the view has it)
            view["probabilities"] = probs.round(4).tolist()
            view["probability_clusters"] = list(range(k))
        (model_dir / "embedding_view.json").write_text(json.dumps(view))
        if insights and entry["model_id"] == "kmeans-k3":
            (model_dir / "insights.json").write_text(json.dumps(insights_document(seed)))
    return run
