"""What sets each cluster apart, in the feature space the model clustered in (``model.json``'s
``top_features``; names are replaced by :mod:`cluster_core.insights.naming` when insights run).

Every feature is on a comparable scale (robust-scaled numbers, 0/1 indicators), so a
cluster's mean minus the overall mean is a fair measure of what distinguishes it. The
two largest differences name the cluster ("high body_mass_g, island=Biscoe").
"""

from __future__ import annotations

import numpy as np

TOP_FEATURES = 5


def _phrase(feature: str, delta: float) -> str:
    """In the user's column names: ``signup__ordinal`` speaks as ``signup``."""
    if "=" in feature:  # one-hot: name=value
        return feature if delta > 0 else f"not {feature}"
    column, _, part = feature.partition("__")
    if part == "missing":
        return f"{column} {'missing' if delta > 0 else 'present'}"
    return f"{'high' if delta > 0 else 'low'} {column}"


def profile_clusters(features: np.ndarray, labels: np.ndarray, feature_names: list[str], n_clusters: int) -> list[dict]:
    """Per-cluster size, share, a generated name and the most distinctive features.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Featurized rows (a sample is enough).
    labels : ndarray of shape (n_samples,)
        Cluster ids, -1 = noise.
    feature_names : list of str
    n_clusters : int

    Returns
    -------
    list of dict
        One entry per cluster id ``0..n_clusters-1``: ``cluster_id``, ``name``,
        ``size`` (rows in the sample), ``share``, ``top_features`` (feature,
        cluster mean, overall mean, difference).
    """
    overall = features.mean(axis=0) if len(features) else np.zeros(len(feature_names))
    profiles = []
    for cluster in range(n_clusters):
        members = features[labels == cluster]
        size = int(members.shape[0])
        entry = {"cluster_id": cluster, "name": None, "size": size, "share": size / max(len(labels), 1), "top_features": []}
        if size:
            means = members.mean(axis=0)
            delta = means - overall
            order = np.argsort(-np.abs(delta))[:TOP_FEATURES]
            entry["top_features"] = [
                {"feature": feature_names[i], "cluster_mean": float(means[i]), "overall_mean": float(overall[i]), "difference": float(delta[i])}
                for i in order
                if abs(delta[i]) > 1e-9
            ]
        profiles.append(entry)
    _name_clusters(profiles)
    return profiles


def _name_clusters(profiles: list[dict]) -> None:
    """Name each cluster by its two most distinctive features; a name that repeats takes
    more features until it is unique (and the cluster id as a last resort)."""
    phrases = {p["cluster_id"]: [_phrase(t["feature"], t["difference"]) for t in p["top_features"]] for p in profiles}
    length = {cid: 2 for cid in phrases}
    for _ in range(TOP_FEATURES):
        names = {cid: ", ".join(parts[: length[cid]]) for cid, parts in phrases.items()}
        repeated = {name for name in names.values() if list(names.values()).count(name) > 1}
        if not repeated:
            break
        for cid, name in names.items():
            if name in repeated:
                length[cid] += 1
    seen = set()
    for profile in profiles:
        cid = profile["cluster_id"]
        name = ", ".join(phrases[cid][: length[cid]]) or f"cluster {cid}"
        profile["name"] = name if name not in seen else f"{name} (#{cid})"
        seen.add(profile["name"])
