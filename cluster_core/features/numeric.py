"""Numeric and boolean columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ._arrow import arrow_bool, arrow_float
from ._base import Featurizer, RobustScaler, as_float, register

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


@register
class NumericFeaturizer(Featurizer):
    """Median imputation, a missing indicator, robust scaling (see :class:`RobustScaler`).

    Options: ``clip`` (default 5.0, where tail compression starts). The indicator column ``<name>__missing`` is emitted
    when the fit sample had missing values; later missing values are imputed either way.
    """

    kind = "numeric"

    def fit(self, frame: pd.DataFrame) -> NumericFeaturizer:
        values = as_float(frame[self.column], self.column)
        self.scaler_ = RobustScaler(self.options.get("clip", 5.0)).fit(values)
        self.indicator_ = bool(np.isnan(values).any())
        self.feature_names_ = [self.column] + ([f"{self.column}__missing"] if self.indicator_ else [])
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self._encode(as_float(frame[self.column], self.column))

    def transform_arrow(self, table, out: np.ndarray | None = None) -> np.ndarray:
        values = arrow_float(table.column(self.column))
        return super().transform_arrow(table, out) if values is None else self._encode(values, out)

    def _encode(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        missing = np.isnan(values)
        if out is None:
            out = np.empty((len(values), 2 if self.indicator_ else 1), np.float32)
        out[:, 0] = self.scaler_.transform(values)
        out[missing, 0] = 0.0  # 0 = the median
        if self.indicator_:
            out[:, 1] = missing
        return out

    def fitted_state(self) -> dict:
        return {"scaler": self.scaler_.state(), "indicator": self.indicator_}

    def load_fitted_state(self, state: dict) -> None:
        self.scaler_ = RobustScaler.from_state(state["scaler"])
        self.indicator_ = bool(state["indicator"])


def as_bool(values: pd.Series, column: str) -> np.ndarray:
    """Booleans (and true/false/yes/no/1/0 strings) as float 1/0 with NaN for missing."""
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        out = values.astype("float64").to_numpy(na_value=np.nan)
        if np.any(~np.isin(out[~np.isnan(out)], (0.0, 1.0))):
            raise InvalidInputError(f"column {column!r}: expected booleans (0/1), got {out[~np.isnan(out)][0]!r}")
        return np.array(out, np.float64)
    text = values.astype("string").str.strip().str.lower()
    out = np.full(len(values), np.nan)
    out[text.isin(_TRUE).to_numpy(dtype=bool, na_value=False)] = 1.0
    out[text.isin(_FALSE).to_numpy(dtype=bool, na_value=False)] = 0.0
    bad = np.isnan(out) & values.notna().to_numpy()
    if bad.any():
        raise InvalidInputError(f"column {column!r}: value {values[bad].iloc[0]!r} is not a boolean (true/false)")
    return out


@register
class BooleanFeaturizer(Featurizer):
    """1/0, missing imputed with the sample's share of true, plus a missing indicator."""

    kind = "boolean"

    def fit(self, frame: pd.DataFrame) -> BooleanFeaturizer:
        values = as_bool(frame[self.column], self.column)
        present = values[~np.isnan(values)]
        self.fill_ = float(present.mean()) if present.size else 0.0
        self.indicator_ = bool(np.isnan(values).any())
        self.feature_names_ = [self.column] + ([f"{self.column}__missing"] if self.indicator_ else [])
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self._encode(as_bool(frame[self.column], self.column))

    def transform_arrow(self, table, out: np.ndarray | None = None) -> np.ndarray:
        values = arrow_bool(table.column(self.column), self.column)
        return super().transform_arrow(table, out) if values is None else self._encode(values, out)

    def _encode(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        missing = np.isnan(values)
        if out is None:
            out = np.empty((len(values), 2 if self.indicator_ else 1), np.float32)
        out[:, 0] = np.where(missing, self.fill_, values)
        if self.indicator_:
            out[:, 1] = missing
        return out

    def fitted_state(self) -> dict:
        return {"fill": self.fill_, "indicator": self.indicator_}

    def load_fitted_state(self, state: dict) -> None:
        self.fill_ = float(state["fill"])
        self.indicator_ = bool(state["indicator"])
