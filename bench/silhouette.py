"""Silhouette: Clustra's sampled, faiss-backed estimate vs scikit-learn's exact silhouette_score.

Usage (repository root)::

    .venv/bin/python bench/silhouette.py [--n 40000] [--large 10000000] [--sample 10000]

Part 1 (n = 40k): exact vs estimate — absolute error and time ratio, over three seeds.
Part 2 (n = 10M): Clustra alone (scikit-learn's exact score needs n^2 distances), time.
The data: 16-dimensional blobs labelled by a KMeans model.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import blobs, machine, timed, write_result

from cluster_core.algorithms import KMeans  # noqa: E402
from cluster_core.blocks import ArrayBlocks  # noqa: E402
from cluster_core.metrics import evaluate_clustering  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=12)
    args = parser.parse_args()
    from sklearn.metrics import silhouette_score

    x = blobs(args.n, 16, args.k, seed=3)
    model = KMeans(args.k, random_state=0, device="cpu").fit(x)
    exact_s, exact = timed(lambda: silhouette_score(x, model.labels_))
    estimates = []
    for seed in range(3):
        seconds, result = timed(lambda: evaluate_clustering(ArrayBlocks(x), model.predict, args.k,
                                                            sample_size=args.sample, seed=seed))
        estimates.append({"seed": seed, "seconds": seconds, "silhouette": result["silhouette"],
                          "abs_error": abs(result["silhouette"] - exact)})
    payload = {"machine": machine(), "n": args.n, "sample": args.sample, "exact": exact, "exact_seconds": exact_s,
               "estimates": estimates}
    print(f"n={args.n}: exact {exact:.4f} in {exact_s:.1f}s")
    for e in estimates:
        print(f"  seed {e['seed']}: estimate {e['silhouette']:.4f} (|error| {e['abs_error']:.4f}) in {e['seconds']:.2f}s "
              f"-> {exact_s / e['seconds']:.1f}x faster")
    if args.large:
        big = blobs(args.large, 16, args.k, seed=3)  # same centers as the model was fitted on
        seconds, result = timed(lambda: evaluate_clustering(ArrayBlocks(big), model.predict, args.k,
                                                            sample_size=args.sample, seed=0))
        payload["large"] = {"n": args.large, "seconds": seconds, "silhouette": result["silhouette"]}
        print(f"n={args.large:,}: estimate {result['silhouette']:.4f} in {seconds:.1f}s "
              f"(all three passes: cluster sums, spread + sample, sample-vs-all distances)")
    print(f"(results: {write_result('silhouette', payload)})")


if __name__ == "__main__":
    main()
