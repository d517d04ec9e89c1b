"""HTML of the report: the context of each section and the jinja2 templates that lay it out.

The web UI (``jobs/ui``) renders the same section templates (:data:`TEMPLATE_DIR`,
``_sections.html.j2``) with the same context (:func:`model_context`,
:func:`run_context`); only the page around them differs.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from . import _figures as fig
from . import _sections as sections
from ._load import ModelReport, RunReport

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
WORLD_MAP_FILE = STATIC_DIR / "world_110m.json"
METRIC_COLUMNS = ("silhouette", "davies_bouldin", "calinski_harabasz", "noise_fraction")


def plotly_js_path() -> Path:
    """The plotly.js bundle shipped inside the installed ``plotly`` package (no CDN)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise InvalidInputError(f"the plotly package at {str(path.parent)!r} has no plotly.min.js; reinstall plotly")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


class Figures:
    """Collects the figures of a page, each with an id unique in the page."""

    def __init__(self) -> None:
        self.geo = False

    def add(self, prefix: str, figure: dict[str, Any] | None) -> dict[str, str] | None:
        if figure is None:
            return None
        if any(trace.get("type") == "scattergeo" for trace in figure["data"]):
            self.geo = True
        return {"id": f"fig-{_slug(prefix)}", "json": fig.figure_json(figure)}


def _profile_entry(model: ModelReport, column: dict[str, Any], figures: Figures, names: dict[int, str]) -> dict[str, Any]:
    kind = column["kind"]
    entry: dict[str, Any] = {"column": column["column"], "kind": kind, "figure": None, "rows": [], "images": [],
                             "cell_class": "num" if kind == "numeric" else "text"}
    prefix = f"{model.model_id}-profile-{column['column']}"
    if kind == "numeric":
        entry["figure"] = figures.add(prefix, fig.numeric_profile_figure(column, names))
        for cid, stats in [(None, column["overall"])] + sorted(column["clusters"].items()):
            q1, median, q3 = sections.quartiles(stats)
            entry["rows"].append({**_row_label(cid, names), "cells": [_fmt(stats.get("mean")), _fmt(q1), _fmt(median), _fmt(q3)]})
        entry["header"] = ["mean", "q1", "median", "q3"]
    elif kind in ("categorical", "boolean"):
        entry["figure"] = figures.add(prefix, fig.categorical_profile_figure(column, names))
    else:
        entry["header"] = ["profile"]
        for cid, stats in [(None, column["overall"])] + sorted(column["clusters"].items()):
            label = "overall" if cid is None else fig.cluster_label(cid, names)
            text = _describe_stats(kind, stats)
            if text:
                entry["rows"].append({**_row_label(cid, names), "cells": [text]})
            if kind == "image" and cid is not None:
                for role in ("representative", "borderline"):
                    for image in stats.get(role) or []:
                        src = model.image_src(image) if isinstance(image, dict) else None
                        if src:
                            facts = [label, role, str(image.get("path") or "")]
                            if image.get("probability") is not None:
                                facts.append(f"probability {image['probability']:.2f}")
                            if image.get("distance") is not None:
                                facts.append(f"distance {image['distance']:.3g}")
                            entry["images"].append({"src": src, "role": role, "cluster": cid, "color": fig.cluster_color(cid),
                                                    "title": " · ".join(f for f in facts if f)})
    return entry


def _row_label(cluster_id: int | None, names: dict[int, str]) -> dict[str, Any]:
    """A profile table's row label: "overall", or the cluster's id and colour (its name on hover)."""
    if cluster_id is None:
        return {"label": "overall", "color": None, "title": "all rows"}
    return {"label": "noise" if cluster_id == -1 else str(cluster_id), "color": fig.cluster_color(cluster_id),
            "title": fig.cluster_label(cluster_id, names)}


def _describe_stats(kind: str, stats: dict[str, Any]) -> str:
    """One line for a profile without a chart (datetime, text, geo, image)."""
    if kind == "datetime":
        parts = []
        day = lambda v: str(v)[:10] if v else "?"  # noqa: E731 - ISO 8601: the date is enough here
        if stats.get("min") or stats.get("max"):
            parts.append(f"{day(stats.get('min'))} to {day(stats.get('max'))}")
        if stats.get("median"):
            parts.append(f"median {day(stats['median'])}")
        for key in ("month", "weekday", "hour"):
            value = stats.get(f"typical_{key}", stats.get(key))
            if value is not None:
                parts.append(f"typical {key}: {value}")
        return "; ".join(parts)
    if kind == "text":
        terms = stats.get("terms") or stats.get("top_terms") or []
        return ", ".join(str(t.get("term", t)) if isinstance(t, dict) else str(t) for t in terms[:12])
    if kind == "geo":
        centre = stats.get("centroid")
        if isinstance(centre, dict):
            centre = (centre.get("lat"), centre.get("lon"))
        spread = stats.get("spread_deg", stats.get("spread"))
        parts = []
        if isinstance(centre, (list, tuple)) and len(centre) == 2 and None not in centre:
            parts.append(f"centre {float(centre[0]):.3f}, {float(centre[1]):.3f}")
        if spread is not None:
            parts.append(f"spread {_fmt(spread)}°")
        return "; ".join(parts)
    if kind == "image":
        return f"{len(stats.get('representative') or [])} representative, {len(stats.get('borderline') or [])} borderline images"
    return ", ".join(f"{k}={_fmt(v)}" for k, v in stats.items() if not isinstance(v, (dict, list)))


def _fmt(value: Any) -> str:
    number = sections._number(value)
    if number is None:
        return "" if value is None else str(value)
    if abs(number) >= 1e5 or (0 < abs(number) < 1e-3):
        return f"{number:.3g}"
    return f"{number:,.3f}".rstrip("0").rstrip(".") if not float(number).is_integer() else f"{number:,.0f}"


def _galleries(model: ModelReport, names: dict[int, str]) -> list[dict[str, Any]]:
    out = []
    for column, clusters in ((model.view or {}).get("galleries") or {}).items():
        rows = []
        for cluster in clusters or []:
            cid = int(cluster["cluster_id"])
            images = []
            for image in cluster.get("images") or []:
                src = model.image_src(image)
                if not src:
                    continue
                facts = [fig.cluster_label(cid, names), str(image.get("source", ""))]
                if image.get("probability") is not None:
                    facts.append(f"probability {image['probability']:.2f}")
                if image.get("distance") is not None:
                    facts.append(f"distance {image['distance']:.3g}")
                images.append({"src": src, "title": " · ".join(f for f in facts if f)})
            rows.append({"cluster": cid, "label": fig.cluster_label(cid, names), "color": fig.cluster_color(cid), "images": images})
        out.append({"column": column, "clusters": rows})
    return out


def model_context(model: ModelReport, figures: Figures | None = None) -> dict[str, Any]:
    """What the model section templates show of one model; ``None`` values are "not computed"."""
    figures = figures or Figures()
    names = model.cluster_names()
    insights = model.insights
    observed = sections.observations(insights)
    clusters = []
    sizes = {int(c["cluster_id"]): c for c in (model.model or {}).get("clusters") or []}
    for cid in model.cluster_ids():
        info = sizes.get(cid, {})
        clusters.append({
            "id": cid, "name": names.get(cid, ""), "label": fig.cluster_label(cid, names), "color": fig.cluster_color(cid),
            "size": info.get("size", (model.entry.get("cluster_sizes") or {}).get(str(cid))),
            "share": info.get("share"), "observations": (observed or {}).get(cid, [])[:3],
        })
    heat = sections.heatmap(insights)
    impact = sections.feature_impact(insights)
    assoc = sections.associations(insights)
    profiles = [_profile_entry(model, column, figures, names) for column in sections.profile_columns(insights)]
    geo = [{"column": g["column"], "figure": figures.add(f"{model.model_id}-geo-{g['column']}", fig.geo_figure(g, names))}
           for g in sections.geo_points(insights)]
    metrics = [(m, model.entry.get(m)) for m in METRIC_COLUMNS if model.entry.get(m) is not None]
    return {
        "id": model.model_id, "slug": _slug(model.model_id), "ok": model.ok, "entry": model.entry,
        "algorithm": model.entry.get("algorithm"), "n_clusters": model.entry.get("n_clusters"),
        "best": model.best, "recommended": model.recommended, "metrics": metrics, "clusters": clusters,
        "has_insights": insights is not None,
        "embedding": figures.add(f"{model.model_id}-embedding", fig.embedding_figure(model)),
        "embedding_points": (model.view or {}).get("n_points"),
        "per_cluster_probability": isinstance((model.view or {}).get("probabilities"), list),
        "observations": [{"label": fig.cluster_label(c, names), "color": fig.cluster_color(c), "items": items}
                         for c, items in observed.items()] if observed else None,
        "profiles": profiles or None,
        "heatmap": figures.add(f"{model.model_id}-heatmap", fig.heatmap_figure(heat, names)) if heat else None,
        "impact": figures.add(f"{model.model_id}-impact", fig.impact_figure(impact)) if impact else None,
        "impact_rows": impact,
        "associations": figures.add(f"{model.model_id}-associations", fig.associations_figure(assoc)) if assoc else None,
        "redundant": assoc["redundant"] if assoc else [],
        "association_method": assoc.get("statistic") if assoc else None,
        "association_threshold": assoc.get("threshold") if assoc else None,
        "galleries": _galleries(model, names) or None,
        "geo": geo or None,
    }


def run_context(report: RunReport, figures: Figures | None = None) -> dict[str, Any]:
    """The run-level sections: leaderboard and selection curves."""
    figures = figures or Figures()
    curves, source = sections.selection_curves(report.selection, report.leaderboard)
    recommended = report.recommended
    marked = sections.recommended_point(report.selection, report.leaderboard, recommended)
    reason = report.leaderboard.get("recommended_reason")
    return {
        "run_dir": str(report.run_dir), "metric": report.leaderboard.get("metric", "silhouette"),
        "best": report.leaderboard.get("best"), "recommended": recommended, "recommendation_reason": reason,
        "models": report.leaderboard.get("models") or [], "metric_columns": METRIC_COLUMNS,
        "selection": figures.add("selection", fig.selection_figure(curves, marked)) if curves else None,
        "selection_source": source, "has_selection_file": report.selection is not None,
        "data": (report.run or {}).get("data") or (report.series or {}).get("data"), "n_rows": (report.run or {}).get("n_rows"),
        "series": series_context(report, figures),
    }


def series_context(report: RunReport, figures: Figures | None = None) -> dict[str, Any] | None:
    """The series section of a series run (``None`` for other runs): how series were read, and each
    cluster's typical shape and spread per value column (``series_profiles.json``)."""
    summary = report.series
    if summary is None:
        return None
    figures = figures or Figures()
    profiles = report.series_profiles or {}
    names = {int(c["cluster_id"]): str(c["cluster_name"]) for c in profiles.get("clusters") or []
             if c.get("cluster_name") and int(c["cluster_id"]) >= 0}
    values = list(summary.get("values") or [])
    shapes = [{"column": v, "figure": figures.add(f"series-{v}", fig.series_profile_figure(profiles, v, names))} for v in values]
    clusters = []
    for cluster in profiles.get("clusters") or []:
        cid = int(cluster["cluster_id"])
        spread = {v: sum(band["std"]) / max(len(band["std"]), 1) for v, band in (cluster.get("values") or {}).items()}
        clusters.append({"id": cid, "label": fig.cluster_label(cid, names), "color": fig.cluster_color(cid),
                         "n_series": cluster.get("n_series"), "spread": [spread.get(v) for v in values]})
    settings = summary.get("settings") or {}
    return {
        "method": summary.get("method"), "model_id": summary.get("model_id"), "values": values,
        "series_id": settings.get("series_id"), "time": settings.get("time"), "length": profiles.get("length"),
        "n_series": summary.get("n_series"), "n_kept": summary.get("n_series_kept"), "n_dropped": summary.get("n_series_dropped"),
        "dropped": (summary.get("dropped") or [])[:20], "resampling": summary.get("resampling"),
        "shapes": [s for s in shapes if s["figure"]] or None, "clusters": clusters,
    }


@lru_cache(maxsize=1)
def environment() -> Any:
    """The jinja2 environment of the report templates (autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    install_filters(env)
    return env


def install_filters(env: Any) -> None:
    """The filters the section templates use (the web UI installs them in its own environment)."""
    env.filters["fmt"] = _fmt
    env.filters["pct"] = lambda v: "" if sections._number(v) is None else f"{float(v) * 100:.0f}%"


def render_report(report: RunReport, *, plotly_js: str | None = None) -> str:
    """The whole report as one self-contained HTML page (plotly.js, styles and scripts inline)."""
    figures = Figures()
    run = run_context(report, figures)
    models = [model_context(m, figures) for m in report.models]
    assets = {
        "plotly_js": plotly_js if plotly_js is not None else plotly_js_path().read_text(encoding="utf-8"),
        "css": (STATIC_DIR / "report.css").read_text(), "js": (STATIC_DIR / "report.js").read_text(),
        "world_map": WORLD_MAP_FILE.read_text() if figures.geo else None,
    }
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    anchors = {m["id"]: f"#model-{m['slug']}" for m in models}
    return environment().get_template("report.html.j2").render(run=run, models=models, assets=assets, created=created,
                                                               editable=False, model_href=anchors.get)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike, *, model_ids: list[str] | None = None,
                 overwrite: bool = False) -> Path:
    """Write the report of a run to ``out`` (an ``.html`` file), atomically.

    Raises
    ------
    InvalidInputError
        ``out`` exists without ``overwrite``, its folder is missing, or the run / a model id is unknown.
    """
    from .._state import check_output
    from ._load import load_run_report

    out = check_output(out, overwrite=overwrite)
    if out.is_dir():
        raise InvalidInputError(f"{str(out)!r} is a directory; give the report's file name, e.g. report.html", field="output")
    if not out.parent.is_dir():
        raise InvalidInputError(f"the folder of {str(out)!r} does not exist", field="output")
    html = render_report(load_run_report(run_dir, model_ids))
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, out)
    return out
