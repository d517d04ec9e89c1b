"""Compare two run directories file by file, timings aside: is every output of a run unchanged?

Usage (from the repository root)::

    .venv/bin/python bench/e2e_compare_runs.py RUN_A RUN_B

JSON files are compared as parsed values with every key ending in ``seconds`` (``fit_seconds``,
``selection_seconds``, ``insights_seconds``, ...) and the run's paths and dates left out
(``created``, ``out``, ``data``: where and when, not what); ``.npz`` archives array by array,
exactly; any other file byte for byte. Exit status 0 when equal, 1 with the differences listed.

``--skipped-null``: RUN_B may leave a model's null unmeasured where its stability is below
``MIN_STABILITY`` (``null_stability_skipped``, docs/selection.md): in every JSON object with a
``stability`` below it, ``null_stability`` and ``stability_excess`` are left out on both sides
(RUN_B must leave them null there, and give the reason exactly there where it has the key);
every other value must be equal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

IGNORED_KEYS = {"created", "created_at", "started_at", "finished_at", "out", "run_dir", "path"}


def _strip(value, ignored: set[str]):
    """``value`` without timing keys (and ``ignored`` ones), recursively."""
    if isinstance(value, dict):
        return {k: _strip(v, ignored) for k, v in value.items() if not k.endswith("seconds") and k not in ignored}
    if isinstance(value, list):
        return [_strip(v, ignored) for v in value]
    return value


SKIP_KEY = "null_stability_skipped"
NULL_KEYS = ("null_stability", "stability_excess")


def _without_skipped_null(value, problems: list[str], side_b: bool, where: str = ""):
    """``value`` with the null's values left out where the stability is below ``MIN_STABILITY``; in
    RUN_B (``side_b``) the reason must be given exactly there (a problem is recorded otherwise)."""
    from cluster_core.selection import MIN_STABILITY

    if isinstance(value, list):
        return [_without_skipped_null(v, problems, side_b, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out = {k: _without_skipped_null(v, problems, side_b, f"{where}/{k}") for k, v in value.items()}
    if "stability" in out and "null_stability" in out:
        below = out["stability"] is None or out["stability"] < MIN_STABILITY
        given, reason = SKIP_KEY in out, out.pop(SKIP_KEY, None)
        if side_b and given and bool(reason) != below:
            problems.append(f"{where or '/'}: stability {out['stability']} but {SKIP_KEY}={reason!r}")
        if side_b and below and any(out.get(k) is not None for k in NULL_KEYS):
            problems.append(f"{where or '/'}: stability {out['stability']} below {MIN_STABILITY} but a null value is given")
        if below:
            for key in NULL_KEYS:
                out.pop(key, None)
    return out


def _first_difference(a, b, where: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{where or '/'}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'B' if key not in a else 'A'}"
            found = _first_difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where or '/'}: {a!r} != {b!r}"


def compare_file(a: Path, b: Path, ignored: set[str], skipped_null: bool = False) -> str | None:
    """None when the two files hold the same outputs, else the first difference."""
    if a.suffix == ".json":
        left, right = _strip(json.loads(a.read_text()), ignored), _strip(json.loads(b.read_text()), ignored)
        if skipped_null:
            problems: list[str] = []
            left, right = _without_skipped_null(left, [], False), _without_skipped_null(right, problems, True)
            if problems:
                return problems[0]
        return _first_difference(left, right)
    if a.suffix == ".npz":
        with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
            if sorted(x.files) != sorted(y.files):
                return f"arrays {sorted(x.files)} != {sorted(y.files)}"
            for name in x.files:
                if x[name].shape != y[name].shape or x[name].dtype != y[name].dtype or not np.array_equal(
                        x[name], y[name], equal_nan=x[name].dtype.kind in "fc"):
                    return f"array {name!r} differs"
        return None
    return None if a.read_bytes() == b.read_bytes() else "bytes differ"


def compare_runs(run_a: Path, run_b: Path, ignored: set[str] = IGNORED_KEYS, skipped_null: bool = False) -> list[str]:
    """Every difference between two run directories (empty: the same outputs)."""
    files_a = {p.relative_to(run_a) for p in run_a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(run_b) for p in run_b.rglob("*") if p.is_file()}
    problems = [f"{p}: only in {run_a}" for p in sorted(files_a - files_b)]
    problems += [f"{p}: only in {run_b}" for p in sorted(files_b - files_a)]
    for rel in sorted(files_a & files_b):
        found = compare_file(run_a / rel, run_b / rel, ignored, skipped_null)
        if found:
            problems.append(f"{rel}: {found}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--skipped-null", action="store_true",
                        help="RUN_B may skip the null of models below MIN_STABILITY (see above)")
    args = parser.parse_args()
    problems = compare_runs(args.run_a, args.run_b, skipped_null=args.skipped_null)
    files = sum(1 for p in args.run_a.rglob("*") if p.is_file())
    print("\n".join(problems) if problems else f"equal: {files} files (timings aside)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
