"""Series mode on real labelled series: UCR datasets shipped inside PyPI packages, clustered at
the true k through the CLI, ARI per dataset and method vs scikit-learn KMeans on the raw
z-normalized series (docs/benchmarks.md, "Series mode").

Data (nothing is downloaded at run time):

* ``Trace`` ships with tslearn (``tslearn/.cached_datasets/Trace.npz``; tslearn is a dev
  dependency);
* ``ArrowHead``, ``GunPoint``, ``ItalyPowerDemand``, ``OSULeaf`` and the multivariate
  ``BasicMotions`` ship in aeon's wheel (``aeon/datasets/data/NAME/NAME_{TRAIN,TEST}.ts``).
  aeon 1.6 pins pandas < 3.1, so it is unpacked beside the project, not installed into it::

      pip install --no-deps --target .bench-data/aeon aeon==1.6.0
      python bench/series_ucr.py --aeon-root .bench-data/aeon/aeon --out /tmp/series-ucr

Each dataset (train + test) becomes a long table ``series, t, value`` (``dim0..`` for a
multivariate one) + ``label``; every method is one ``clustra train --series-id series --time t
--k TRUE_K`` run; the ARI is that of ``series_assignments.parquet`` against the labels.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import ROOT

UCR = ("ArrowHead", "GunPoint", "ItalyPowerDemand", "OSULeaf", "BasicMotions")
METHODS = {
    "features (kmeans)": ["--series-method", "features", "--algorithms", "kmeans"],
    "shape (DTW k-means)": ["--series-method", "shape"],
    "kshape": ["--series-method", "kshape"],
}


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A ``.ts`` file of equal-length series: (n, length, dims) values and labels."""
    series, labels = [], []
    in_data = False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *dims, label = line.split(":")
        series.append(np.array([[float(v) for v in d.split(",")] for d in dims]).T)
        labels.append(label)
    return np.stack(series), np.array(labels)


def load(name: str, aeon_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Train + test of ``name``: values (n, length, dims), labels."""
    if name == "Trace":
        import tslearn

        data = np.load(Path(tslearn.__file__).parent / ".cached_datasets" / "Trace.npz")
        values = np.concatenate([data["X_train"], data["X_test"]])
        return values, np.concatenate([data["y_train"], data["y_test"]]).astype(str)
    parts = [read_ts(aeon_root / "datasets" / "data" / name / f"{name}_{split}.ts") for split in ("TRAIN", "TEST")]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def long_table(values: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    n, length, dims = values.shape
    frame = pd.DataFrame({"series": np.repeat([f"s{i:05d}" for i in range(n)], length), "t": np.tile(np.arange(length), n)})
    for d in range(dims):
        frame["value" if dims == 1 else f"dim{d}"] = values[:, :, d].ravel()
    frame["label"] = np.repeat(labels, length)
    return frame


def baseline(values: np.ndarray, labels: np.ndarray, k: int, seed: int = 0) -> float:
    """scikit-learn KMeans on the raw z-normalized series (dims concatenated)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    z = (values - values.mean(axis=1, keepdims=True)) / np.maximum(values.std(axis=1, keepdims=True), 1e-12)
    found = KMeans(k, n_init=10, random_state=seed).fit_predict(z.reshape(len(z), -1))
    return float(adjusted_rand_score(labels, found))


def run_method(data: Path, out: Path, k: int, flags: list[str]) -> tuple[float, float, pd.DataFrame]:
    command = [sys.executable, "-m", "clustra.cli", "train", str(data), "--series-id", "series", "--time", "t",
               "--k", str(k), "--seed", "0", "--no-insights", "--scheduler", "inprocess", "--out", str(out), "--overwrite",
               *flags]
    env = dict(os.environ, CLUSTRA_DEVICE="cpu", PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return seconds, done.returncode, pd.read_parquet(out / "series_assignments.parquet")


def main() -> None:
    from sklearn.metrics import adjusted_rand_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aeon-root", type=Path, default=ROOT / ".bench-data" / "aeon" / "aeon")
    parser.add_argument("--out", type=Path, default=Path("/tmp/series-ucr"))
    parser.add_argument("--datasets", default=",".join(("Trace", *UCR)))
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets.split(","):
        values, labels = load(name, args.aeon_root)
        k = len(np.unique(labels))
        frame = long_table(values, labels)
        data = args.out / f"{name}.parquet"
        frame.to_parquet(data, index=False)
        truth = dict(zip(frame["series"], frame["label"]))
        row = {"dataset": name, "series": len(values), "length": values.shape[1], "dims": values.shape[2], "k": k,
               "sklearn KMeans (z-normalized)": round(baseline(values, labels, k), 3)}
        for method in args.methods.split(","):
            seconds, _, assigned = run_method(data, args.out / f"{name}-{method.split()[0]}", k, METHODS[method])
            row[method] = round(float(adjusted_rand_score([truth[s] for s in assigned["series"]], assigned["cluster_id"])), 3)
            row[f"{method} s"] = round(seconds, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    columns = list(rows[0]) if rows else []
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")


if __name__ == "__main__":
    main()
