"""``clustra report RUN_DIR --out FILE.html``: the run's HTML report, one self-contained file."""

from __future__ import annotations

import argparse


def cmd_report(args: argparse.Namespace) -> int:
    """clustra report RUN_DIR [--model ID] --out FILE.html."""
    from cluster_core.report import write_report

    out = write_report(args.run, args.out, model_ids=args.model, overwrite=args.overwrite)
    size = out.stat().st_size / (1 << 20)
    print(f"report written to {out} ({size:.1f} MiB; opens offline in any browser)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report``."""
    report = sub.add_parser(
        "report", help="write a run's HTML report (leaderboard, selection curves, insights per model)",
        description="Write one self-contained HTML file (plotly.js, styles and scripts inline; it makes no "
                    "request to any other host): the leaderboard and selection curves, then per model the "
                    "embedding view, profiles, observations, heatmap, feature impact, associations, image "
                    "gallery and map. Sections a run does not hold are shown as 'not computed'.",
    )
    report.add_argument("run", metavar="RUN_DIR", help="run directory written by clustra train (or a jobs service output)")
    report.add_argument("--model", action="append", metavar="ID",
                        help="only this model (repeat for several; default: every model, best first)")
    report.add_argument("--out", required=True, metavar="FILE.html", help="the HTML file to write, e.g. report.html")
    report.add_argument("--overwrite", action="store_true", help="replace an existing file")
    report.set_defaults(func=cmd_report)
