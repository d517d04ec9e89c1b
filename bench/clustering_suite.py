"""Clustra KMeans / GMM at the true k on the clustering benchmark suite, scored by ARI.

Usage (from the repository root)::

    .venv/bin/python bench/clustering_suite.py [--suite ../shared/bench-data/clustering-suite]
        [--prep common|pipeline] [--out bench/out/suite]

``--prep common`` prepares each matrix as the suite's stored reference results were
prepared (zero-variance columns dropped, centred, scaled by one common factor);
``--prep pipeline`` feeds exactly what ``clustra train`` feeds the algorithms (the
numeric featurizer: per-column robust scaling, tails log-compressed). Restarts as the
reference: KMeans ``n_init=10``, Gaussian mixture ``n_init=100`` (10 above 50,000 rows,
where the reference has no mixture result). Predictions are
written as ``OUT/METHOD/BATTERY/NAME.pred.gz`` and scored with the suite's own
``score.py``; the script prints a Markdown table with the reference columns beside.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster_core.algorithms import GaussianMixture, KMeans  # noqa: E402
from cluster_core.features import FeaturePipeline  # noqa: E402
from cluster_core.schema import infer_schema  # noqa: E402

METHODS = {
    "clustra_kmeans": lambda k, args, n: KMeans(k, n_init=args.kmeans_n_init, random_state=args.seed, device="cpu"),
    "clustra_gmm": lambda k, args, n: GaussianMixture(k, n_init=gmm_restarts(n, args), random_state=args.seed, device="cpu"),
}
REFERENCE = {"clustra_kmeans": "ari_sklearn_kmeans", "clustra_gmm": "ari_sklearn_gm"}


def gmm_restarts(n_rows: int, args: argparse.Namespace) -> int:
    """EM restarts: the reference's 100 (``--gmm-n-init``), fewer above ``--large-rows`` rows
    (the reference has no Gaussian-mixture result for its ~100k-row datasets)."""
    return args.gmm_n_init if n_rows <= args.large_rows else args.gmm_n_init_large


def prepare(x: np.ndarray, prep: str) -> np.ndarray:
    """The matrix the estimator sees."""
    x = x[:, x.std(axis=0) > 0]
    if prep == "common":
        x = x - x.mean(axis=0)
        return (x / x.std()).astype(np.float32)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    pipeline = FeaturePipeline(infer_schema(frame)).fit(frame)
    return pipeline.transform(frame)


def write_pred(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(str(int(v)) for v in labels) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="../shared/bench-data/clustering-suite")
    parser.add_argument("--prep", choices=["common", "pipeline"], default="common")
    parser.add_argument("--out", default="bench/out/suite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kmeans-n-init", type=int, default=10, dest="kmeans_n_init")
    parser.add_argument("--gmm-n-init", type=int, default=100, dest="gmm_n_init",
                        help="EM restarts, best likelihood kept (default 100, as the sklearn_gm reference)")
    parser.add_argument("--gmm-n-init-large", type=int, default=10, dest="gmm_n_init_large",
                        help="EM restarts on datasets above --large-rows rows (default 10)")
    parser.add_argument("--large-rows", type=int, default=50_000, dest="large_rows")
    args = parser.parse_args()
    suite = Path(args.suite)
    reference = list(csv.DictReader(open(suite / "reference.csv")))
    out = Path(args.out) / f"{args.prep}-km{args.kmeans_n_init}-gm{args.gmm_n_init}-{args.gmm_n_init_large}"
    rows = []
    for ref in reference:
        battery, name, k = ref["battery"], ref["dataset"], int(ref["k_true"])
        x = prepare(np.loadtxt(suite / battery / f"{name}.data.gz", ndmin=2), args.prep)
        truth = np.loadtxt(suite / battery / f"{name}.labels0.gz", dtype=int)
        row = {"dataset": f"{battery}/{name}", "n": x.shape[0], "k": k}
        for method, build in METHODS.items():
            started = time.perf_counter()
            model = build(k, args, x.shape[0]).fit(x)
            labels = model.labels_
            row[f"{method}_s"] = time.perf_counter() - started
            if method == "clustra_kmeans":  # the objective, against scikit-learn with the same restarts
                from sklearn.cluster import KMeans as SkKMeans

                sk = SkKMeans(k, n_init=args.kmeans_n_init, random_state=args.seed).fit(x)
                row["inertia_ratio"] = model.inertia_ / sk.inertia_
            write_pred(out / method / battery / f"{name}.pred.gz", labels)
            keep = truth != 0
            row[method] = adjusted_rand_score(truth[keep], labels[keep])
            ref_value = ref[REFERENCE[method]]
            row[REFERENCE[method]] = float(ref_value) if ref_value else None
        rows.append(row)
        print(f"{row['dataset']:24s} kmeans {row['clustra_kmeans']:.3f}  gmm {row['clustra_gmm']:.3f}", file=sys.stderr)
    for method in METHODS:
        result = subprocess.run(
            [sys.executable, str(suite.parent / "score.py"), str(out / method), str(suite)],
            capture_output=True, text=True, check=True,
        )
        print(f"score.py {method}: {result.stdout.strip().splitlines()[-1]}", file=sys.stderr)
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    def fmt(v):
        return "" if v is None else f"{v:.3f}"

    print("| dataset | n | k | Clustra KMeans | sklearn KMeans (ref) | Clustra GMM | sklearn GM (ref) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['dataset']} | {r['n']} | {r['k']} | {fmt(r['clustra_kmeans'])} | {fmt(r['ari_sklearn_kmeans'])} "
            f"| {fmt(r['clustra_gmm'])} | {fmt(r['ari_sklearn_gm'])} |"
        )
    km = np.mean([r["clustra_kmeans"] for r in rows])
    km_ref = np.mean([r["ari_sklearn_kmeans"] for r in rows if r["ari_sklearn_kmeans"] is not None])
    gm = np.mean([r["clustra_gmm"] for r in rows])
    gm_rows = [r for r in rows if r["ari_sklearn_gm"] is not None]
    gm_ref = np.mean([r["ari_sklearn_gm"] for r in gm_rows])
    gm_same = np.mean([r["clustra_gmm"] for r in gm_rows])
    print(f"| **mean ({len(rows)} datasets; GM reference: {len(gm_rows)})** | | | **{km:.4f}** | **{km_ref:.4f}** "
          f"| **{gm:.4f}** (on the reference's {len(gm_rows)}: {gm_same:.4f}) | **{gm_ref:.4f}** |")
    ratios = np.array([r["inertia_ratio"] for r in rows])
    print(f"\nKMeans inertia / scikit-learn KMeans inertia (same n_init): median {np.median(ratios):.5f}, "
          f"<= 1.0001 on {(ratios <= 1.0001).sum()} of {len(ratios)} datasets, worst {ratios.max():.4f}")


if __name__ == "__main__":
    sys.exit(main())
