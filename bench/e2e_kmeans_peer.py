"""1M x 32, KMeans k = 64, Parquet to leaderboard: ``clustra train`` beside pandas + scikit-learn.

Usage (from the repository root)::

    .venv/bin/python bench/e2e_kmeans_peer.py [--rows 1000000] [--dims 32] [--k 64] [--repeats 2]

Data: Gaussian blobs (``--k`` planted centres) in 8 Parquet files with a ``truth`` column.
Both sides are separate processes timed from start to the leaderboard on disk, alternated:

- ``clustra train DATA --out RUN --algorithms kmeans --k 64 --kmeans-n-init 1
  --evaluate-against truth`` (its defaults otherwise: 80/20 split, sampled silhouette,
  Davies-Bouldin, Calinski-Harabasz, stability, insights, the model directory);
- pandas + scikit-learn: read the Parquet, ``StandardScaler``, the same 80/20 split,
  ``KMeans(64, n_init=1)`` (k-means++), then on the validation rows: silhouette on a
  10,000-row sample, Davies-Bouldin, Calinski-Harabasz, ARI; a JSON leaderboard.

Reported: each side's best time, the ratio peer / Clustra (above 1: Clustra is faster), and
both ARIs against the planted labels on the validation rows; wall and CPU seconds (user + sys)
of every run, with the load average at its start.

``--baseline DIR``: also time the ``clustra`` of another checkout (e.g. ``git archive main |
tar -x -C DIR``) in the same rounds, for before/after side by side; its run directory is kept
to compare with ``bench/e2e_compare_runs.py`` (``--keep DIR`` keeps both).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from _common import ROOT, machine
from e2e_timing import Timing, clustra_command, summary, timed_process

PEER = r'''
import json, sys
import numpy as np, pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

frame = pd.read_parquet(sys.argv[1])
truth = frame.pop("truth").to_numpy()
x = StandardScaler().fit_transform(frame.to_numpy(np.float32))
xt, xv, _, yv = train_test_split(x, truth, test_size=0.2, random_state=0)
model = KMeans(int(sys.argv[3]), n_init=1, random_state=0).fit(xt)
labels = model.predict(xv)
row = {"model_id": f"kmeans-k{sys.argv[3]}", "silhouette": float(silhouette_score(xv, labels, sample_size=10000, random_state=0)),
       "davies_bouldin": float(davies_bouldin_score(xv, labels)), "calinski_harabasz": float(calinski_harabasz_score(xv, labels)),
       "ari": float(adjusted_rand_score(yv, labels))}
json.dump({"models": [row], "best": row["model_id"]}, open(sys.argv[2], "w"))
'''


def write_data(root: Path, rows: int, dims: int, k: int, seed: int = 0) -> None:
    """Gaussian blobs (unit spread around ``k`` centres drawn with spread 6) with their centre as ``truth``, 8 files."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 6, (k, dims)).astype(np.float32)
    truth = rng.integers(0, k, rows)
    x = means[truth] + rng.normal(0, 1, (rows, dims)).astype(np.float32)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(dims)])
    frame["truth"] = truth.astype(str)
    root.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(rows), 8)):
        frame.iloc[part].to_parquet(root / f"part-{i}.parquet")


def run_clustra(root: Path, data: Path, out: Path, k: int) -> Timing:
    command, env = clustra_command(root, "train", str(data), "--out", str(out), "--algorithms", "kmeans", "--k", str(k),
                                   "--kmeans-n-init", "1", "--evaluate-against", "truth", "--overwrite")
    return timed_process(command, env, cwd=root)


def run_peer(data: Path, out: Path, k: int) -> Timing:
    return timed_process([sys.executable, "-c", PEER, str(data), str(out), str(k)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout whose clustra is timed in the same rounds")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (run, baseline_run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keep = args.keep or tmp
        data = tmp / "data"
        write_data(data, args.rows, args.dims, args.k)
        times: dict[str, list[Timing]] = {"clustra": [], "peer": []}
        if args.baseline:
            times["baseline"] = []
        for _ in range(args.repeats):
            if args.baseline:
                times["baseline"].append(run_clustra(args.baseline.resolve(), data, keep / "baseline_run", args.k))
            times["clustra"].append(run_clustra(ROOT, data, keep / "run", args.k))
            times["peer"].append(run_peer(data, tmp / "peer.json", args.k))
        board = json.loads((keep / "run" / "leaderboard.json").read_text())
        peer = json.loads((tmp / "peer.json").read_text())
    ours = board["models"][0]
    best_c, best_p = min(t.wall for t in times["clustra"]), min(t.wall for t in times["peer"])
    print(json.dumps({"rows": args.rows, "dims": args.dims, "k": args.k,
                      "runs": {side: [t.as_dict() for t in runs] for side, runs in times.items()},
                      "speedup": round(best_p / best_c, 2),
                      "clustra_ari": ours.get("ari"), "peer_ari": round(peer["models"][0]["ari"], 4),
                      "clustra_silhouette": ours.get("silhouette"), "peer_silhouette": round(peer["models"][0]["silhouette"], 4),
                      "machine": machine()}, indent=1))
    print()
    for side, runs in times.items():
        print(summary(side, runs))
    print(f"\n| rows x dims, k | clustra train (best of {args.repeats}) | pandas + scikit-learn | peer / Clustra | ARI Clustra | ARI peer |\n"
          f"|---|---:|---:|---:|---:|---:|\n| {args.rows:,} x {args.dims}, {args.k} | {best_c:.1f} s | {best_p:.1f} s | "
          f"{best_p / best_c:.2f}x | {ours.get('ari')} | {peer['models'][0]['ari']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
