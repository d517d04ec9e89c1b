"""Plotly figures of the report, as JSON-ready dicts (``{"data": [...], "layout": {...}}``).

Every figure colours a cluster the same way (:func:`cluster_colors`) and writes no
reference to another host: the pages load plotly.js themselves and hand plotly.js the
world map it needs for geo points (``static/world_110m.json``).
"""

from __future__ import annotations

import json
from typing import Any

from ._load import ModelReport
from ._sections import NOISE, _number, histogram, quartiles, top_categories

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#e6550d", "#31a354", "#756bb1", "#637939", "#843c39", "#7b4173", "#3182bd", "#fd8d3c", "#74c476", "#9e9ac8",
)
NOISE_COLOR = "#9e9e9e"
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def cluster_color(cluster_id: int) -> str:
    """The colour of a cluster in every figure and gallery frame (grey for noise)."""
    return NOISE_COLOR if cluster_id == NOISE else PALETTE[cluster_id % len(PALETTE)]


def cluster_label(cluster_id: int, names: dict[int, str]) -> str:
    """``"2 · high spend"``; ``"noise"`` for -1."""
    if cluster_id == NOISE:
        return "noise"
    name = names.get(cluster_id)
    return f"{cluster_id} · {name}" if name else f"cluster {cluster_id}"


def short(text: str, width: int = 28) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (axis labels; hovers keep the full text)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _unique_short(values: list[str], width: int) -> list[str]:
    out, seen = [], set()
    for value in values:
        label = short(value, width)
        while label in seen:
            label += "\u200b"  # a zero-width space keeps two cut labels apart
        seen.add(label)
        out.append(label)
    return out


def _layout(title: str | None = None, height: int = 360, **extra: Any) -> dict[str, Any]:
    layout = {"height": height, "margin": {"l": 50, "r": 20, "t": 40 if title else 16, "b": 40}, "font": FONT,
              "paper_bgcolor": "white", "plot_bgcolor": "white", "hovermode": "closest",
              "legend": {"itemsizing": "constant"}}
    if title:
        layout["title"] = {"text": title, "x": 0.01, "font": {"size": 14}}
    layout.update(extra)
    return layout


def _axis(title: str | None = None, **extra: Any) -> dict[str, Any]:
    axis = {"gridcolor": "#eceff1", "zerolinecolor": "#cfd8dc"}
    if title:
        axis["title"] = {"text": title}
    axis.update(extra)
    return axis


# -- run level -----------------------------------------------------------------------------

METRIC_LABELS = {"silhouette": "silhouette ↑", "davies_bouldin": "Davies-Bouldin ↓", "calinski_harabasz": "Calinski-Harabasz ↑",
                 "stability": "stability ↑", "stability_excess": "stability excess ↑", "bic": "BIC ↓", "icl": "ICL ↓"}


SELECTION_METRICS = ("silhouette", "davies_bouldin", "calinski_harabasz", "stability", "stability_excess", "bic", "icl")
PANELS_PER_ROW = 3


def selection_figure(curves: dict[str, dict[str, list]], marked: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """One panel per metric (three per row), one line per algorithm variant, the metric against k."""
    present = set(k for c in curves.values() for k in c if k != "k")
    metrics = [m for m in SELECTION_METRICS if m in present][:6]
    if not metrics:
        return None
    rows = -(-len(metrics) // PANELS_PER_ROW)
    columns = min(len(metrics), PANELS_PER_ROW)
    gap, vgap = 0.07, 0.16 if rows > 1 else 0.0
    width = (1 - gap * (columns - 1)) / columns
    height = (1 - vgap * (rows - 1)) / rows
    data, layout = [], _layout(height=40 + 280 * rows, legend={"orientation": "h", "y": -0.12 if rows > 1 else -0.22})
    for i, metric in enumerate(metrics):
        suffix = "" if i == 0 else str(i + 1)
        row, column = divmod(i, PANELS_PER_ROW)
        start, top = column * (width + gap), 1 - row * (height + vgap)
        layout[f"xaxis{suffix}"] = _axis("clusters (k)", domain=[start, start + width], anchor=f"y{suffix}",
                                         dtick=1 if _small_k(curves) else None)
        layout[f"yaxis{suffix}"] = _axis(METRIC_LABELS.get(metric, metric), anchor=f"x{suffix}", domain=[top - height, top])
        for j, (algorithm, curve) in enumerate(sorted(curves.items())):
            if metric not in curve:
                continue
            data.append({"type": "scatter", "mode": "lines+markers", "name": algorithm, "legendgroup": algorithm,
                         "showlegend": i == 0, "x": curve["k"], "y": curve[metric], "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                         "line": {"color": PALETTE[j % len(PALETTE)]},
                         "hovertemplate": f"{algorithm}<br>k=%{{x}}<br>{metric}=%{{y:.3f}}<extra></extra>"})
        if marked and metric in marked:
            data.append({"type": "scatter", "mode": "markers", "name": f"recommended ({marked['model_id']})",
                         "legendgroup": "recommended", "showlegend": i == 0, "x": [marked["k"]], "y": [marked[metric]],
                         "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                         "marker": {"symbol": "star", "size": 16, "color": "#ffb300", "line": {"color": "#5d4037", "width": 1}},
                         "hovertemplate": f"recommended {marked['model_id']}<extra></extra>"})
    return {"data": data, "layout": layout}


def _small_k(curves: dict[str, dict[str, list]]) -> bool:
    ks = [k for c in curves.values() for k in c["k"] if _number(k) is not None]
    return bool(ks) and max(ks) - min(ks) <= 20


# -- one model -----------------------------------------------------------------------------

def embedding_figure(model: ModelReport) -> dict[str, Any] | None:
    """The 2-D embedding view: one trace per cluster; hover shows the cluster, its name and
    the membership probability per cluster (``probabilities``) or of the assigned cluster."""
    view = model.view or {}
    xs, ys, labels = view.get("x") or [], view.get("y") or [], view.get("cluster") or []
    if not xs or len(xs) != len(ys) or len(xs) != len(labels):
        return None
    names = model.cluster_names()
    per_cluster = view.get("probabilities")
    order = [int(c) for c in (view.get("probability_clusters") or sorted({int(c) for c in labels if int(c) != NOISE}))]
    single = view.get("probability")
    distance = view.get("distance")
    data = []
    for cid in sorted({int(c) for c in labels}):
        rows = [i for i, c in enumerate(labels) if int(c) == cid]
        texts = []
        for i in rows:
            lines = [f"<b>{cluster_label(cid, names)}</b>"]
            if isinstance(per_cluster, list) and i < len(per_cluster) and isinstance(per_cluster[i], list):
                ranked = sorted(zip(order, per_cluster[i]), key=lambda p: -(p[1] or 0))[:5]
                lines += [f"P({cluster_label(c, names)}) = {p:.2f}" for c, p in ranked if p is not None]
            elif isinstance(single, list) and single[i] is not None:
                lines.append(f"membership probability {single[i]:.2f}")
            if isinstance(distance, list) and distance[i] is not None:
                lines.append(f"distance to centre {distance[i]:.3g}")
            texts.append("<br>".join(lines))
        data.append({"type": "scatter", "mode": "markers", "name": cluster_label(cid, names),
                     "x": [xs[i] for i in rows], "y": [ys[i] for i in rows], "text": texts, "hoverinfo": "text",
                     "marker": {"color": cluster_color(cid), "size": 6, "opacity": 0.8, "line": {"width": 0}}})
    axes = view.get("axes") or ["dim1", "dim2"]
    ratio = view.get("explained_variance_ratio") or []
    titles = [f"{axis} ({ratio[i] * 100:.0f}% of variance)" if i < len(ratio) and ratio[i] else axis for i, axis in enumerate(axes[:2])]
    return {"data": data, "layout": _layout(height=460, xaxis=_axis(titles[0]), yaxis=_axis(titles[1]))}


def heatmap_figure(section: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """Clusters x features, the standardized difference from the overall mean (red above, blue below)."""
    values = section["values"]
    limit = max((abs(v) for row in values for v in row if v is not None), default=1.0) or 1.0
    full = [cluster_label(c, names) for c in section["clusters"]]
    labels = _unique_short(full, 30)
    features = _unique_short(section["features"], 30)
    text = [[f"{full[i]}<br>{feature}" for feature in section["features"]] for i in range(len(full))]
    data = [{"type": "heatmap", "z": values, "x": features, "y": labels, "zmid": 0, "zmin": -limit, "zmax": limit,
             "colorscale": "RdBu_r", "colorbar": {"title": {"text": "std. diff."}}, "text": text,
             "hovertemplate": "%{text}: %{z:.2f} sd<extra></extra>"}]
    longest = max((len(f) for f in features), default=8)
    bottom = min(200, 40 + 4 * longest)  # room for the slanted feature names
    height = max(240, bottom + 30 + 28 * len(labels))
    return {"data": data, "layout": _layout(height=height, margin={"l": 220, "r": 20, "t": 16, "b": bottom},
                                            xaxis=_axis(tickangle=-35), yaxis=_axis(autorange="reversed"))}


def impact_figure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars, the most important column on top."""
    rows = rows[:30]
    data = [{"type": "bar", "orientation": "h", "x": [float(r["impact"]) for r in rows], "y": [str(r["column"]) for r in rows],
             "marker": {"color": "#1f77b4"}, "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}]
    return {"data": data, "layout": _layout(height=max(200, 50 + 24 * len(rows)), margin={"l": 180, "r": 20, "t": 16, "b": 40},
                                            xaxis=_axis("impact (normalized to the largest)"), yaxis=_axis(autorange="reversed"))}


def associations_figure(section: dict[str, Any]) -> dict[str, Any]:
    """The symmetric association matrix in the section's order (related columns together)."""
    columns = section["columns"]
    data = [{"type": "heatmap", "z": section["matrix"], "x": columns, "y": columns, "zmin": 0, "zmax": 1,
             "colorscale": "Viridis", "colorbar": {"thickness": 14},
             "hovertemplate": "%{x} · %{y}: %{z:.2f}<extra></extra>"}]
    longest = max((len(c) for c in columns), default=8)
    margin = min(200, 30 + 6 * longest)
    side = min(720, max(300, margin + 40 + 26 * len(columns)))
    return {"data": data, "layout": _layout(height=side, margin={"l": margin, "r": 20, "t": 16, "b": margin},
                                            xaxis=_axis(tickangle=-40), yaxis=_axis(autorange="reversed"))}


def geo_figure(column: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """The points of a geo column on a world map (scattergeo, no tiles), one trace per cluster."""
    data = []
    for cid, points in sorted(column["clusters"].items()):
        data.append({"type": "scattergeo", "mode": "markers", "name": cluster_label(cid, names), "lat": points["lat"],
                     "lon": points["lon"], "marker": {"color": cluster_color(cid), "size": 6, "opacity": 0.75},
                     "hovertemplate": f"{cluster_label(cid, names)}<br>%{{lat:.3f}}, %{{lon:.3f}}<extra></extra>"})
    for cid, (lat, lon) in sorted(column["centroids"].items()):
        data.append({"type": "scattergeo", "mode": "markers", "name": f"centre of {cluster_label(cid, names)}",
                     "lat": [lat], "lon": [lon], "showlegend": False,
                     "marker": {"color": cluster_color(cid), "size": 14, "symbol": "x", "line": {"width": 2, "color": "black"}},
                     "hovertemplate": f"centre of {cluster_label(cid, names)}<br>%{{lat:.3f}}, %{{lon:.3f}}<extra></extra>"})
    lats = [v for p in column["clusters"].values() for v in p["lat"]] + [c[0] for c in column["centroids"].values()]
    lons = [v for p in column["clusters"].values() for v in p["lon"]] + [c[1] for c in column["centroids"].values()]
    geo = {"projection": {"type": "natural earth"}, "showland": True, "landcolor": "#eef2e6", "showcountries": True,
           "countrycolor": "#b0bec5", "showocean": True, "oceancolor": "#e3f2fd", "coastlinecolor": "#90a4ae"}
    if lats:
        geo["lataxis"], geo["lonaxis"] = _map_ranges(lats, lons)
    return {"data": data, "layout": _layout(height=420, geo=geo, margin={"l": 0, "r": 0, "t": 10, "b": 0})}


def _map_ranges(lats: list[float], lons: list[float], aspect: float = 2.2) -> tuple[dict, dict]:
    """Latitude and longitude ranges around the points, widened towards the map's aspect (lon : lat)."""
    lat_span = max(4.0, (max(lats) - min(lats)) * 1.3)
    lon_span = max(4.0, (max(lons) - min(lons)) * 1.3)
    lat_span, lon_span = max(lat_span, lon_span / aspect), max(lon_span, lat_span * aspect)
    lat_mid, lon_mid = (max(lats) + min(lats)) / 2, (max(lons) + min(lons)) / 2
    lat = [max(-90.0, lat_mid - lat_span / 2), min(90.0, lat_mid + lat_span / 2)]
    lon = [max(-180.0, lon_mid - lon_span / 2), min(180.0, lon_mid + lon_span / 2)]
    return {"range": lat, "showgrid": True, "gridcolor": "#eceff1"}, {"range": lon, "showgrid": True, "gridcolor": "#eceff1"}


def numeric_profile_figure(column: dict[str, Any], names: dict[int, str]) -> dict[str, Any] | None:
    """Share of rows per bin (shared bins), overall in grey and one line per cluster."""
    overall = histogram(column["overall"])
    edges = overall[0] if overall else None
    series = []
    if overall:
        series.append(("overall", "#616161", overall, "dot"))
    for cid, stats in sorted(column["clusters"].items()):
        hist = histogram(stats, edges)
        if hist:
            series.append((cluster_label(cid, names), cluster_color(cid), hist, "solid"))
    if not series:
        return box_figure(column, names)
    data = []
    for name, color, (bin_edges, shares), dash in series:
        centres = [(a + b) / 2 for a, b in zip(bin_edges[:-1], bin_edges[1:])]
        data.append({"type": "scatter", "mode": "lines", "line": {"shape": "hvh", "color": color, "dash": dash, "width": 2},
                     "name": name, "x": centres, "y": shares, "hovertemplate": f"{name}<br>%{{x:.3g}}: %{{y:.0%}}<extra></extra>"})
    return {"data": data, "layout": _layout(height=220, showlegend=False, xaxis=_axis(), yaxis=_axis(tickformat=".0%"))}


def box_figure(column: dict[str, Any], names: dict[int, str]) -> dict[str, Any] | None:
    """Quartile boxes per cluster when the profile has no histogram."""
    data = []
    for label, color, stats in [("overall", "#616161", column["overall"])] + [
            (cluster_label(c, names), cluster_color(c), s) for c, s in sorted(column["clusters"].items())]:
        q1, median, q3 = quartiles(stats)
        if None in (q1, median, q3):
            continue
        data.append({"type": "box", "name": label, "q1": [q1], "median": [median], "q3": [q3],
                     "lowerfence": [_number(stats.get("min")) if _number(stats.get("min")) is not None else q1],
                     "upperfence": [_number(stats.get("max")) if _number(stats.get("max")) is not None else q3],
                     "mean": [_number(stats.get("mean"))] if _number(stats.get("mean")) is not None else None,
                     "marker": {"color": color}, "orientation": "h"})
    if not data:
        return None
    return {"data": data, "layout": _layout(height=max(200, 40 + 30 * len(data)), showlegend=False,
                                            margin={"l": 200, "r": 20, "t": 16, "b": 30})}


def categorical_profile_figure(column: dict[str, Any], names: dict[int, str]) -> dict[str, Any] | None:
    """Share of the top categories, overall and per cluster (grouped bars)."""
    categories = [v for v, _ in top_categories(column["overall"])][:8]
    if not categories:
        categories = list(dict.fromkeys(v for s in column["clusters"].values() for v, _ in top_categories(s)))[:8]
    if not categories:
        return None
    data = []
    ticks = _unique_short(categories, 14)
    for label, color, stats in [("overall", "#9e9e9e", column["overall"])] + [
            (cluster_label(c, names), cluster_color(c), s) for c, s in sorted(column["clusters"].items())]:
        shares = dict(top_categories(stats))
        if shares:
            data.append({"type": "bar", "name": label, "x": ticks, "y": [shares.get(v, 0.0) for v in categories],
                         "customdata": categories, "marker": {"color": color},
                         "hovertemplate": f"{label}<br>%{{customdata}}: %{{y:.0%}}<extra></extra>"})
    bottom = 30 + 5 * max(len(t) for t in ticks)  # room for slanted labels
    return {"data": data, "layout": _layout(height=190 + bottom, barmode="group", showlegend=False, xaxis=_axis(),
                                            yaxis=_axis(tickformat=".0%"), margin={"l": 50, "r": 20, "t": 16, "b": bottom})}


# -- series runs ---------------------------------------------------------------------------

SERIES_PANELS_PER_ROW = 4


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def series_profile_figure(profiles: dict[str, Any], column: str, names: dict[int, str]) -> dict[str, Any] | None:
    """One panel per cluster (four per row): the cluster's mean z-normalized shape of ``column``
    as a line, its 10th-90th percentile band shaded, along the fraction of each series' span
    (``series_profiles.json``, :func:`cluster_core.series.profiles.cluster_profiles`)."""
    clusters = [c for c in profiles.get("clusters") or [] if column in (c.get("values") or {})]
    if not clusters:
        return None
    rows = -(-len(clusters) // SERIES_PANELS_PER_ROW)
    columns = min(len(clusters), SERIES_PANELS_PER_ROW)
    gap, vgap = 0.05, 0.22 / rows if rows > 1 else 0.0
    width, height = (1 - gap * (columns - 1)) / columns, (1 - vgap * (rows - 1)) / rows
    data, annotations = [], []
    layout = _layout(height=40 + 220 * rows, showlegend=False, margin={"l": 50, "r": 20, "t": 36, "b": 40})
    for i, cluster in enumerate(clusters):
        suffix = "" if i == 0 else str(i + 1)
        row, col = divmod(i, SERIES_PANELS_PER_ROW)
        left, top = col * (width + gap), 1 - row * (height + vgap)
        band = cluster["values"][column]
        position = [j / max(len(band["mean"]) - 1, 1) for j in range(len(band["mean"]))]
        cid = int(cluster["cluster_id"])
        color, label = cluster_color(cid), cluster_label(cid, names)
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        layout[f"xaxis{suffix}"] = _axis("span" if row == rows - 1 else None, domain=[left, left + width],
                                         anchor=f"y{suffix}", tickformat=".0%", range=[0, 1])
        shared = {"matches": "y"} if i else {}  # one scale for every panel: shapes compare across clusters
        layout[f"yaxis{suffix}"] = _axis("z" if col == 0 else None, domain=[top - height, top], anchor=f"x{suffix}", **shared)
        data.append({"type": "scatter", "mode": "lines", "x": position, "y": band["p10"], "line": {"width": 0},
                     "hoverinfo": "skip", **axes})
        data.append({"type": "scatter", "mode": "lines", "x": position, "y": band["p90"], "line": {"width": 0},
                     "fill": "tonexty", "fillcolor": _rgba(color, 0.2), "name": f"{label} p10-p90", "hoverinfo": "skip", **axes})
        data.append({"type": "scatter", "mode": "lines", "x": position, "y": band["mean"], "line": {"color": color, "width": 2},
                     "name": label, "customdata": band["std"],
                     "hovertemplate": f"{label}<br>%{{x:.0%}} of the span<br>mean %{{y:.2f}}, std %{{customdata:.2f}}<extra></extra>",
                     **axes})
        annotations.append({"text": f"{short(label, 24)} · {cluster.get('n_series')} series", "showarrow": False,
                            "x": left + width / 2, "y": top, "xref": "paper", "yref": "paper", "yanchor": "bottom",
                            "font": {"size": 12, "color": color}})
    layout["annotations"] = annotations
    return {"data": data, "layout": layout}


def figure_json(figure: dict[str, Any]) -> str:
    """The figure as JSON safe inside ``<script type="application/json">``."""
    return json.dumps(figure, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
