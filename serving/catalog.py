"""What ``GET /v1/models/{name}`` and ``clustra models show`` report about a published model."""

from __future__ import annotations

from typing import Any

from cluster_core.registry import ModelRef, ModelRegistry


def assignment_detail(output_columns: dict[str, str]) -> str | None:
    """What each JSON assignment carries per cluster: ``"distances"`` for models that add a
    ``distance`` column, else ``"probabilities"`` for those that add ``cluster_probability``,
    else None (the rule of :class:`serving.assign.ServedModel`)."""
    if "distance" in output_columns:
        return "distances"
    if "cluster_probability" in output_columns:
        return "probabilities"
    return None


def describe_version(registry: ModelRegistry, ref: ModelRef) -> dict[str, Any]:
    """``GET /v1/models/{name}``: versions and aliases, then the chosen version's schema, clusters, metrics."""
    summary = registry.describe(ref.name)
    info = registry.model_info(ref.name, ref.version)
    return {
        "name": ref.name,
        "version": ref.version,
        "alias": ref.alias,
        "latest": summary["latest"],
        "aliases": summary["aliases"],
        "versions": [
            {k: v.get(k) for k in ("version", "model_id", "algorithm", "n_clusters", "published_at")} for v in summary["versions"]
        ],
        "model_id": info.get("model_id"),
        "algorithm": info.get("algorithm"),
        "n_clusters": info.get("n_clusters"),
        "input_schema": info.get("input_schema", []),
        "output": assignment_detail(info.get("output_columns", {})),
        "clusters": [
            {k: c.get(k) for k in ("cluster_id", "name", "size", "size_basis", "share", "estimated_rows", "top_features")}
            for c in info.get("clusters", [])
        ],
        "metrics": info.get("metrics", {}),
    }
