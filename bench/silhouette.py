"""Silhouette: Clustra's sampled, faiss-backed estimate vs scikit-learn's exact silhouette_score.

Usage (repository root)::

    .venv/bin/python bench/silhouette.py [--n 40000] [--large 10000000] [--sample 10000]

Part 1 (n = 40k): exact vs estimate — absolute error and time ratio, over three seeds, with
the sample measured against all rows (the default up to 20,000 rows) and against a
``--reference``-row stratified sample (the path the default takes on larger data).
Part 2 (n = 10M): Clustra alone (scikit-learn's exact score needs n^2 distances), time, with
the default reference sample and against all rows.
The data: 16-dimensional blobs labelled by a KMeans model.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import blobs, machine, timed, write_result

from cluster_core.algorithms import KMeans  # noqa: E402
from cluster_core.blocks import ArrayBlocks  # noqa: E402
from cluster_core.metrics import DEFAULT_SILHOUETTE_REFERENCE, evaluate_clustering  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--reference", type=int, default=10_000, help="reference rows for the second estimate at --n")
    args = parser.parse_args()
    from sklearn.metrics import silhouette_score

    x = blobs(args.n, 16, args.k, seed=3)
    model = KMeans(args.k, random_state=0, device="cpu").fit(x)
    exact_s, exact = timed(lambda: silhouette_score(x, model.labels_))
    estimates = []
    for label, reference in (("all rows", 0), (f"{args.reference:,}-row reference", args.reference)):
        for seed in range(3):
            seconds, result = timed(lambda: evaluate_clustering(ArrayBlocks(x), model.predict, args.k,
                                                                sample_size=args.sample, reference_size=reference, seed=seed))
            estimates.append({"against": label, "seed": seed, "seconds": seconds, "silhouette": result["silhouette"],
                              "abs_error": abs(result["silhouette"] - exact)})
    payload = {"machine": machine(), "n": args.n, "sample": args.sample, "exact": exact, "exact_seconds": exact_s,
               "estimates": estimates}
    print(f"n={args.n}: exact {exact:.4f} in {exact_s:.1f}s")
    for e in estimates:
        print(f"  against {e['against']}, seed {e['seed']}: estimate {e['silhouette']:.4f} (|error| {e['abs_error']:.4f}) "
              f"in {e['seconds']:.2f}s -> {exact_s / e['seconds']:.1f}x faster")
    if args.large:
        big = blobs(args.large, 16, args.k, seed=3)  # same centers as the model was fitted on
        payload["large"] = []
        for label, reference in ((f"default {DEFAULT_SILHOUETTE_REFERENCE:,}-row reference", DEFAULT_SILHOUETTE_REFERENCE), ("all rows", 0)):
            seconds, result = timed(lambda: evaluate_clustering(ArrayBlocks(big), model.predict, args.k,
                                                                sample_size=args.sample, reference_size=reference, seed=0))
            payload["large"].append({"n": args.large, "against": label, "seconds": seconds, "silhouette": result["silhouette"]})
            print(f"n={args.large:,} against {label}: estimate {result['silhouette']:.4f} in {seconds:.1f}s "
                  f"(all three passes: cluster sums, spread + samples, sample-vs-reference distances)")
    print(f"(results: {write_result('silhouette', payload)})")


if __name__ == "__main__":
    main()
