"""A small mixed table end to end: ``clustra train`` beside the pandas + scikit-learn script a user would write.

Usage (from the repository root)::

    .venv/bin/python bench/e2e_small.py [--rows 5000] [--repeats 3]

The table: 5,000 rows with numbers, a category, a flag, a date and missing values (four
planted segments). Both sides are separate processes timed from start to the leaderboard
on disk, alternated ``--repeats`` times (the best of each is reported, and every run):

- ``clustra train DATA --out RUN --algorithms kmeans,gmm --k 2,...,8`` at its defaults
  (KMeans 3 restarts, GMM 1, an 80/20 split; it also measures stability, writes insights
  and one model directory per model);
- a pandas + scikit-learn script: read the Parquet, impute and scale the numbers, one-hot the
  category, the date as days, the same 80/20 split, ``KMeans(n_init=3)`` and
  ``GaussianMixture(n_init=3)`` (the restarts of Clustra's defaults) for k = 2..8, silhouette, Davies-Bouldin and Calinski-Harabasz
  on the validation rows, a JSON leaderboard.

The ratio is Clustra's time over the script's (below 1: Clustra is faster). Also printed: ARI
of each side's best-silhouette model against the planted segments; wall and CPU seconds
(user + sys) of every run, with the load average at its start.

``--baseline DIR``: also time the ``clustra`` of another checkout (e.g. ``git archive main |
tar -x -C DIR``) in the same rounds, for before/after side by side; ``--keep DIR`` keeps the
run directories (run, baseline_run) to compare with ``bench/e2e_compare_runs.py``.
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
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

frame = pd.read_parquet(sys.argv[1]).drop(columns=["segment_truth"])
frame["signup"] = (frame["signup"] - frame["signup"].min()).dt.days
frame["member"] = frame["member"].astype(float)
numeric = ["spend", "visits", "tenure", "signup", "member"]
prep = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
    ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")), ["plan"]),
], sparse_threshold=0)
train, valid = train_test_split(frame, test_size=0.2, random_state=0)
xt = prep.fit_transform(train)
xv = prep.transform(valid)
rows = []
for k in range(2, 9):
    for name, model in (("kmeans", KMeans(k, n_init=3, random_state=0)), ("gmm", GaussianMixture(k, n_init=3, random_state=0))):
        model.fit(xt)
        labels = model.predict(xv)
        rows.append({"model_id": f"{name}-k{k}", "silhouette": float(silhouette_score(xv, labels)),
                     "davies_bouldin": float(davies_bouldin_score(xv, labels)),
                     "calinski_harabasz": float(calinski_harabasz_score(xv, labels))})
rows.sort(key=lambda r: -r["silhouette"])
json.dump({"models": rows, "best": rows[0]["model_id"]}, open(sys.argv[2], "w"))
'''


def table(n: int, seed: int = 0) -> pd.DataFrame:
    """Four segments in numbers, a category, a flag and a date; 5% missing values."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 4, n)
    frame = pd.DataFrame({
        "spend": segment * 30 + rng.normal(100, 10, n),
        "visits": (segment % 2) * 6 + rng.normal(4, 1.5, n),
        "tenure": rng.gamma(2.0, 150, n) + segment * 100,
        "plan": np.where(rng.random(n) < 0.8, np.array(["basic", "pro", "team", "free"])[segment],
                         rng.choice(["basic", "pro", "team", "free"], n)),
        "member": segment >= 2,
        "signup": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n) + segment * 60, unit="D"),
        "segment_truth": segment.astype(str),
    })
    for column in ("spend", "visits", "plan"):
        frame.loc[rng.random(n) < 0.05, column] = None
    return frame


def run_clustra(root: Path, data: Path, out: Path) -> Timing:
    command, env = clustra_command(root, "train", str(data), "--out", str(out), "--algorithms", "kmeans,gmm",
                                   "--k", ",".join(str(k) for k in range(2, 9)), "--exclude", "segment_truth", "--overwrite")
    return timed_process(command, env, cwd=root)


def run_peer(data: Path, out: Path) -> Timing:
    return timed_process([sys.executable, "-c", PEER, str(data), str(out)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout whose clustra is timed in the same rounds")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (run, baseline_run)")
    args = parser.parse_args()
    from sklearn.metrics import adjusted_rand_score

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keep = args.keep or tmp
        frame = table(args.rows)
        data = tmp / "table.parquet"
        frame.to_parquet(data)
        times: dict[str, list[Timing]] = {"clustra": [], "peer": []}
        if args.baseline:
            times["baseline"] = []
        for _ in range(args.repeats):
            if args.baseline:
                times["baseline"].append(run_clustra(args.baseline.resolve(), data, keep / "baseline_run"))
            times["clustra"].append(run_clustra(ROOT, data, keep / "run"))
            times["peer"].append(run_peer(data, tmp / "peer.json"))
        board = json.loads((keep / "run" / "leaderboard.json").read_text())
        aris = {}
        for role, model_id in (("best_silhouette", board["best"]), ("recommended", board.get("recommended"))):
            if model_id:
                command, env = clustra_command(ROOT, "apply", str(keep / "run" / "models" / model_id), str(data),
                                               "--out", str(tmp / role))
                timed_process(command, env, cwd=ROOT)
                scored = pd.read_parquet(tmp / role)  # every input column is kept, the label too (not a feature)
                aris[role] = {"model": model_id,
                              "ari": round(adjusted_rand_score(scored["segment_truth"], scored["cluster_id"]), 3)}
    best_c, best_p = min(t.wall for t in times["clustra"]), min(t.wall for t in times["peer"])
    print(json.dumps({"rows": args.rows, "runs": {side: [t.as_dict() for t in runs] for side, runs in times.items()},
                      "ratio_best": round(best_c / best_p, 2), "clustra_ari": aris, "machine": machine()}, indent=1))
    print()
    for side, runs in times.items():
        print(summary(side, runs))
    print(f"\n| rows | clustra train (best of {args.repeats}) | pandas + scikit-learn | ratio |\n|---:|---:|---:|---:|\n"
          f"| {args.rows:,} | {best_c:.1f} s | {best_p:.1f} s | {best_c / best_p:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
