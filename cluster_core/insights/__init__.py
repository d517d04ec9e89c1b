"""Cluster insights: profiles, observations, heatmap, feature impact, associations, names,
and per-record explanations. The schema of ``insights.json`` is docs/insights.md."""

from .build import INSIGHTS_FILE, model_insights, prepare_sample, read_insights, run_insights, write_insights
from .explain import explain_frame, explanation_records
from .feature_space import profile_clusters
from .names import check_name, rename_cluster

__all__ = [
    "INSIGHTS_FILE", "check_name", "explain_frame", "explanation_records", "model_insights", "prepare_sample",
    "profile_clusters", "read_insights", "rename_cluster", "run_insights", "write_insights",
]
