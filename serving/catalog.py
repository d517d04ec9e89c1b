"""What ``GET /v1/models/{name}`` and ``clustra models show`` report about a published model."""

from __future__ import annotations

from typing import Any

from cluster_core.registry import ModelRef, ModelRegistry


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
        "output": "distances" if info.get("algorithm") == "kmeans" else "probabilities",
        "clusters": [
            {k: c.get(k) for k in ("cluster_id", "name", "size", "share", "top_features")} for c in info.get("clusters", [])
        ],
        "metrics": info.get("metrics", {}),
    }
