"""How the CLI shows a run's leaderboard (also used for a jobs service's leaderboard)."""

from __future__ import annotations

from cluster_core.text_table import format_table

_HEADER = ("rank", "model_id", "algorithm", "clusters", "silhouette", "davies_bouldin", "calinski_harabasz", "noise", "fit_s")


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def leaderboard_table(leaderboard: dict) -> str:
    """The leaderboard (``{"models": [...]}``) as a terminal table, best first."""
    rows = []
    for e in leaderboard["models"]:
        if e["status"] != "ok":
            rows.append((e["rank"], e["model_id"], e["algorithm"], "-", "failed", "", "", "", _number(e["fit_seconds"], 1)))
            continue
        rows.append((
            e["rank"], e["model_id"], e["algorithm"], e["n_clusters"], _number(e["silhouette"]), _number(e["davies_bouldin"]),
            _number(e["calinski_harabasz"], 1), _number(e["noise_fraction"], 2), _number(e["fit_seconds"], 1),
        ))
    return format_table(_HEADER, rows, right=[0, 3, 4, 5, 6, 7, 8])
