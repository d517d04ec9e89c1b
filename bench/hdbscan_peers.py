"""HDBSCAN at 200k rows: Clustra (tree on a sample + approximate prediction for every row)
vs the `hdbscan` package and fast_hdbscan (full fits).

Usage (repository root)::

    .venv/bin/python bench/hdbscan_peers.py [--n 200000] [--d 4] [--sample 50000]

Reported: wall time of each, and the adjusted Rand index of Clustra's labels against each
full fit's labels (all rows, noise as its own label) — how much the sample-then-assign
path changes the answer.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import adjusted_rand_score

from _common import machine, timed, write_result

from cluster_core.algorithms import HDBSCAN  # noqa: E402


def data(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Eight Gaussian clusters of different sizes and spreads plus 5% uniform noise."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-20, 20, (8, d))
    sizes = rng.dirichlet(np.ones(8)) * n * 0.95
    parts = [centers[i] + rng.normal(0, 0.5 + i * 0.15, (int(s), d)) for i, s in enumerate(sizes)]
    parts.append(rng.uniform(-25, 25, (n - sum(len(p) for p in parts), d)))
    x = np.vstack(parts).astype(np.float32)
    return x[rng.permutation(len(x))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=4)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--min-cluster-size", type=int, default=500, dest="mcs")
    parser.add_argument("--min-samples", type=int, default=10, dest="ms")
    args = parser.parse_args()
    import fast_hdbscan
    import hdbscan

    x = data(args.n, args.d)
    fast_hdbscan.HDBSCAN(min_cluster_size=args.mcs, min_samples=args.ms).fit(x[:2000])  # numba compile, untimed
    # the sampled fit is sized like the full one: min_cluster_size scales with the sample share
    sample_mcs = max(5, int(round(args.mcs * min(1.0, args.sample / args.n))))
    runs = {}
    seconds, ours = timed(
        lambda: HDBSCAN(sample_mcs, min_samples=args.ms, max_fit_samples=args.sample, random_state=0, device="cpu").fit(x)
    )
    runs["clustra_sample_then_assign"] = {"seconds": seconds, "n_clusters": int(ours.n_clusters_),
                                          "noise_fraction": float((ours.labels_ < 0).mean())}
    seconds, ref = timed(lambda: hdbscan.HDBSCAN(min_cluster_size=args.mcs, min_samples=args.ms, core_dist_n_jobs=2).fit(x))
    runs["hdbscan_full"] = {"seconds": seconds, "n_clusters": int(ref.labels_.max() + 1),
                            "noise_fraction": float((ref.labels_ < 0).mean())}
    seconds, fast = timed(lambda: fast_hdbscan.HDBSCAN(min_cluster_size=args.mcs, min_samples=args.ms).fit(x))
    runs["fast_hdbscan_full"] = {"seconds": seconds, "n_clusters": int(fast.labels_.max() + 1),
                                 "noise_fraction": float((fast.labels_ < 0).mean())}
    runs["clustra_sample_then_assign"]["ari_vs_hdbscan_full"] = float(adjusted_rand_score(ref.labels_, ours.labels_))
    runs["clustra_sample_then_assign"]["ari_vs_fast_hdbscan_full"] = float(adjusted_rand_score(fast.labels_, ours.labels_))
    runs["fast_hdbscan_full"]["ari_vs_hdbscan_full"] = float(adjusted_rand_score(ref.labels_, fast.labels_))
    payload = {"machine": machine(), "n": args.n, "d": args.d, "sample": args.sample, "runs": runs}
    path = write_result("hdbscan_peers", payload)
    print(f"(results: {path})")
    print("| method | seconds | clusters | noise | ARI vs hdbscan full | ARI vs fast_hdbscan full |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in runs.items():
        print(f"| {name} | {r['seconds']:.1f} | {r['n_clusters']} | {r['noise_fraction']:.1%} | "
              f"{r.get('ari_vs_hdbscan_full', 1.0 if name == 'hdbscan_full' else float('nan')):.3f} | "
              f"{r.get('ari_vs_fast_hdbscan_full', 1.0 if name == 'fast_hdbscan_full' else float('nan')):.3f} |")


if __name__ == "__main__":
    main()
