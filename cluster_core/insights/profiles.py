"""Per-cluster and overall profiles of every original column, in the data's own units.

See docs/insights.md (``profiles``) for the schema each kind produces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._columns import (
    ColumnView, boolean_values, clean, datetime_values, geo_values, image_values, label_values, numeric_values, text_values,
)

HISTOGRAM_BINS = 20
TOP_CATEGORIES = 10
TOP_TERMS = 10
IMAGES_PER_CLUSTER = 8
MAP_POINTS = 200
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
EARTH_RADIUS_KM = 6371.0088


def _missing(mask: np.ndarray) -> dict:
    n = len(mask)
    return {"count": int(n - mask.sum()), "missing_share": clean(mask.sum() / n) if n else 0.0}


# -- numeric -------------------------------------------------------------------------------
def numeric_profile(values: np.ndarray, edges: np.ndarray) -> dict:
    """Mean, spread, quartiles and counts on the shared ``edges`` (:func:`numeric_profiles` of one group)."""
    values = np.asarray(values, np.float64)
    return numeric_profiles(values, np.zeros(values.shape[0], np.int64), [0], edges)[0]


QUARTILES = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def numeric_profiles(values: np.ndarray, labels: np.ndarray, clusters: list[int], edges: np.ndarray) -> dict:
    """Per cluster of ``clusters``: missing share, mean, spread, quartiles and histogram counts on the
    shared ``edges`` of its values, from one sort of the column.

    A profile per cluster and column computed with ``np.quantile`` and ``np.histogram`` is a dozen
    numpy calls, mostly their overhead (64 clusters x 32 columns: ~0.3 s). Here the quartiles and
    histograms of every cluster come from the column sorted by (cluster, value): the quartiles
    with numpy's own linear interpolation (``(n - 1) q``, its neighbours, ``_lerp``), the
    histogram counts from each value's bin (``edges[i] <= v < edges[i + 1]``, the last bin
    closed, as ``np.histogram`` with given edges), so every number is the one those calls give
    (tested); the mean and spread are numpy's on each cluster's values in their order.
    """
    values = np.asarray(values, np.float64)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    grouped, grouped_labels = values[order], labels[order]
    present = ~np.isnan(grouped)
    values_present, labels_present = grouped[present], grouped_labels[present]
    ascending = values_present[np.lexsort((values_present, labels_present))]
    wanted = np.asarray(clusters, dtype=labels.dtype if labels.size else np.int64)
    starts, ends = np.searchsorted(grouped_labels, wanted, "left"), np.searchsorted(grouped_labels, wanted, "right")
    firsts, lasts = np.searchsorted(labels_present, wanted, "left"), np.searchsorted(labels_present, wanted, "right")
    n_bins = len(edges) - 1
    bins = np.searchsorted(edges, values_present, "right") - 1
    bins[values_present == edges[-1]] = n_bins - 1
    inside = (bins >= 0) & (bins < n_bins)
    out = {}
    for i, cluster in enumerate(clusters):
        n_all, n_present = int(ends[i] - starts[i]), int(lasts[i] - firsts[i])
        n_missing = n_all - n_present
        profile = {"count": n_present, "missing_share": clean(n_missing / n_all) if n_all else 0.0}
        if n_present == 0:
            out[cluster] = {**profile, "histogram": {"counts": [0] * n_bins}}
            continue
        part = grouped[starts[i] : ends[i]]
        values_c = part[~np.isnan(part)]
        virtual = (n_present - 1) * QUARTILES
        previous = np.floor(virtual)
        following = previous + 1
        above = virtual >= n_present - 1
        previous[above] = -1
        following[above] = -1
        gamma = virtual - previous
        base = ascending[firsts[i] : lasts[i]]
        low, high = base[previous.astype(np.intp)], base[following.astype(np.intp)]
        difference = high - low
        q = low + difference * gamma
        np.subtract(high, difference * (1 - gamma), out=q, where=gamma >= 0.5)
        own_bins = bins[firsts[i] : lasts[i]]
        counts = np.bincount(own_bins[inside[firsts[i] : lasts[i]]], minlength=n_bins)
        profile.update({"mean": clean(values_c.mean()), "std": clean(values_c.std()), "min": clean(q[0]), "q1": clean(q[1]),
                        "median": clean(q[2]), "q3": clean(q[3]), "max": clean(q[4]), "histogram": {"counts": counts.tolist()}})
        out[cluster] = profile
    return out


def numeric_edges(values: np.ndarray) -> np.ndarray:
    """Shared histogram edges for every cluster of a column."""
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return np.array([0.0, 1.0])
    return np.histogram_bin_edges(present, bins=HISTOGRAM_BINS)


# -- categorical / boolean -------------------------------------------------------------------
def top_categories(labels: np.ndarray, missing_label: str = "<missing>") -> list[str]:
    """The overall most frequent values (missing excluded), most frequent first."""
    present = pd.Series(labels[labels != missing_label])
    return [str(v) for v in present.value_counts().index[:TOP_CATEGORIES]]


def category_profile(labels: np.ndarray, top: list[str], missing_label: str = "<missing>") -> dict:
    missing = labels == missing_label
    present = pd.Series(labels[~missing]).value_counts()
    n = max(int((~missing).sum()), 1)
    shares = [{"value": v, "share": clean(present.get(v, 0) / n)} for v in top]
    other = 1.0 - sum(present.get(v, 0) for v in top) / n if (~missing).any() else 0.0
    return {**_missing(missing), "top": shares, "other_share": clean(max(other, 0.0))}


def boolean_labels(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), "<missing>", np.where(values > 0.5, "true", "false")).astype(object)


# -- datetime --------------------------------------------------------------------------------
def datetime_profile(stamps: pd.DatetimeIndex) -> dict:
    missing = np.asarray(stamps.isna())
    out = _missing(missing)
    present = stamps[~missing]
    if len(present) == 0:
        return out
    month = np.bincount(np.asarray(present.month) - 1, minlength=12)
    weekday = np.bincount(np.asarray(present.day_of_week), minlength=7)
    hour = np.bincount(np.asarray(present.hour), minlength=24)
    seconds = present.as_unit("s").asi8
    out.update({
        "min": present.min().isoformat(), "max": present.max().isoformat(),
        "median": pd.Timestamp(int(np.median(seconds)), unit="s", tz="UTC").isoformat(),
        "month": month.tolist(), "weekday": weekday.tolist(), "hour": hour.tolist(),
        "typical_month": MONTHS[int(month.argmax())], "typical_weekday": WEEKDAYS[int(weekday.argmax())],
        "typical_hour": int(hour.argmax()),
    })
    return out


# -- text (class-based TF-IDF) -------------------------------------------------------------
def class_tfidf(texts: list[str], labels: np.ndarray, clusters: list[int]) -> tuple[dict, list[dict], dict]:
    """(``{cluster: [{"term", "score"}]}``, overall top terms, ``{cluster: {term: document share}}``)."""
    from sklearn.feature_extraction.text import CountVectorizer

    empty = ({c: [] for c in clusters}, [], {c: {} for c in clusters})
    if not any(t.strip() for t in texts):
        return empty
    try:
        vectorizer = CountVectorizer(stop_words="english", max_features=20_000, token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
        counts = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # only stop words
        return empty
    terms = np.asarray(vectorizer.get_feature_names_out())
    per_cluster = np.vstack([np.asarray(counts[labels == c].sum(axis=0)).ravel() for c in clusters]).astype(np.float64)
    frequency = per_cluster.sum(axis=0)
    average_words = per_cluster.sum() / max(len(clusters), 1)
    tf = per_cluster / np.maximum(per_cluster.sum(axis=1, keepdims=True), 1.0)
    scores = tf * np.log1p(average_words / np.maximum(frequency, 1.0))
    present = (counts > 0).tocsr()
    distinct, shares = {}, {}
    for i, c in enumerate(clusters):
        order = [j for j in np.argsort(-scores[i], kind="stable")[:TOP_TERMS] if per_cluster[i, j] > 0]
        distinct[c] = [{"term": str(terms[j]), "score": clean(scores[i, j])} for j in order]
        members = labels == c
        docs = max(int(members.sum()), 1)
        shares[c] = {str(terms[j]): float(present[members][:, j].sum() / docs) for j in order}
    overall = [{"term": str(terms[j]), "score": clean(frequency[j] / max(frequency.sum(), 1.0))}
               for j in np.argsort(-frequency, kind="stable")[:TOP_TERMS]]
    return distinct, overall, shares


def document_share(texts: list[str], term: str) -> float:
    """Share of ``texts`` containing ``term`` as a word (lower case)."""
    import re

    pattern = re.compile(rf"(?i)\b{re.escape(term)}\b")
    return sum(1 for t in texts if pattern.search(t)) / max(len(texts), 1)


# -- image -----------------------------------------------------------------------------------
def image_profile(paths: list, rows: np.ndarray, assignment) -> dict:
    """Representative and borderline images of the rows of one cluster."""
    if assignment.probability is not None:
        typicality = np.asarray(assignment.probability, np.float64)[rows]
        key, values = "probability", typicality
    elif assignment.distance is not None:
        typicality = -np.asarray(assignment.distance, np.float64)[rows]
        key, values = "distance", -typicality
    else:
        typicality = np.zeros(len(rows))
        key, values = None, None
    present = [i for i, r in enumerate(rows) if paths[r] is not None]
    order = sorted(present, key=lambda i: -typicality[i])

    def entry(i: int) -> dict:
        item = {"path": paths[rows[i]]}
        if key is not None:
            item[key] = clean(values[i], 4)
        return item

    return {**_missing(np.array([paths[r] is None for r in rows], bool)),
            "representative": [entry(i) for i in order[:IMAGES_PER_CLUSTER]],
            "borderline": [entry(i) for i in order[::-1][:IMAGES_PER_CLUSTER]]}


# -- geo -------------------------------------------------------------------------------------
def spherical_centroid(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    phi, lam = np.radians(lat), np.radians(lon)
    xyz = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1).mean(axis=0)
    return float(np.degrees(np.arctan2(xyz[2], np.hypot(xyz[0], xyz[1])))), float(np.degrees(np.arctan2(xyz[1], xyz[0])))


def great_circle_deg(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    phi, phi0 = np.radians(lat), np.radians(lat0)
    dlam = np.radians(lon - lon0)
    cos = np.sin(phi) * np.sin(phi0) + np.cos(phi) * np.cos(phi0) * np.cos(dlam)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def geo_profile(lat: np.ndarray, lon: np.ndarray, seed: int = 0) -> dict:
    missing = np.isnan(lat) | np.isnan(lon)
    out = _missing(missing)
    lat, lon = lat[~missing], lon[~missing]
    if len(lat) == 0:
        return out
    clat, clon = spherical_centroid(lat, lon)
    spread = float(np.sqrt(np.mean(great_circle_deg(lat, lon, clat, clon) ** 2)))
    rows = np.arange(len(lat))
    if len(rows) > MAP_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAP_POINTS, replace=False))
    out.update({
        "centroid": {"lat": clean(clat), "lon": clean(clon)}, "spread_deg": clean(spread),
        "spread_km": clean(np.radians(spread) * EARTH_RADIUS_KM),
        "bbox": {"lat_min": clean(lat.min()), "lat_max": clean(lat.max()), "lon_min": clean(lon.min()), "lon_max": clean(lon.max())},
        "points": [{"lat": clean(lat[i], 7), "lon": clean(lon[i], 7)} for i in rows],
    })
    return out


# -- all columns -----------------------------------------------------------------------------
def column_profiles(views: list[ColumnView], frame: pd.DataFrame, labels: np.ndarray, assignment, clusters: list[int],
                    seed: int = 0) -> dict:
    """``{"columns": {name: {"kind", "overall", "clusters": {"id": PROFILE}}}}`` (docs/insights.md)."""
    out = {}
    masks = {c: labels == c for c in clusters}
    for view in views:
        name, kind = view.name, view.kind
        if kind == "numeric":
            values = numeric_values(frame, name)
            edges = numeric_edges(values)
            overall = numeric_profile(values, edges)
            overall["histogram"]["bin_edges"] = [clean(e) for e in edges]
            per = numeric_profiles(values, labels, list(masks), edges)
        elif kind in ("categorical", "boolean"):
            labels_ = label_values(frame, name) if kind == "categorical" else boolean_labels(boolean_values(frame, name))
            top = top_categories(labels_) if kind == "categorical" else ["true", "false"]
            overall = category_profile(labels_, top)
            per = {c: category_profile(labels_[m], top) for c, m in masks.items()}
        elif kind == "datetime":
            stamps = datetime_values(frame, name)
            overall = datetime_profile(stamps)
            per = {c: datetime_profile(stamps[m]) for c, m in masks.items()}
        elif kind == "text":
            texts = text_values(frame, name)
            distinct, common, _ = class_tfidf(texts, labels, clusters)
            lengths = np.array([len(t) for t in texts], np.float64)
            empty = np.array([not t.strip() for t in texts], bool)
            overall = {**_missing(empty), "terms": common, "mean_length": clean(lengths.mean()) if len(texts) else None}
            per = {c: {**_missing(empty[m]), "terms": distinct[c], "mean_length": clean(lengths[m].mean()) if m.any() else None}
                   for c, m in masks.items()}
        elif kind == "image":
            paths = image_values(frame, view.featurizer.column)
            overall = _missing(np.array([p is None for p in paths], bool))
            per = {c: image_profile(paths, np.flatnonzero(m), assignment) for c, m in masks.items()}
        elif kind == "geo":
            lat, lon = geo_values(view, frame)
            overall = geo_profile(lat, lon, seed)
            per = {c: geo_profile(lat[m], lon[m], seed) for c, m in masks.items()}
        else:  # a plugin kind: counts only
            missing = frame[view.featurizer.column].isna().to_numpy()
            overall = _missing(missing)
            per = {c: _missing(missing[m]) for c, m in masks.items()}
        out[name] = {"kind": kind, "overall": overall, "clusters": {str(c): p for c, p in per.items()}}
    return {"columns": out}
