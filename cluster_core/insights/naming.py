"""Cluster names from the observations, in the user's column names ("high spend, plan=pro")."""

from __future__ import annotations

MAX_PARTS = 4


def generated_names(observations: dict[int, list[dict]]) -> dict[int, str]:
    """Two phrases of the top observations per cluster; a name that repeats takes more phrases
    until it is unique (and the cluster id as a last resort)."""
    phrases: dict[int, list[str]] = {}
    for cluster, items in observations.items():
        columns: set[str] = set()
        seen: list[str] = []
        for item in items:  # one phrase per column: "high spend", not also "spend is on average..."
            if item["column"] not in columns:
                columns.add(item["column"])
                seen.append(item["phrase"])
        phrases[cluster] = seen
    length = {c: 2 for c in phrases}
    for _ in range(MAX_PARTS):
        names = {c: ", ".join(parts[: length[c]]) for c, parts in phrases.items()}
        values = list(names.values())
        repeated = {n for n in values if values.count(n) > 1}
        if not repeated:
            break
        for c, n in names.items():
            if n in repeated:
                length[c] += 1
    out, used = {}, set()
    for c in sorted(phrases):
        name = ", ".join(phrases[c][: length[c]]) or f"cluster {c}"
        out[c] = name if name not in used else f"{name} (#{c})"
        used.add(out[c])
    return out
