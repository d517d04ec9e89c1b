"""Plain sentences about what sets each cluster apart, ranked by an effect size.

Every candidate has a ``score`` on one scale, the standardized difference of the cluster
from the whole sample (see docs/insights.md); each also carries a short ``phrase`` for
cluster names ("high spend", "plan=pro").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._columns import ColumnView, clean, geo_values, text_values
from .heatmap import ProfileFeature
from .profiles import EARTH_RADIUS_KM, class_tfidf, document_share, great_circle_deg, spherical_centroid

MAX_PER_CLUSTER = 10
MIN_SCORE = 0.2  # smaller effects are not worth a sentence


def _number(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.3g}"


def _date(seconds: float) -> str:
    return pd.Timestamp(int(seconds), unit="s").strftime("%Y-%m-%d")


def _feature_observation(feature: ProfileFeature, values: np.ndarray, member: np.ndarray) -> dict | None:
    present = ~np.isnan(values)
    inside = present & member
    if not inside.any() or present.sum() < 2:
        return None
    overall, std = float(values[present].mean()), float(values[present].std())
    cluster = float(values[inside].mean())
    if std <= 1e-12 * max(1.0, abs(overall)):
        return None
    score = abs(cluster - overall) / std
    higher = cluster > overall
    base = {"column": feature.column, "feature": feature.name, "kind": feature.kind, "direction": "higher" if higher else "lower",
            "cluster_value": clean(cluster), "overall_value": clean(overall), "score": clean(score, 4)}
    if feature.value is not None:  # an indicator: categorical value or boolean true
        label = feature.name if feature.kind == "categorical" else f"{feature.column}={feature.value}"
        text = f"{cluster:.0%} of the cluster has {label} ({overall:.0%} overall)"
        if feature.kind == "boolean":
            phrase = feature.column if higher else f"not {feature.column}"
        else:
            phrase = label if higher else f"not {label}"
        return {**base, "text": text, "phrase": phrase}
    if feature.kind == "datetime":
        median_c, median_o = np.median(values[inside]), np.median(values[present])
        text = f"{feature.column} is typically {'later' if higher else 'earlier'} (median {_date(median_c)} vs {_date(median_o)} overall)"
        return {**base, "text": text, "phrase": f"{'late' if higher else 'early'} {feature.column}"}
    if feature.kind == "geo":
        return None  # a point is described as a whole (see _geo_observation)
    if abs(overall) > 0.05 * std and np.sign(cluster) == np.sign(overall):
        change = abs(cluster / overall - 1.0)
        word = "greater" if higher else "smaller"
        text = f"{feature.column} is on average {change:.0%} {word} (mean {_number(cluster)} vs {_number(overall)} overall)"
    else:
        text = (f"{feature.column} is {score:.1f} standard deviations {'higher' if higher else 'lower'} "
                f"(mean {_number(cluster)} vs {_number(overall)} overall)")
    return {**base, "text": text, "phrase": f"{'high' if higher else 'low'} {feature.column}"}


def _geo_observation(view: ColumnView, lat: np.ndarray, lon: np.ndarray, member: np.ndarray) -> dict | None:
    present = ~(np.isnan(lat) | np.isnan(lon))
    inside = present & member
    if not inside.any() or present.sum() < 2:
        return None
    olat, olon = spherical_centroid(lat[present], lon[present])
    spread = float(np.sqrt(np.mean(great_circle_deg(lat[present], lon[present], olat, olon) ** 2)))
    clat, clon = spherical_centroid(lat[inside], lon[inside])
    offset = float(great_circle_deg(np.array([clat]), np.array([clon]), olat, olon)[0])
    if spread <= 1e-9:
        return None
    km = np.radians(offset) * EARTH_RADIUS_KM
    return {"column": view.name, "feature": view.name, "kind": "geo", "direction": "higher",
            "cluster_value": {"lat": clean(clat), "lon": clean(clon)}, "overall_value": {"lat": clean(olat), "lon": clean(olon)},
            "score": clean(offset / spread, 4),
            "text": f"{view.name} is centred {km:,.0f} km from the overall centre (at {clat:.2f}, {clon:.2f})",
            "phrase": f"{view.name} near ({clat:.1f}, {clon:.1f})"}


def _text_observations(view: ColumnView, frame: pd.DataFrame, labels: np.ndarray, clusters: list[int]) -> dict[int, dict]:
    texts = text_values(frame, view.featurizer.column)
    distinct, _, shares = class_tfidf(texts, labels, clusters)
    out = {}
    for c in clusters:
        terms = [t["term"] for t in distinct[c][:3]]
        if not terms:
            continue
        inside = shares[c].get(terms[0], 0.0)
        overall = document_share(texts, terms[0])
        if overall <= 0 or overall >= 1:
            continue
        score = (inside - overall) / np.sqrt(overall * (1 - overall))
        out[c] = {"column": view.name, "feature": view.name, "kind": "text", "direction": "higher" if score > 0 else "lower",
                  "cluster_value": clean(inside), "overall_value": clean(overall), "score": clean(abs(score), 4),
                  "text": f"{view.name} often uses the terms {', '.join(terms)} ({terms[0]!r} in {inside:.0%} of texts, "
                          f"{overall:.0%} overall)",
                  "phrase": f"{view.name}: {terms[0]}"}
    return out


def cluster_observations(views: list[ColumnView], features: list[ProfileFeature], frame: pd.DataFrame,
                         labels: np.ndarray, clusters: list[int]) -> dict[int, list[dict]]:
    """``{cluster: [observation, ...]}`` ranked by score, largest first (with ``phrase`` for naming)."""
    out: dict[int, list[dict]] = {c: [] for c in clusters}
    for c in clusters:
        member = labels == c
        for feature in features:
            found = _feature_observation(feature, feature.values, member)
            if found:
                out[c].append(found)
    for view in views:
        if view.kind == "geo":
            lat, lon = geo_values(view, frame)
            for c in clusters:
                found = _geo_observation(view, lat, lon, labels == c)
                if found:
                    out[c].append(found)
        elif view.kind == "text":
            for c, found in _text_observations(view, frame, labels, clusters).items():
                out[c].append(found)
    for c in clusters:
        ranked = sorted((o for o in out[c] if (o["score"] or 0) >= MIN_SCORE), key=lambda o: -(o["score"] or 0))
        out[c] = _one_per_indicator_pair(ranked)[:MAX_PER_CLUSTER]
    return out


def _one_per_indicator_pair(ranked: list[dict]) -> list[dict]:
    """Drop "lower" category sentences of a column that already has a "higher" one (they say the same thing)."""
    higher = {o["column"] for o in ranked if o["kind"] == "categorical" and o["direction"] == "higher"}
    return [o for o in ranked if not (o["kind"] == "categorical" and o["direction"] == "lower" and o["column"] in higher)]


def public(observations: dict[int, list[dict]]) -> dict[str, list[dict]]:
    """The JSON form: keyed by cluster id string, without the naming phrases."""
    return {str(c): [{k: v for k, v in o.items() if k != "phrase"} for o in items] for c, items in observations.items()}
