"""The HTML report of a run: leaderboard, selection curves and, per model, the embedding view,
profiles, observations, heatmap, feature impact, associations, image gallery and map; for a
series run (docs/series.md) each cluster's typical shape and spread.

``write_report(run_dir, out)`` writes one self-contained page (plotly.js, styles and
scripts inline; no request to any other host). The web UI of the jobs service renders the
same sections (``TEMPLATE_DIR``, :func:`model_context`, :func:`run_context`).
"""

from ._html import (
    STATIC_DIR,
    TEMPLATE_DIR,
    WORLD_MAP_FILE,
    Figures,
    install_filters,
    model_context,
    plotly_js_path,
    render_report,
    run_context,
    write_report,
)
from ._load import ModelReport, RunReport, load_model_report, load_run_report

__all__ = [
    "STATIC_DIR",
    "TEMPLATE_DIR",
    "WORLD_MAP_FILE",
    "Figures",
    "ModelReport",
    "RunReport",
    "install_filters",
    "load_model_report",
    "load_run_report",
    "model_context",
    "plotly_js_path",
    "render_report",
    "run_context",
    "write_report",
]
