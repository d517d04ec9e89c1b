"""The sections of ``insights.json`` and ``selection.json`` in one shape each, for the figures.

Each function takes the parsed file (or ``None``) and returns its section in the form the
figures draw, or ``None`` when the section is absent or empty ("not computed"). The shapes
are those of docs/insights.md and the selection file; a few spellings of the same content
(a mapping keyed by cluster id or a list of entries with ``cluster_id``) are accepted.
"""

from __future__ import annotations

import math
from typing import Any

NOISE = -1


def _cid(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _by_cluster(value: Any) -> dict[int, Any]:
    """``{"0": x}`` or ``[{"cluster_id": 0, ...}]`` as ``{0: x}``."""
    if isinstance(value, dict):
        return {cid: v for k, v in value.items() if (cid := _cid(k)) is not None}
    if isinstance(value, list):
        return {cid: v for v in value if isinstance(v, dict) and (cid := _cid(v.get("cluster_id"))) is not None}
    return {}


# -- profiles ------------------------------------------------------------------------------

def profile_columns(insights: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Profiles per original column: ``[{"column", "kind", "overall": {...}, "clusters": {id: {...}}}]``.

    Accepted: ``profiles`` as a list of column entries (``clusters`` a list or a mapping), as
    ``{"columns": [...]}``, or as ``{"overall": {COLUMN: stats}, "clusters": [{"cluster_id", "columns": {COLUMN: stats}}]}``.
    """
    profiles = (insights or {}).get("profiles")
    if isinstance(profiles, dict) and isinstance(profiles.get("columns"), dict):  # docs/insights.md
        profiles = [{"column": name, **entry} for name, entry in profiles["columns"].items() if isinstance(entry, dict)]
    if isinstance(profiles, dict) and isinstance(profiles.get("columns"), list):
        profiles = profiles["columns"]
    columns: list[dict[str, Any]] = []
    if isinstance(profiles, list):
        for entry in profiles:
            if isinstance(entry, dict) and entry.get("column") is not None:
                columns.append({
                    "column": str(entry["column"]), "kind": str(entry.get("kind", "numeric")),
                    "overall": entry.get("overall") or {}, "clusters": _by_cluster(entry.get("clusters")),
                })
    elif isinstance(profiles, dict) and ("overall" in profiles or "clusters" in profiles):
        overall = profiles.get("overall") or {}
        per_cluster = {cid: (v.get("columns") or v.get("features") or {}) for cid, v in _by_cluster(profiles.get("clusters")).items()}
        names = list(overall) + [c for stats in per_cluster.values() for c in stats if c not in overall]
        for name in dict.fromkeys(names):
            first = overall.get(name) or next((s[name] for s in per_cluster.values() if name in s), {})
            columns.append({
                "column": str(name), "kind": str(first.get("kind", "numeric")), "overall": overall.get(name) or {},
                "clusters": {cid: stats[name] for cid, stats in per_cluster.items() if name in stats},
            })
    return columns


def top_categories(stats: dict[str, Any]) -> list[tuple[str, float]]:
    """A categorical profile's ``[(value, share)]`` from ``top`` (list) or ``shares`` (mapping)."""
    top = stats.get("top") if stats.get("top") is not None else stats.get("shares")
    if isinstance(top, dict):
        pairs = [(str(k), _number(v)) for k, v in top.items()]
    elif isinstance(top, list):
        pairs = [(str(t.get("value")), _number(t.get("share"))) for t in top if isinstance(t, dict)]
    else:
        pairs = []
    return [(k, v) for k, v in pairs if v is not None]


def quartiles(stats: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """``(q1, median, q3)`` from ``quartiles`` or ``q1`` / ``median`` / ``q3``."""
    value = stats.get("quartiles")
    if isinstance(value, list) and len(value) == 3:
        return tuple(_number(v) for v in value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return _number(value.get("q1")), _number(value.get("median", value.get("q2"))), _number(value.get("q3"))
    return _number(stats.get("q1")), _number(stats.get("median")), _number(stats.get("q3"))


def histogram(stats: dict[str, Any], edges: list[float] | None = None) -> tuple[list[float], list[float]] | None:
    """``(bin edges, shares)`` of a numeric profile (counts normalized to shares)."""
    hist = stats.get("histogram")
    if not isinstance(hist, dict):
        return None
    edges = hist.get("bin_edges") or hist.get("edges") or edges
    counts = hist.get("counts") or hist.get("shares")
    if not isinstance(edges, list) or not isinstance(counts, list) or len(edges) != len(counts) + 1:
        return None
    total = sum(_number(c) or 0 for c in counts) or 1.0
    return [float(e) for e in edges], [(_number(c) or 0) / total for c in counts]


def geo_points(insights: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Points of each geo column: ``[{"column", "clusters": {id: {"lat": [...], "lon": [...]}}, "centroids": {...}}]``."""
    out = []
    for column in profile_columns(insights):
        if column["kind"] != "geo":
            continue
        clusters, centroids = {}, {}
        for cid, stats in column["clusters"].items():
            lat, lon = _latlon(stats.get("points"))
            if lat:
                clusters[cid] = {"lat": lat, "lon": lon}
            centre = stats.get("centroid")
            if isinstance(centre, dict):
                centre = (centre.get("lat"), centre.get("lon"))
            if isinstance(centre, (list, tuple)) and len(centre) == 2:
                y, x = _number(centre[0]), _number(centre[1])
                if y is not None and x is not None:
                    centroids[cid] = (y, x)
        if clusters or centroids:
            out.append({"column": column["column"], "clusters": clusters, "centroids": centroids})
    return out


def _latlon(points: Any) -> tuple[list[float], list[float]]:
    if isinstance(points, dict):
        points = list(zip(points.get("lat") or [], points.get("lon") or []))
    lat, lon = [], []
    for point in points or []:
        if isinstance(point, dict):
            point = (point.get("lat"), point.get("lon"))
        if isinstance(point, (list, tuple)) and len(point) == 2:
            y, x = _number(point[0]), _number(point[1])
            if y is not None and x is not None:  # null (non-finite) coordinates are left out
                lat.append(y)
                lon.append(x)
    return lat, lon


# -- observations, heatmap, feature impact, associations ----------------------------------

def observations(insights: dict[str, Any] | None) -> dict[int, list[str]] | None:
    """Sentences per cluster, most distinctive first."""
    value = (insights or {}).get("observations")
    grouped: dict[int, list[tuple[float, str]]] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and (cid := _cid(item.get("cluster_id"))) is not None:
                text = item.get("text") or item.get("sentence") or item.get("message")
                if text:
                    grouped.setdefault(cid, []).append((-(_number(item.get("score")) or 0.0), str(text)))
    elif isinstance(value, dict):
        for cid, items in _by_cluster(value).items():
            for rank, item in enumerate(items or []):
                text = item if isinstance(item, str) else (item.get("text") or item.get("sentence")) if isinstance(item, dict) else None
                if text:
                    grouped.setdefault(cid, []).append((float(rank), str(text)))
    if not grouped:
        return None
    if isinstance(value, list):  # a flat list is ranked by score
        return {cid: [t for _, t in sorted(items, key=lambda p: p[0])] for cid, items in sorted(grouped.items())}
    return {cid: [t for _, t in items] for cid, items in sorted(grouped.items())}


def heatmap(insights: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"clusters": [ids], "features": [names], "values": [[per feature] per cluster]}``."""
    value = (insights or {}).get("heatmap")
    if not isinstance(value, dict):
        return None
    features = value.get("features") or value.get("columns")
    clusters = value.get("clusters") or value.get("cluster_ids")
    values = value.get("values") or value.get("z") or value.get("matrix")
    if not features or not clusters or not isinstance(values, list):
        return None
    clusters = [_cid(c.get("cluster_id") if isinstance(c, dict) else c) for c in clusters]
    if len(values) != len(clusters) or any(len(row) != len(features) for row in values):
        return None
    return {"clusters": clusters, "features": [str(f) for f in features],
            "values": [[_number(v) for v in row] for row in values]}


def feature_impact(insights: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """``[{"column", "impact", ...}]``, largest impact first."""
    value = (insights or {}).get("feature_impact")
    if isinstance(value, dict):
        value = value.get("columns") or value.get("features")
    if not isinstance(value, list):
        return None
    rows = [dict(v) for v in value if isinstance(v, dict) and v.get("column") is not None and _number(v.get("impact")) is not None]
    return sorted(rows, key=lambda r: -float(r["impact"])) or None


def associations(insights: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"columns": [...], "matrix": [[...]], "redundant": [(a, b, value)]}``."""
    value = (insights or {}).get("associations")
    if not isinstance(value, dict):
        return None
    columns = value.get("columns") or value.get("features")
    matrix = value.get("matrix") or value.get("values")
    if not columns or not isinstance(matrix, list) or len(matrix) != len(columns):
        return None
    columns = [str(c) for c in columns]
    order = [str(c) for c in value.get("order") or []]
    if sorted(order) == sorted(columns) and order != columns:  # related columns adjacent
        index = [columns.index(c) for c in order]
        matrix = [[matrix[i][j] for j in index] for i in index]
        columns = order
    redundant = []
    for pair in value.get("redundant") or value.get("redundant_pairs") or []:
        if isinstance(pair, dict):
            names = pair.get("columns") or [pair.get("a", pair.get("column_a")), pair.get("b", pair.get("column_b"))]
            redundant.append((str(names[0]), str(names[1]), _number(pair.get("value", pair.get("association")))))
        elif isinstance(pair, (list, tuple)) and len(pair) >= 2:
            redundant.append((str(pair[0]), str(pair[1]), _number(pair[2]) if len(pair) > 2 else None))
    return {"columns": columns, "matrix": [[_number(v) for v in row] for row in matrix], "redundant": redundant,
            "statistic": value.get("method") or value.get("statistic"), "threshold": _number(value.get("threshold"))}


# -- selection ----------------------------------------------------------------------------

CURVE_METRICS = ("silhouette", "davies_bouldin", "calinski_harabasz")


def recommended_point(selection: dict[str, Any] | None, leaderboard: dict[str, Any], model_id: str | None) -> dict[str, Any] | None:
    """The recommended model's point on the curves (its ``k`` and metrics), when it has a cluster count."""
    if not model_id:
        return None
    candidates = [p for v in (selection or {}).values() if isinstance(v, list) for p in v if isinstance(p, dict)]
    candidates += [{**e, "k": e.get("requested_clusters")} for e in leaderboard.get("models") or []]
    point = next((p for p in candidates if p.get("model_id") == model_id and _number(p.get("k")) is not None), None)
    return {**point, "model_id": model_id} if point else None


def selection_curves(selection: dict[str, Any] | None, leaderboard: dict[str, Any]) -> tuple[dict[str, dict[str, list]], str]:
    """Per algorithm ``{"k": [...], METRIC: [...]}`` sorted by k, and where they come from.

    From ``selection.json``'s ``curves`` when the run has them (mapping algorithm -> columns
    or -> list of points, or a list of points with ``algorithm``), else from the leaderboard
    (one point per model with a requested cluster count).
    """
    curves = (selection or {}).get("curves")
    if curves is None and isinstance(selection, dict):  # docs/selection.md: variant -> list of points
        curves = {k: v for k, v in selection.items() if isinstance(v, list)}
    points: dict[str, list[dict[str, Any]]] = {}
    source = "selection"
    if isinstance(curves, dict):
        for algorithm, curve in curves.items():
            if isinstance(curve, dict) and isinstance(curve.get("k"), list):
                keys = [k for k, v in curve.items() if isinstance(v, list) and len(v) == len(curve["k"])]
                points[str(algorithm)] = [{key: curve[key][i] for key in keys} for i in range(len(curve["k"]))]
            elif isinstance(curve, list):
                points[str(algorithm)] = [p for p in curve if isinstance(p, dict)]
    elif isinstance(curves, list):
        for p in curves:
            if isinstance(p, dict) and p.get("algorithm"):
                points.setdefault(str(p["algorithm"]), []).append(p)
    if not points:
        source = "leaderboard"
        for entry in leaderboard.get("models") or []:
            if entry.get("status", "ok") == "ok" and entry.get("requested_clusters") is not None:
                points.setdefault(str(entry["algorithm"]), []).append({**entry, "k": entry["requested_clusters"]})
    out = {}
    for algorithm, items in points.items():
        items = sorted((p for p in items if _number(p.get("k", p.get("n_clusters"))) is not None),
                       key=lambda p: float(p.get("k", p.get("n_clusters"))))
        if items:
            columns = {"k": [p.get("k", p.get("n_clusters")) for p in items]}
            metrics = [m for m in dict.fromkeys(k for p in items for k in p) if m not in ("k", "n_clusters", "algorithm", "model_id")]
            for metric in metrics:
                values = [_number(p.get(metric)) for p in items]
                if any(v is not None for v in values) and all(not isinstance(p.get(metric), (str, dict, list)) for p in items):
                    columns[metric] = values
            out[algorithm] = columns
    return out, source
