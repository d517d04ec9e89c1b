"""The recommended model of a default ``clustra train`` sweep, scored against known labels.

Usage (from the repository root)::

    .venv/bin/python bench/recommendation.py --sets suite [--true-k] [--max-rows 20000] [--only NAME,...]
        [--suite ../shared/bench-data/clustering-suite] [--out bench/out/recommendation]
    .venv/bin/python bench/recommendation.py --sets packages

``suite``: the clustering benchmark suite (labels0; noise rows are not scored); ``packages``:
labelled real tables shipped by installed packages (scikit-learn's iris, wine,
breast_cancer, digits; palmerpenguins), none of which the rule was tuned on. Each dataset
is one in-process ``train_run`` with the defaults (``--true-k``: ``k = [k_true]``) and
``evaluate_against`` the label column, so every leaderboard row carries its ARI on the
validation rows; the label is never a feature and never read by the recommendation. One
leaderboard JSON per dataset goes to ``OUT``; the script prints a Markdown table: the
recommended model, its k and ARI, the best ARI of the sweep and the silhouette pick's.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster_core.selection import recommend  # noqa: E402
from cluster_core.usecases import train_config, train_run  # noqa: E402

PACKAGES = ["iris", "wine", "breast_cancer", "digits", "penguins"]


def package_frame(name: str) -> tuple[pd.DataFrame, str]:
    """A labelled table shipped by an installed package and its label column."""
    if name == "penguins":
        from palmerpenguins import load_penguins

        return load_penguins().drop(columns=["year"]), "species"  # year is when, not what; sex kept (the demo leaves it out too)
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame.copy()
    frame["target"] = frame["target"].astype(str)
    return frame, "target"


def suite_frame(suite: Path, dataset: str) -> tuple[pd.DataFrame, str]:
    """A suite matrix with its labels0 as column ``truth`` (noise, label 0, missing: not scored)."""
    x = np.loadtxt(suite / f"{dataset}.data.gz", ndmin=2)
    y = np.loadtxt(suite / f"{dataset}.labels0.gz", dtype=int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame["truth"] = [None if v == 0 else str(v) for v in y]
    return frame, "truth"


def run_one(frame: pd.DataFrame, column: str, true_k: bool, seed: int) -> dict:
    k_true = int(frame[column].dropna().nunique())
    settings = {"evaluate_against": column, "seed": seed}
    if true_k:
        settings["k"] = [k_true]
    started = time.perf_counter()
    board = train_run(frame, train_config(settings), cluster="inprocess").leaderboard()
    board["seconds"] = time.perf_counter() - started
    board["k_true"] = k_true
    return board


def summary(name: str, board: dict) -> dict:
    ok = [e for e in board["models"] if e["status"] == "ok" and e.get("ari") is not None]
    recommended, _ = recommend(board["models"])  # the current rule, also on leaderboards saved by an earlier run
    chosen = next(e for e in ok if e["model_id"] == (recommended or board["best"]))
    by_silhouette = next(e for e in ok if e["model_id"] == board["best"])
    best = max(ok, key=lambda e: e["ari"])
    return {"dataset": name, "k_true": board["k_true"], "recommended": chosen["model_id"],
            "k_found": chosen["n_clusters_found"], "ari": chosen["ari"], "best": best["model_id"], "best_ari": best["ari"],
            "silhouette_pick": by_silhouette["model_id"], "silhouette_ari": by_silhouette["ari"],
            "seconds": board["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", choices=["suite", "packages"], default="suite")
    parser.add_argument("--suite", default="../shared/bench-data/clustering-suite")
    parser.add_argument("--true-k", action="store_true", dest="true_k", help="sweep only k = the true number of groups")
    parser.add_argument("--max-rows", type=int, default=20_000, dest="max_rows", help="skip larger suite datasets")
    parser.add_argument("--only", default="", help="comma-separated dataset names (battery/name for the suite)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/out/recommendation")
    args = parser.parse_args()
    out = Path(args.out) / f"{args.sets}-{'truek' if args.true_k else 'default'}"
    out.mkdir(parents=True, exist_ok=True)
    if args.sets == "suite":
        suite = Path(args.suite)
        names = [f"{r['battery']}/{r['dataset']}" for r in csv.DictReader(open(suite / "reference.csv"))
                 if int(r["n"]) <= args.max_rows]
    else:
        names = PACKAGES
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    rows = []
    for name in names:
        target = out / f"{name.replace('/', '_')}.json"
        if target.is_file():  # resumable: a finished dataset is read back
            board = json.loads(target.read_text())
        else:
            frame, column = suite_frame(Path(args.suite), name) if args.sets == "suite" else package_frame(name)
            board = run_one(frame, column, args.true_k, args.seed)
            target.write_text(json.dumps(board))
        rows.append(summary(name, board))
        r = rows[-1]
        print(f"{name:24s} k={r['k_true']:3d} -> {r['recommended']} ({r['k_found']}) ARI {r['ari']:.3f}", file=sys.stderr)
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    print("| dataset | true k | recommended | k found | ARI | best of the sweep | its ARI | silhouette's pick | its ARI | s |")
    print("|---|---:|---|---:|---:|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['k_true']} | {r['recommended']} | {r['k_found']} | {r['ari']:.3f} | {r['best']} | "
              f"{r['best_ari']:.3f} | {r['silhouette_pick']} | {r['silhouette_ari']:.3f} | {r['seconds']:.0f} |")
    hits = sum(r["k_found"] == r["k_true"] for r in rows)
    print(f"| **mean ({len(rows)} datasets)** | | | **true k on {hits}** | **{np.mean([r['ari'] for r in rows]):.3f}** | | "
          f"**{np.mean([r['best_ari'] for r in rows]):.3f}** | | **{np.mean([r['silhouette_ari'] for r in rows]):.3f}** | |")


if __name__ == "__main__":
    raise SystemExit(main())
