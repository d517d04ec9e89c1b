"""KMeans: Clustra vs scikit-learn vs faiss, same data, same initial centroids, fixed iterations.

Usage (repository root)::

    .venv/bin/python bench/kmeans_peers.py [--n 1000000] [--d 32] [--k 64,256] [--iters 20] [--data gaussian|blobs]

All three start from the same centroids (k-means++ on a sample) and run exactly
``--iters`` Lloyd iterations (tol = 0); faiss gets ``max_points_per_centroid`` raised so it
uses every point. The final inertia of each is measured by the same function and must
agree within 0.1%. Reported: seconds, effective GFLOP/s (a full pass, 2·n·k·d, per iteration over
the time: rows skipped by bounds count as done), and each peer's
time divided by Clustra's, next to this machine's SGEMM rate measured in the same run.

``--data gaussian`` (default, the issue's benchmark): one standard Gaussian, where Lloyd keeps
moving and every peer runs all iterations. ``--data blobs``: 100 Gaussian blobs (std 2), data
with clusters, where Clustra's Hamerly bounds skip most rows and the centers may stop moving
before ``--iters`` (tol = 0: each stops when nothing changes).
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import machine, sgemm_gflops, timed, write_result

from cluster_core.algorithms import KMeans  # noqa: E402
from cluster_core.kernels.kmeans import assign_nearest, kmeans_plusplus  # noqa: E402


def inertia(x: np.ndarray, centers: np.ndarray) -> float:
    return float(assign_nearest(x, centers, "cpu")[1].astype(np.float64).sum())


def run(x: np.ndarray, k: int, iters: int, repeats: int) -> dict:
    import faiss
    from sklearn.cluster import KMeans as SkKMeans

    n, d = x.shape
    rng = np.random.default_rng(0)
    init = kmeans_plusplus(x[rng.choice(n, min(n, 50 * k), replace=False)], k, rng)
    results = {}

    def clustra():
        model = KMeans(k, init=init, n_init=1, max_iter=iters, tol=0, device="cpu").fit(x)
        return model.cluster_centers_, model.n_iter_

    def sklearn():
        model = SkKMeans(k, init=init, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(x)
        return model.cluster_centers_, model.n_iter_

    def faiss_kmeans():
        km = faiss.Kmeans(d, k, niter=iters, max_points_per_centroid=n, seed=0)
        km.train(x, init_centroids=init)
        return km.centroids, len(km.obj)

    for name, fn in (("clustra", clustra), ("sklearn", sklearn), ("faiss", faiss_kmeans)):
        seconds, (centers, n_iter) = timed(fn, repeats)
        results[name] = {
            "seconds": seconds,
            "iterations": int(n_iter),
            "gflops": 2 * n * k * d * n_iter / seconds / 1e9,
            "inertia": inertia(x, np.asarray(centers, np.float32)),
        }
    base = results["clustra"]
    for name in ("sklearn", "faiss"):
        results[name]["time_vs_clustra"] = results[name]["seconds"] / base["seconds"]
        results[name]["inertia_rel_diff"] = abs(results[name]["inertia"] - base["inertia"]) / base["inertia"]
    results["speedup_vs_faster_peer"] = min(results["sklearn"]["seconds"], results["faiss"]["seconds"]) / base["seconds"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", default="64,256")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", choices=("gaussian", "blobs"), default="gaussian")
    args = parser.parse_args()
    if args.data == "blobs":
        from sklearn.datasets import make_blobs

        x = make_blobs(args.n, args.d, centers=100, cluster_std=2.0, random_state=0)[0].astype(np.float32)
    else:  # one Gaussian: Lloyd keeps moving, so every peer really runs all --iters iterations
        x = np.random.default_rng(0).standard_normal((args.n, args.d), dtype=np.float32)
    # one-time costs (numba kernel load/compile, GEMM-library calibration) happen here, not in the timings
    KMeans(4, n_init=1, max_iter=2, device="cpu").fit(x[:10_000])
    payload = {"machine": machine(), "sgemm_gflops": sgemm_gflops(), "data": args.data, "n": args.n, "d": args.d, "iters": args.iters, "runs": {}}
    for k in map(int, args.k.split(",")):
        payload["runs"][str(k)] = run(x, k, args.iters, args.repeats)
    path = write_result("kmeans_peers" if args.data == "gaussian" else f"kmeans_peers_{args.data}", payload)
    print(f"SGEMM ceiling: {payload['sgemm_gflops']:.0f} GFLOP/s  (results: {path})")
    print("| k | Clustra s (GFLOP/s) | scikit-learn s (GFLOP/s) | faiss s (GFLOP/s) | speed-up vs faster peer | inertia diff sk / faiss | iterations c/s/f |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in payload["runs"].items():
        c, s, f = r["clustra"], r["sklearn"], r["faiss"]
        print(
            f"| {k} | {c['seconds']:.2f} ({c['gflops']:.0f}) | {s['seconds']:.2f} ({s['gflops']:.0f}) | "
            f"{f['seconds']:.2f} ({f['gflops']:.0f}) | {r['speedup_vs_faster_peer']:.2f}x | "
            f"{s['inertia_rel_diff']:.1e} / {f['inertia_rel_diff']:.1e} | {c['iterations']}/{s['iterations']}/{f['iterations']} |"
        )


if __name__ == "__main__":
    main()
