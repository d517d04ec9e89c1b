"""``clustra drift MODEL DATA``: has a batch drifted from the model's training sample?

For scheduled jobs: exit status 0 when nothing drifted, 3 when something did, 2 for bad input
(a missing file, a model without a drift reference, missing columns, a bad flag).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cluster_core.drift import DEFAULT_BATCH_ROWS as DEFAULT_SAMPLE_ROWS
from cluster_core.drift import verdict_line

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 3


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number of rows, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``drift`` to the ``clustra`` command."""
    from cluster_core.drift import DEFAULT_PSI_THRESHOLD, DEFAULT_SHARE_THRESHOLD

    drift = subparsers.add_parser(
        "drift", help="compare a batch with the model's training sample (exit 0: no drift, 3: drift, 2: bad input)",
        description="Score DATA with MODEL and compare it with the training sample kept in the model: cluster "
                    "shares and per-feature PSI (quantile bins for numbers, categories for categories). "
                    "Exit status 0: no drift; 3: drift; 2: bad input.",
    )
    drift.add_argument("model", help="model directory, or run directory (its best model)")
    drift.add_argument("data", help="Parquet file or directory (the batch to check)")
    drift.add_argument("--sample-rows", type=_positive_int, default=DEFAULT_SAMPLE_ROWS, metavar="N",
                       help=f"compare about N rows drawn uniformly from DATA (default: {DEFAULT_SAMPLE_ROWS:,})")
    drift.add_argument("--threshold", type=_positive_float, default=DEFAULT_PSI_THRESHOLD, metavar="X",
                       help=f"PSI at which a feature or the cluster shares count as drifted (default: {DEFAULT_PSI_THRESHOLD})")
    drift.add_argument("--share-threshold", type=_positive_float, default=DEFAULT_SHARE_THRESHOLD, metavar="Y",
                       help="absolute change of one cluster's share that counts as drift "
                            f"(default: {DEFAULT_SHARE_THRESHOLD}, i.e. 10 percentage points)")
    drift.add_argument("--seed", type=int, default=0, help="seed of the row sample (default: 0)")
    drift.add_argument("--json", metavar="FILE", help="also write the full report as JSON to FILE ('-': stdout)")
    drift.set_defaults(func=cmd_drift)


def _report_text(report: dict[str, Any]) -> str:
    from cluster_core.text_table import format_table

    clusters = report["clusters"]
    cluster_rows = [
        (r["cluster_id"], r["name"] or "", f"{r['reference_share']:.1%}", f"{r['batch_share']:.1%}", f"{r['change']:+.3f}")
        for r in clusters["clusters"]
    ]
    feature_rows = [(f["name"], f["kind"], f"{f['psi']:.3f}", f"{f['missing_change']:+.3f}") for f in report["features"]]
    parts = [
        f"model {report['model_id']}: {report['batch_rows']:,} batch rows against {report['reference_rows']:,} training rows",
        format_table(["cluster", "name", "training", "batch", "change"], cluster_rows, right=(0, 2, 3, 4)),
        f"cluster shares: PSI {clusters['psi']:.3f}, largest change {clusters['max_share_change']:.3f}",
        format_table(["feature", "kind", "PSI", "missing change"], feature_rows, right=(2, 3)),
    ]
    if report["not_checked"]:
        parts.append("not checked: " + ", ".join(f"{c['name']} ({c['kind']})" for c in report["not_checked"]))
    return "\n".join(parts)


def _write_json(report: dict[str, Any], target: str) -> None:
    from cluster_core.errors import InvalidInputError

    text = json.dumps(report, indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    try:
        Path(target).write_text(text)
    except OSError as exc:
        raise InvalidInputError(f"cannot write the report to {target!r}: {exc.strerror or exc}", field="json") from None


def cmd_drift(args: argparse.Namespace) -> int:
    from cluster_core.drift_check import check_drift

    report = check_drift(args.model, args.data, sample_rows=args.sample_rows, seed=args.seed,
                         psi_threshold=args.threshold, share_threshold=args.share_threshold)
    if args.json:
        _write_json(report, args.json)
    if args.json != "-":
        print(_report_text(report))
    print(verdict_line(report), file=sys.stderr if args.json == "-" else sys.stdout)
    return EXIT_DRIFT if report["drift"] else EXIT_NO_DRIFT
