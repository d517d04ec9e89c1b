"""Gaussian mixture: Clustra vs scikit-learn, same data, same initial parameters, fixed EM iterations.

Usage (repository root)::

    .venv/bin/python bench/gmm_peers.py [--n 200000] [--d 16] [--k 16] [--iters 20]

Both start from identical weights, means and precisions (from a k-means run) and run
exactly ``--iters`` EM iterations (tol = 0) for each covariance type. Reported: seconds,
scikit-learn's time divided by Clustra's, and the difference of the final mean
log-likelihood per sample (target: within 1e-3).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from _common import blobs, machine, timed, write_result

from cluster_core.algorithms import GaussianMixture, KMeans  # noqa: E402


def initial_parameters(x: np.ndarray, k: int, covariance_type: str) -> dict:
    labels = KMeans(k, n_init=1, random_state=0, device="cpu").fit(x).labels_
    weights = np.bincount(labels, minlength=k) / len(labels)
    means = np.stack([x[labels == j].mean(0) for j in range(k)]).astype(np.float64)
    if covariance_type == "full":
        precisions = np.stack([np.linalg.inv(np.cov(x[labels == j].T) + 1e-6 * np.eye(x.shape[1])) for j in range(k)])
    else:
        precisions = np.stack([1.0 / (x[labels == j].var(0) + 1e-6) for j in range(k)])
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def run(x: np.ndarray, k: int, iters: int, covariance_type: str, repeats: int) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SkGM

    init = initial_parameters(x, k, covariance_type)
    common = {"covariance_type": covariance_type, "max_iter": iters, "tol": 0.0, **init}
    ours_s, ours = timed(lambda: GaussianMixture(k, device="cpu", **common).fit(x), repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk_s, sk = timed(lambda: SkGM(k, **common).fit(x), repeats)
    x64 = x.astype(np.float64)
    return {
        "clustra_seconds": ours_s,
        "sklearn_seconds": sk_s,
        "speedup": sk_s / ours_s,
        "clustra_loglik": float(ours.score(x64)),
        "sklearn_loglik": float(sk.score(x64)),
        "loglik_diff_per_sample": abs(float(ours.score(x64)) - float(sk.score(x64))),
        "iterations": [int(ours.n_iter_), int(sk.n_iter_)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    x = blobs(args.n, args.d, args.k, seed=1)
    GaussianMixture(2, max_iter=2, device="cpu").fit(x[:5000])  # one-time kernel loading, not timed
    payload = {"machine": machine(), "n": args.n, "d": args.d, "k": args.k, "iters": args.iters, "runs": {}}
    for covariance_type in ("diag", "full"):
        payload["runs"][covariance_type] = run(x, args.k, args.iters, covariance_type, args.repeats)
    path = write_result("gmm_peers", payload)
    print(f"(results: {path})")
    print("| covariance | Clustra s | scikit-learn s | speed-up | log-likelihood diff / sample | iterations c/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in payload["runs"].items():
        print(f"| {name} | {r['clustra_seconds']:.2f} | {r['sklearn_seconds']:.2f} | {r['speedup']:.2f}x | "
              f"{r['loglik_diff_per_sample']:.1e} | {r['iterations'][0]}/{r['iterations'][1]} |")


if __name__ == "__main__":
    main()
