"""Cluster insights: profiles, observations, heatmap, feature impact, associations, names,
and per-record explanations. The schema of ``insights.json`` is docs/insights.md."""

from .build import INSIGHTS_FILE, model_insights, prepare_sample, read_insights, run_insights, write_insights
from .feature_space import profile_clusters

__all__ = [
    "INSIGHTS_FILE", "model_insights", "prepare_sample", "profile_clusters", "read_insights", "run_insights", "write_insights",
]
