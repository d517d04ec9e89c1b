"""Featurizer throughput (rows/s) and clustering quality on real data shipped by packages.

Run: ``.venv/bin/python bench/featurizers.py [--docs 200] [--digits 1797] [--out FILE.json]``

* text, embeddings: Clustra's TextFeaturizer against sentence-transformers' own
  ``encode`` on the same posts, batch size and thread count (the ratio is our overhead);
  thread counts 1 and all cores;
* text, TF-IDF + SVD: against scikit-learn's TfidfVectorizer + TruncatedSVD transform;
* image: scikit-learn's 1,797 digits as PNG files (decode + torch features), ARI of
  KMeans(10) against the true digits;
* geo: vega_datasets' airports (lat/lon -> unit sphere).

Timings are the best of ``--repeats`` runs after one warm-up (models loaded beforehand).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("CLUSTRA_DEVICE", "cpu")


def best_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_text(posts: pd.DataFrame, repeats: int, max_length: int) -> list[dict]:
    import torch

    from cluster_core.features.text import TextFeaturizer, load_sentence_model

    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        featurizer = TextFeaturizer("text", method="embedding", batch_size=32, threads=threads, max_length=max_length).fit(posts.head(4))
        model = load_sentence_model(featurizer.model_ref_, "cpu", max_length)
        texts = posts["text"].tolist()

        def peer():
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
            finally:
                torch.set_num_threads(previous)

        ours = best_seconds(lambda: featurizer.transform(posts), repeats)
        theirs = best_seconds(peer, repeats)
        rows.append({"featurizer": f"text embedding (MiniLM-L6, max_length {max_length}, batch 32, {threads} thread(s))",
                     "rows": len(posts), "rows_per_s": len(posts) / ours, "peer": "SentenceTransformer.encode",
                     "peer_rows_per_s": len(posts) / theirs, "ratio": theirs / ours})
    return rows


def bench_tfidf(posts: pd.DataFrame, repeats: int) -> dict:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from cluster_core.features.text import TextFeaturizer

    featurizer = TextFeaturizer("text", method="tfidf", components=64).fit(posts)
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_df=0.95).fit(posts["text"])
    svd = TruncatedSVD(64, random_state=0).fit(vectorizer.transform(posts["text"]))
    ours = best_seconds(lambda: featurizer.transform(posts), repeats)
    theirs = best_seconds(lambda: svd.transform(vectorizer.transform(posts["text"])), repeats)
    return {"featurizer": "text TF-IDF + SVD (64)", "rows": len(posts), "rows_per_s": len(posts) / ours,
            "peer": "TfidfVectorizer+TruncatedSVD", "peer_rows_per_s": len(posts) / theirs, "ratio": theirs / ours}


def bench_image(n: int, repeats: int) -> dict:
    from _real_data import write_digits
    from sklearn.metrics import adjusted_rand_score

    from cluster_core.algorithms import KMeans
    from cluster_core.features import FeaturePipeline
    from cluster_core.schema import infer_schema

    with tempfile.TemporaryDirectory() as root:
        digits = write_digits(Path(root), n, seed=0)
        pipeline = FeaturePipeline(infer_schema(digits[["image"]])).fit(digits)
        seconds = best_seconds(lambda: pipeline.transform(digits), repeats)
        features = pipeline.transform(digits)
        aris = [adjusted_rand_score(digits["label"], KMeans(10, n_init=5, random_state=s).fit(features).predict(features)) for s in range(3)]
        reduced = FeaturePipeline(infer_schema(digits[["image"]]), reduce="pca", reduce_components=20).fit(digits).transform(digits)
        aris_pca = [adjusted_rand_score(digits["label"], KMeans(10, n_init=5, random_state=s).fit(reduced).predict(reduced)) for s in range(3)]
    return {"featurizer": "image low-level (PNG decode + torch features, 64 px)", "rows": n, "rows_per_s": n / seconds,
            "ari_kmeans10": float(np.mean(aris)), "ari_kmeans10_pca20": float(np.mean(aris_pca))}


def bench_geo(repeats: int) -> dict:
    from _real_data import airports

    from cluster_core.features.geo import GeoFeaturizer

    frame = pd.concat([airports()] * 30, ignore_index=True)
    featurizer = GeoFeaturizer("latitude", lat="latitude", lon="longitude").fit(frame)
    seconds = best_seconds(lambda: featurizer.transform(frame), repeats)
    return {"featurizer": "geo lat/lon -> unit sphere", "rows": len(frame), "rows_per_s": len(frame) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="newsgroup posts to embed (at most 200)")
    parser.add_argument("--digits", type=int, default=1797)
    parser.add_argument("--max-length", type=int, default=256, dest="max_length")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", help="also write the results as JSON")
    args = parser.parse_args()
    from _real_data import newsgroups_posts

    posts = newsgroups_posts().head(args.docs)
    results = [*bench_text(posts, args.repeats, args.max_length), bench_tfidf(posts, args.repeats),
               bench_image(args.digits, args.repeats), bench_geo(args.repeats)]
    print(f"cores: {os.cpu_count()}")
    for row in results:
        extra = f"  peer {row['peer']}: {row['peer_rows_per_s']:,.0f} rows/s (ours/peer speed {row['ratio']:.2f})" if "peer" in row else ""
        quality = f"  ARI {row['ari_kmeans10']:.3f} (PCA-20: {row['ari_kmeans10_pca20']:.3f})" if "ari_kmeans10" in row else ""
        print(f"{row['featurizer']}: {row['rows_per_s']:,.0f} rows/s on {row['rows']} rows{extra}{quality}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
