"""Remembered feature rows of categorical and boolean values, for small requests (pandas or Arrow).

A single-record request pays each featurizer's fixed cost per call (pandas conversions:
about a third of a millisecond each on a quiet machine, several under load), whatever the
row count. Categorical and boolean columns take few distinct values and their encoding of
a row depends on that row's value alone (one-hot, frequency, 1/0 with imputation), so a
served model remembers the feature row of each value it has encoded and small requests
whose values were all seen skip the call. Rows are computed by the featurizer itself
(never re-implemented here), on the request's own frame, so answers are unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

MEMO_KINDS = frozenset({"categorical", "boolean"})
SMALL_FRAME = 64  # larger frames (bulk requests) are encoded in one call, as before
MAX_REMEMBERED = 4096  # values per column; the memory is emptied when full


def _value_key(value: Any) -> tuple | None:
    """A key that tells apart values the featurizers treat differently (True vs 1 vs 1.0), or None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ("missing", type(value).__name__)
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, (int, np.integer)):
        return ("int", int(value))
    if isinstance(value, (float, np.floating)):
        return ("nan",) if math.isnan(value) else ("float", float(value))
    return None


class MemoizedFeaturizer:
    """A fitted one-column featurizer that remembers the feature row of each value (small frames only).

    Parameters
    ----------
    featurizer : Featurizer
        A fitted featurizer of a kind in :data:`MEMO_KINDS`; every other attribute is its own.
    """

    def __init__(self, featurizer: Any) -> None:
        self.featurizer = featurizer
        self._rows: dict[tuple, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.featurizer, name)

    def transform(self, frame: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        """The featurizer's block for ``frame``; rows of values seen before are not recomputed."""
        if kwargs or not 0 < len(frame) <= SMALL_FRAME:
            return self.featurizer.transform(frame, **kwargs)
        keys = [_value_key(v) for v in frame[self.featurizer.column].tolist()]
        return self._block(keys, lambda missed: self.featurizer.transform(frame.iloc[missed] if len(missed) < len(keys) else frame))

    def transform_arrow(self, table: Any, out: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """The featurizer's block for a pyarrow Table (written to ``out`` when given); rows of values
        seen before in a column of the same Arrow type are not recomputed."""
        if kwargs or not 0 < table.num_rows <= SMALL_FRAME:
            return self.featurizer.transform_arrow(table, out, **kwargs)
        column = table.column(self.featurizer.column)
        arrow_type = str(column.type)  # Arrow keys apart from the frame's, and by type
        keys = [None if key is None else ("arrow", arrow_type, key) for key in map(_value_key, column.to_pylist())]
        block = self._block(keys, lambda missed: self.featurizer.transform_arrow(
            table.take(missed) if len(missed) < len(keys) else table))
        if out is None:
            return block
        out[...] = block
        return out

    def _block(self, keys: list[tuple | None], compute: Any) -> np.ndarray:
        """The rows of ``keys`` (one per row): remembered, or ``compute(missed row positions)``, then remembered."""
        rows = [None if key is None else self._rows.get(key) for key in keys]
        missed = [i for i, row in enumerate(rows) if row is None]
        if not missed:
            return np.stack(rows)
        computed = compute(missed)
        if len(self._rows) + len(missed) > MAX_REMEMBERED:
            self._rows.clear()
        for i, row in zip(missed, computed):
            rows[i] = row
            if keys[i] is not None:
                self._rows[keys[i]] = row.copy()
        return computed if len(missed) == len(keys) else np.stack(rows)


def memoized(featurizer: Any) -> Any:
    """``featurizer`` wrapped in :class:`MemoizedFeaturizer` when its kind allows, else itself."""
    if getattr(featurizer, "kind", None) in MEMO_KINDS and list(featurizer.input_columns) == [featurizer.column]:
        return MemoizedFeaturizer(featurizer)
    return featurizer


__all__ = ["MEMO_KINDS", "MemoizedFeaturizer", "memoized"]
