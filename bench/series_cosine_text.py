"""Cosine vs Euclidean KMeans on text embeddings of gensim's newsgroup posts (docs/benchmarks.md,
"Cosine KMeans on text embeddings").

The 200 posts (alt.atheism, sci.space) are embedded with the packaged sentence model
(unit vectors), then the same embeddings with row lengths drawn from U(0.2, 5) (what a model
that does not normalize its output gives); KMeans at k = 2, 10 restarts, seeds 0-7::

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
    for method in ("embedding", "tfidf"):
        features = TextFeaturizer("text", method=method).fit(posts).transform(posts)
        lengths = np.random.default_rng(0).uniform(0.2, 5.0, (len(features), 1)).astype(np.float32)
        for variant, X in (("as featurized (unit rows)", features), ("row lengths U(0.2, 5)", features * lengths)):
            for metric in ("euclidean", "cosine"):
                scores = [adjusted_rand_score(truth, KMeans(2, n_init=10, random_state=s, metric=metric, device="cpu")
                                              .fit(X).labels_) for s in range(8)]
                rows[(method, variant, metric)] = (float(np.mean(scores)), float(np.min(scores)), float(np.max(scores)))
    print("| text features | rows | Euclidean ARI mean (min-max) | cosine ARI mean (min-max) |")
    print("|---|---|---|---|")
    for method in ("embedding", "tfidf"):
        for variant in ("as featurized (unit rows)", "row lengths U(0.2, 5)"):
            e, c = rows[(method, variant, "euclidean")], rows[(method, variant, "cosine")]
            print(f"| {method} | {variant} | {e[0]:.3f} ({e[1]:.3f}-{e[2]:.3f}) | {c[0]:.3f} ({c[1]:.3f}-{c[2]:.3f}) |")


if __name__ == "__main__":
    main()
