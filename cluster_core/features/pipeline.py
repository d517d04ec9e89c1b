"""The fitted feature pipeline: one featurizer per used column, concatenated as float32."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..schema import Schema
from ._base import FEATURIZERS, Featurizer


class FeaturePipeline:
    """Turns partitions of the input table into the float32 matrix the algorithms see.

    Parameters
    ----------
    schema : Schema
        Which columns are used and as what kind.
    weights : dict, optional
        ``{column: weight}`` multiplies a column's block (default 1.0 each).

    Attributes
    ----------
    featurizers_ : list of Featurizer
    feature_names_ : list of str
    """

    def __init__(self, schema: Schema, weights: dict[str, float] | None = None):
        self.schema = schema
        self.weights = dict(weights or {})

    def fit(self, sample: pd.DataFrame) -> FeaturePipeline:
        """Fit every featurizer on the sample."""
        if len(sample) == 0:
            raise InvalidInputError("cannot fit features on an empty sample")
        self.featurizers_: list[Featurizer] = []
        for spec in self.schema.used:
            featurizer = FEATURIZERS[spec.kind](spec.name, **spec.options)
            self.featurizers_.append(featurizer.fit(sample))
        self.block_weights_ = [float(self.weights.get(f.column, 1.0)) for f in self.featurizers_]
        self.feature_names_ = [name for f in self.featurizers_ for name in f.feature_names_]
        return self

    @property
    def input_columns(self) -> list[str]:
        """Columns every partition must provide."""
        return [c for f in self.featurizers_ for c in f.input_columns]

    @property
    def n_features(self) -> int:
        """Width of the output matrix."""
        return len(self.feature_names_)

    def check_columns(self, frame: pd.DataFrame) -> None:
        """Raise InvalidInputError naming the first input column ``frame`` lacks."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise InvalidInputError(f"column {missing[0]!r} is required by the model but missing (needs {self.input_columns})")

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode a partition as float32 of shape (len(frame), n_features)."""
        self.check_columns(frame)
        if len(frame) == 0:
            return np.zeros((0, self.n_features), np.float32)
        blocks = []
        for featurizer, weight in zip(self.featurizers_, self.block_weights_):
            block = featurizer.transform(frame)
            blocks.append(block if weight == 1.0 else block * np.float32(weight))
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)

    def get_state(self) -> dict:
        """JSON + arrays."""
        return {
            "schema": self.schema.to_dict(),
            "weights": self.weights,
            "block_weights": self.block_weights_,
            "featurizers": [f.get_state() for f in self.featurizers_],
        }

    @classmethod
    def from_state(cls, state: dict) -> FeaturePipeline:
        """Rebuild a fitted pipeline."""
        pipeline = cls(Schema.from_dict(state["schema"]), state.get("weights"))
        pipeline.featurizers_ = [Featurizer.from_state(s) for s in state["featurizers"]]
        pipeline.block_weights_ = [float(w) for w in state["block_weights"]]
        pipeline.feature_names_ = [name for f in pipeline.featurizers_ for name in f.feature_names_]
        return pipeline
