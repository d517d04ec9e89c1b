"""The torch kernels on a GPU against the same code on the CPU (docs/gpu.md, "What is verified where").

Runs Clustra's KMeans (``engine="torch"``: Clustra's Lloyd kernels, not cuML) and
GaussianMixture with ``device="cuda"`` and ``device="cpu"`` on the same planted blobs, the same
seed and the same initial centers, and prints one JSON line per check: agreement (ARI between
the two devices' labels, relative difference of inertia / mean log-likelihood, ARI against the
planted labels) and fit seconds on each device (the second of two fits, so CUDA start-up is not
counted). Needs only numpy, scikit-learn, torch and the repository (no dask, pydantic, faiss
or cuML: ``cluster_core.algorithms`` imports none of them)::

    python bench/gpu_check.py [--rows 1000000] [--dims 32] [--k 64]

The first line names the devices and how the in-memory KMeans fit runs on the first one
(``DeviceRows``: rows resident on the device or streamed, rows per chunk); ``--devices cpu,cpu``
checks the script on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _fit_twice(make, X):
    make().fit(X)  # warm-up: CUDA context, kernels compiled / cached
    started = time.perf_counter()
    model = make().fit(X)
    return model, time.perf_counter() - started


def _fit_layout(X, k: int, device: str) -> dict:
    """How an in-memory KMeans fit runs on ``device``: the per-block kernels on the CPU, else
    :class:`~cluster_core.kernels.kmeans.DeviceRows` (resident or streamed, rows per chunk)."""
    from cluster_core.kernels._torch import chunk_rows
    from cluster_core.kernels.kmeans import DeviceRows

    if device == "cpu":
        return {"path": "Hamerly-bounded Lloyd on CPU blocks"}
    rows = DeviceRows(X, device)
    layout = {"path": "DeviceRows", "resident": rows.resident, "block_rows": rows.block_rows,
              "chunk_rows": chunk_rows(min(len(X), rows.block_rows), k, device=device)}
    del rows
    return layout


def main() -> None:
    import numpy as np
    import torch
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    from cluster_core.algorithms import GaussianMixture, KMeans

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--gmm-rows", type=int, default=200_000)
    parser.add_argument("--gmm-k", type=int, default=16)
    parser.add_argument("--devices", default="cuda,cpu", help="the two devices compared (cpu,cpu checks the script here)")
    args = parser.parse_args()
    first, second = args.devices.split(",")
    X, truth = make_blobs(args.rows, args.dims, centers=args.k, cluster_std=1.0, random_state=0)
    X = X.astype(np.float32)
    print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                      "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                      "devices": [first, second], "kmeans_fit_on_first": _fit_layout(X, args.k, first)}), flush=True)
    init = X[np.random.default_rng(0).choice(len(X), args.k, replace=False)]
    fits = [_fit_twice(lambda: KMeans(args.k, init=init, n_init=1, max_iter=100, tol=0.0, random_state=0,
                                                 device=device, engine="torch"), X)
            for device in (first, second)]
    (gpu, t_gpu), (cpu, t_cpu) = fits
    print(json.dumps({"check": "kmeans, same initial centers", "rows": args.rows, "dims": args.dims, "k": args.k,
                      "ari_gpu_vs_cpu": round(adjusted_rand_score(cpu.labels_, gpu.labels_), 6),
                      "inertia_rel_diff": abs(gpu.inertia_ - cpu.inertia_) / cpu.inertia_,
                      "n_iter": [int(gpu.n_iter_), int(cpu.n_iter_)],
                      "ari_vs_planted": [round(adjusted_rand_score(truth, gpu.labels_), 4),
                                         round(adjusted_rand_score(truth, cpu.labels_), 4)],
                      "fit_s": {"cuda": round(t_gpu, 3), "cpu": round(t_cpu, 3)}, "speedup": round(t_cpu / t_gpu, 1),
                      "ms_per_iter": {"cuda": round(1e3 * t_gpu / gpu.n_iter_, 2), "cpu": round(1e3 * t_cpu / cpu.n_iter_, 2)}}),
          flush=True)
    fits = [_fit_twice(lambda: KMeans(args.k, n_init=3, random_state=0, device=device, engine="torch"), X)
            for device in (first, second)]
    (gpu, t_gpu), (cpu, t_cpu) = fits
    print(json.dumps({"check": "kmeans, k-means++ x3 each", "ari_gpu_vs_cpu": round(adjusted_rand_score(cpu.labels_, gpu.labels_), 6),
                      "inertia_rel_diff": abs(gpu.inertia_ - cpu.inertia_) / cpu.inertia_,
                      "n_iter_of_kept_run": [int(gpu.n_iter_), int(cpu.n_iter_)],
                      "ari_vs_planted": [round(adjusted_rand_score(truth, gpu.labels_), 4),
                                         round(adjusted_rand_score(truth, cpu.labels_), 4)],
                      "fit_s": {"cuda": round(t_gpu, 3), "cpu": round(t_cpu, 3)}, "speedup": round(t_cpu / t_gpu, 1)}),
          flush=True)

    Xg, truth_g = make_blobs(args.gmm_rows, 16, centers=args.gmm_k, cluster_std=1.5, random_state=1)
    Xg = Xg.astype(np.float32)
    fits = [_fit_twice(lambda: GaussianMixture(args.gmm_k, covariance_type="full", max_iter=100, reg_covar=1e-4,
                                                          random_state=0, device=device), Xg)
            for device in (first, second)]
    (gpu, t_gpu), (cpu, t_cpu) = fits
    print(json.dumps({"check": "gmm full covariance", "rows": args.gmm_rows, "k": args.gmm_k,
                      "ari_gpu_vs_cpu": round(adjusted_rand_score(cpu.predict(Xg), gpu.predict(Xg)), 6),
                      "lower_bound": [float(gpu.lower_bound_), float(cpu.lower_bound_)],
                      "ari_vs_planted": [round(adjusted_rand_score(truth_g, gpu.predict(Xg)), 4),
                                         round(adjusted_rand_score(truth_g, cpu.predict(Xg)), 4)],
                      "fit_s": {"cuda": round(t_gpu, 3), "cpu": round(t_cpu, 3)}, "speedup": round(t_cpu / t_gpu, 1)}),
          flush=True)


if __name__ == "__main__":
    main()
