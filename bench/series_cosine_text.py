"""Cosine vs Euclidean KMeans on text embeddings of gensim's newsgroup posts (docs/benchmarks.md,
"Cosine KMeans on text embeddings").

The 200 posts (alt.atheism, sci.space) are embedded with the packaged sentence model
(unit vectors), then the same embeddings with row lengths drawn from U(0.2, 5) (what a model
that does not normalize its output gives); KMeans at k = 2 with 1, 3 (Clustra's default) and 10
k-means++ restarts, seeds 0-31 (the ARI moves by a post or two between seeds, so one seed says
little)::

    python bench/series_cosine_text.py
"""

from __future__ import annotations

import sys

import numpy as np

from _common import ROOT

sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from _real_data import newsgroups_posts
    from sklearn.metrics import adjusted_rand_score

    from cluster_core.algorithms import KMeans
    from cluster_core.features.text import TextFeaturizer

    posts = newsgroups_posts()
    truth = posts["group"].to_numpy()
    rows = {}
    restarts = (1, 3, 10)
    for method in ("embedding", "tfidf"):
        features = TextFeaturizer("text", method=method).fit(posts).transform(posts)
        lengths = np.random.default_rng(0).uniform(0.2, 5.0, (len(features), 1)).astype(np.float32)
        for variant, X in (("as featurized (unit rows)", features), ("row lengths U(0.2, 5)", features * lengths)):
            for metric in ("euclidean", "cosine"):
                for n_init in restarts:
                    scores = [adjusted_rand_score(truth, KMeans(2, n_init=n_init, random_state=s, metric=metric,
                                                                device="cpu").fit(X).labels_) for s in range(32)]
                    rows[(method, variant, metric, n_init)] = (float(np.mean(scores)), float(np.min(scores)),
                                                               float(np.max(scores)))
    print("| text features | rows | restarts | Euclidean ARI mean (min-max) | cosine ARI mean (min-max) |")
    print("|---|---|---:|---|---|")
    for method in ("embedding", "tfidf"):
        for variant in ("as featurized (unit rows)", "row lengths U(0.2, 5)"):
            for n_init in restarts:
                e, c = rows[(method, variant, "euclidean", n_init)], rows[(method, variant, "cosine", n_init)]
                print(f"| {method} | {variant} | {n_init} | {e[0]:.3f} ({e[1]:.3f}-{e[2]:.3f}) | "
                      f"{c[0]:.3f} ({c[1]:.3f}-{c[2]:.3f}) |")

if __name__ == "__main__":
    main()
