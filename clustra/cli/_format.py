"""How the CLI shows a run's leaderboard (also used for a jobs service's leaderboard) and its curves."""

from __future__ import annotations

import math

from cluster_core.text_table import format_table

_HEADER = ("rank", "model_id", "algorithm", "k", "found", "silhouette", "davies_bouldin", "calinski_harabasz",
           "stability", "noise", "fit_s")
_EVALUATION = ("ari", "nmi", "homogeneity", "completeness")

# --rank-by: the leaderboard key and whether higher is better
RANK_KEYS = {
    "silhouette": ("silhouette", True),
    "recommended": ("silhouette", True),  # the recommended model first, then by silhouette
    "stability": ("stability", True),
    "davies_bouldin": ("davies_bouldin", False),
    "calinski_harabasz": ("calinski_harabasz", True),
    "bic": ("bic", False),
}


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ordered_entries(leaderboard: dict, rank_by: str = "silhouette") -> list[dict]:
    """The leaderboard's entries in ``rank_by`` order (failed and undefined values last).

    ``silhouette`` keeps the stored ranking; ``recommended`` puts the recommended model first.
    """
    if rank_by not in RANK_KEYS:
        raise ValueError(f"rank_by={rank_by!r}; expected one of {', '.join(RANK_KEYS)}")
    entries = list(leaderboard["models"])
    if rank_by == "silhouette":
        return entries
    if rank_by == "recommended":
        chosen = leaderboard.get("recommended")
        return sorted(entries, key=lambda e: e["model_id"] != chosen)
    key, higher = RANK_KEYS[rank_by]

    def sort_key(entry: dict):
        value = entry.get(key)
        missing = entry.get("status") != "ok" or value is None
        return (entry.get("status") != "ok", missing, 0.0 if missing else (-value if higher else value))

    return sorted(entries, key=sort_key)


def leaderboard_table(leaderboard: dict, rank_by: str = "silhouette") -> str:
    """The leaderboard (``{"models": [...]}``) as a terminal table, in ``rank_by`` order.

    ``k`` is the requested cluster count, ``found`` the clusters found (``!``: fewer than
    requested, components collapsed); ``*`` marks the recommended model.
    """
    chosen = leaderboard.get("recommended")
    entries = ordered_entries(leaderboard, rank_by)
    evaluation = [key for key in _EVALUATION[:2] if any(key in e for e in entries)]
    rows = []
    for e in entries:
        model_id = e["model_id"] + (" *" if e["model_id"] == chosen else "")
        k = "-" if e.get("requested_clusters") is None else e["requested_clusters"]
        if e["status"] != "ok":
            rows.append((e["rank"], model_id, e["algorithm"], k, "-", "failed", "", "", "", "",
                         _number(e["fit_seconds"], 1), *["" for _ in evaluation]))
            continue
        found = e.get("n_clusters_found", e.get("n_clusters"))
        found = f"{found}!" if e.get("collapsed") else str(found)
        rows.append((
            e["rank"], model_id, e["algorithm"], k, found, _number(e["silhouette"]), _number(e["davies_bouldin"]),
            _number(e["calinski_harabasz"], 1), _number(e.get("stability"), 2), _number(e["noise_fraction"], 2),
            _number(e["fit_seconds"], 1), *[_number(e.get(key)) for key in evaluation],
        ))
    header = _HEADER + tuple(f"{key}:{leaderboard.get('evaluated_against', 'truth')}" if key == "ari" else key
                             for key in evaluation)
    table = format_table(header, rows, right=[0, *range(3, len(header))])
    notes = []
    if chosen:
        notes.append(f"* recommended: {chosen} — {leaderboard.get('recommended_reason', '')}")
    if any(e.get("collapsed") for e in entries):
        notes.append("! components collapsed: fewer clusters found on the validation rows than requested (k)")
    return table + ("\n" + "\n".join(notes) if notes else "")


def recommendation_lines(leaderboard: dict) -> list[str]:
    """What the CLI prints under a leaderboard: the silhouette's best and the recommended model with its reason."""
    lines = [f"best by silhouette: {leaderboard['best']}"]
    if leaderboard.get("recommended"):
        lines.append(f"recommended model: {leaderboard['recommended']} ({leaderboard.get('recommended_reason', '')})")
    return lines


def curves_table(selection: dict) -> str:
    """``selection.json`` as one compact table: a row per variant and k."""
    rows = []
    for variant, points in selection.items():
        for p in points:
            excess = p.get("stability_excess")
            rows.append((
                variant, "-" if p.get("k") is None else p["k"], p.get("n_clusters_found", "-"),
                _number(p.get("silhouette")), _number(p.get("davies_bouldin")), _number(p.get("calinski_harabasz"), 1),
                _number(p.get("stability"), 2), _number(excess, 2) if excess is None or math.isfinite(excess) else "-",
                _number(p.get("bic"), 1),
            ))
    header = ("variant", "k", "found", "silhouette", "davies_bouldin", "calinski_h", "stability", "excess", "bic")
    return format_table(header, rows, right=list(range(1, len(header))))


def insights_summary(document: dict, observations: int = 3) -> str:
    """An ``insights.json`` for people: the clusters with their names and shares, each cluster's top
    ``observations`` sentences, the feature impact and the redundant column pairs."""
    lines = [f"insights of {document.get('model_id', '?')} (on {document.get('n_rows', '?')} sampled rows)", ""]
    clusters = document.get("clusters") or []
    rows = [(c["cluster_id"], c.get("name") or "-", "renamed" if c.get("name_source") == "user" else "generated",
             c.get("size", "-"), "-" if c.get("share") is None else f"{c['share'] * 100:.1f}%") for c in clusters]
    if document.get("noise"):
        noise = document["noise"]
        rows.append((-1, "noise", "-", noise.get("size", "-"), f"{(noise.get('share') or 0) * 100:.1f}%"))
    lines.append(format_table(("cluster", "name", "name_source", "rows", "share"), rows, right=[0, 3, 4]))
    said = document.get("observations") or {}
    if said:
        lines += ["", "observations:"]
        for cluster in clusters:
            sentences = said.get(str(cluster["cluster_id"])) or []
            lines.append(f"  cluster {cluster['cluster_id']} ({cluster.get('name') or '-'}):")
            lines += [f"    - {o['text']}" for o in sentences[:observations]] or ["    (nothing sets it apart)"]
    impact = document.get("feature_impact") or []
    if impact:
        lines += ["", "feature impact (each column permuted; impact normalized to the largest = 1):"]
        rows = [(i["column"], _number(i.get("impact")), _number(i.get("changed_share"))) for i in impact]
        lines.append(format_table(("column", "impact", "changed_share"), rows, right=[1, 2]))
    pairs = (document.get("associations") or {}).get("redundant") or []
    if pairs:
        lines += ["", "redundant column pairs: " + ", ".join(f"{p['a']} ~ {p['b']} ({_number(p.get('value'), 2)})" for p in pairs)]
    return "\n".join(lines)
