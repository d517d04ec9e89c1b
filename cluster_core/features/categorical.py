"""Categorical columns: one-hot with an "other" bucket, or frequency encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._arrow import arrow_category_codes
from ._base import Featurizer, RobustScaler, register

MISSING = "<missing>"


def as_labels(values: pd.Series) -> pd.Series:
    """Category labels as strings, missing as ``<missing>``."""
    return values.astype("string").fillna(MISSING).astype(object)


@register
class CategoricalFeaturizer(Featurizer):
    """Low cardinality: one-hot; high cardinality: frequency encoding.

    Options: ``max_onehot`` (default 30): columns with at most this many distinct
    values in the sample are one-hot encoded; categories seen in under
    ``min_frequency`` (default 0.5%) of the sample, and categories never seen, share
    the ``<name>=<other>`` column. Missing is a category of its own. Columns with more
    distinct values get one feature: the log of the value's sample frequency, robust-
    scaled (unseen values count as half an occurrence).
    """

    kind = "categorical"

    def fit(self, frame: pd.DataFrame) -> CategoricalFeaturizer:
        labels = as_labels(frame[self.column])
        counts = labels.value_counts()
        n = max(len(labels), 1)
        max_onehot = int(self.options.get("max_onehot", 30))
        min_frequency = float(self.options.get("min_frequency", 0.005))
        if len(counts) <= max_onehot:
            self.encoding_ = "onehot"
            kept = counts[counts >= max(1.0, min_frequency * n)]
            self.categories_ = [str(c) for c in kept.index]
            self.feature_names_ = [f"{self.column}={c}" for c in self.categories_] + [f"{self.column}=<other>"]
        else:
            self.encoding_ = "frequency"
            self.categories_ = [str(c) for c in counts.index]
            self.log_frequency_ = np.log(counts.to_numpy(np.float64) / n)
            self.unseen_log_frequency_ = float(np.log(0.5 / n))
            self.scaler_ = RobustScaler().fit(self.log_frequency_[np.repeat(np.arange(len(counts)), counts.to_numpy())])
            self.feature_names_ = [f"{self.column}__frequency"]
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self._encode(pd.Index(self.categories_).get_indexer(as_labels(frame[self.column])))

    def transform_arrow(self, table, out: np.ndarray | None = None) -> np.ndarray:
        codes = arrow_category_codes(table.column(self.column), self.categories_, MISSING)
        return super().transform_arrow(table, out) if codes is None else self._encode(codes, out)

    def _encode(self, codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Position of each row's label in ``categories_`` (-1: not among them) to the block (written to ``out``
        when given)."""
        if self.encoding_ == "onehot":
            if out is None:
                out = np.zeros((len(codes), len(self.categories_) + 1), np.float32)
            else:
                out[...] = 0.0
            slots = np.where(codes < 0, len(self.categories_), codes)
            out[np.arange(len(codes)), slots] = 1.0
            return out
        logf = np.where(codes < 0, self.unseen_log_frequency_, self.log_frequency_[np.maximum(codes, 0)])
        if out is None:
            return self.scaler_.transform(logf)[:, None].astype(np.float32)
        out[:, 0] = self.scaler_.transform(logf)
        return out

    def fitted_state(self) -> dict:
        state = {"encoding": self.encoding_, "categories": self.categories_}
        if self.encoding_ == "frequency":
            state.update(
                log_frequency=self.log_frequency_,
                unseen_log_frequency=self.unseen_log_frequency_,
                scaler=self.scaler_.state(),
            )
        return state

    def load_fitted_state(self, state: dict) -> None:
        self.encoding_ = state["encoding"]
        self.categories_ = list(state["categories"])
        if self.encoding_ == "frequency":
            self.log_frequency_ = np.asarray(state["log_frequency"], np.float64)
            self.unseen_log_frequency_ = float(state["unseen_log_frequency"])
            self.scaler_ = RobustScaler.from_state(state["scaler"])
