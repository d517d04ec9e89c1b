"""The fitted feature pipeline: one featurizer per used column, balanced, optionally reduced.

Block balance
    Numeric, boolean, categorical and datetime blocks are on the scale of one robust-
    scaled number (total variance about 1 per column). A text embedding (384 dimensions),
    an image's ~120 standardized features or a point's three sphere coordinates are not,
    so by default (``balance="column"``) every block of such a kind (``text``, ``image``,
    ``geo``) is rescaled so that its total variance on the fit sample is 1: *one column,
    one vote* — a 384-dimensional embedding counts like one numeric column, not like
    384 of them, and a regional set of coordinates is not drowned by the other columns.
    ``kind_weights`` (``{"text": 2.0}``) and per-column ``weights`` multiply on top
    (a weight ``w`` multiplies the block, so its share of the distance grows by ``w**2``).
    ``balance="none"`` keeps the featurizers' own scales.
Reduction
    ``reduce="pca"`` (centred) or ``"svd"`` (truncated SVD, uncentred) projects the
    combined, weighted matrix on its top ``reduce_components`` directions, fitted on a
    sample of at most ``stats_sample_rows`` rows; every partition is then projected with
    one matrix product (distributed-friendly). Features are then named ``pc1..pcN``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from ..schema import Schema
from ._arrow import is_arrow_table as _is_arrow
from ._base import FEATURIZERS, Featurizer

BALANCE_MODES = ("column", "none")
#: rows of an Arrow table encoded at a time (see ``FeaturePipeline._arrow_matrix``)
ARROW_CHUNK_ROWS = 65_536
REDUCE_METHODS = ("none", "pca", "svd")


def _stats_sample(sample: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return sample if len(sample) <= rows else sample.sample(n=rows, random_state=seed)


class FeaturePipeline:
    """Turns partitions of the input table into the float32 matrix the algorithms see.

    Parameters
    ----------
    schema : Schema
        Which columns are used and as what kind.
    weights : dict, optional
        ``{column: weight}`` multiplies a column's block (default 1.0 each).
    kind_options : dict, optional
        ``{kind: {option: value}}`` defaults for every column of a kind (a column's own
        ``ColumnSpec.options`` win), e.g. ``{"text": {"method": "tfidf"}}``.
    balance : {"column", "none"}
        See the module docstring.
    kind_weights : dict, optional
        ``{kind: weight}`` multiplies every block of that kind.
    reduce : {"none", "pca", "svd"}
    reduce_components : int
    stats_sample_rows : int
        Rows (of the fit sample) used for the balance factors and the reduction.
    seed : int

    Attributes
    ----------
    featurizers_ : list of Featurizer
    block_weights_ : list of float
    feature_names_ : list of str
    fit_issues_ : list of dict
        Per-row problems met while fitting (unreadable images), at most 20 kept.
    """

    def __init__(
        self,
        schema: Schema,
        weights: dict[str, float] | None = None,
        *,
        kind_options: dict[str, dict] | None = None,
        balance: str = "column",
        kind_weights: dict[str, float] | None = None,
        reduce: str = "none",
        reduce_components: int = 32,
        stats_sample_rows: int = 2000,
        seed: int = 0,
    ):
        self.schema = schema
        self.weights = dict(weights or {})
        self.kind_options = {k: dict(v) for k, v in (kind_options or {}).items()}
        self.balance = balance
        self.kind_weights = dict(kind_weights or {})
        self.reduce = reduce
        self.reduce_components = reduce_components
        self.stats_sample_rows = stats_sample_rows
        self.seed = seed

    @classmethod
    def from_config(cls, schema: Schema, config) -> FeaturePipeline:
        """An unfitted pipeline with the settings of a :class:`~cluster_core.config.TrainConfig`."""
        return cls(
            schema, config.weights, kind_options=config.kind_options(), balance=config.balance,
            kind_weights=config.kind_weights, reduce=config.reduce, reduce_components=config.reduce_components,
            stats_sample_rows=config.stats_sample_rows, seed=config.seed,
        )

    def fit_notes(self) -> list[str]:
        """Human-readable facts about the fit worth showing (fallbacks, unreadable images)."""
        notes = [f"text column {f.column!r}: TF-IDF instead of embeddings ({f.fallback_reason_})"
                 for f in self.featurizers_ if getattr(f, "fallback_reason_", "")]
        for f in self.featurizers_:
            if getattr(f, "fit_unreadable_", 0):
                notes.append(f"image column {f.column!r}: {f.fit_unreadable_} image(s) of the sample missing or unreadable")
        notes += [f"  row {i['row']}: {i['value']}: {i['error']}" for i in self.fit_issues_[:5]]
        if self.projection_ is not None:
            kept = float(np.sum(self.projection_["explained_variance_ratio"]))
            notes.append(f"{self.reduce} to {len(self.feature_names_)} components ({kept:.0%} of the variance)")
        return notes

    def _check_settings(self) -> None:
        if self.balance not in BALANCE_MODES:
            raise InvalidInputError(f"balance={self.balance!r} is not one of {list(BALANCE_MODES)}")
        if self.reduce not in REDUCE_METHODS:
            raise InvalidInputError(f"reduce={self.reduce!r} is not one of {list(REDUCE_METHODS)}")
        if int(self.reduce_components) < 1:
            raise InvalidInputError(f"reduce_components={self.reduce_components} should be >= 1")
        negative = {k: w for k, w in {**self.weights, **self.kind_weights}.items() if w < 0}
        if negative:
            raise InvalidInputError(f"weights must be >= 0, got {negative}")

    def fit(self, sample: pd.DataFrame) -> FeaturePipeline:
        """Fit every featurizer on the sample, then the block balance and the reduction."""
        if len(sample) == 0:
            raise InvalidInputError("cannot fit features on an empty sample")
        self._check_settings()
        self.featurizers_: list[Featurizer] = []
        for spec in self.schema.used:
            if spec.options.get("part_of"):  # the second column of a (latitude, longitude) pair
                continue
            options = {**self.kind_options.get(spec.kind, {}), **spec.options}
            featurizer = FEATURIZERS[spec.kind](spec.name, **options)
            self.featurizers_.append(featurizer.fit(sample))
        self.input_feature_names_ = [name for f in self.featurizers_ for name in f.feature_names_]
        self.block_weights_ = [1.0] * len(self.featurizers_)
        self.projection_ = None
        self.fit_issues_: list[dict] = []
        balanced = self.balance == "column" and any(getattr(f, "balance", False) for f in self.featurizers_)
        if not balanced and self.reduce == "none":
            self.block_weights_ = [self._block_weight(f, None) for f in self.featurizers_]
            self.feature_names_ = self._output_names()
            return self
        stats = _stats_sample(sample, self.stats_sample_rows, self.seed)
        blocks = self._blocks(stats, self.fit_issues_)
        self.block_weights_ = [self._block_weight(f, b) for f, b in zip(self.featurizers_, blocks)]
        del self.fit_issues_[20:]
        if self.reduce != "none":
            matrix = np.hstack([b * np.float32(w) for b, w in zip(blocks, self.block_weights_)])
            self.projection_ = self._fit_projection(matrix)
        self.feature_names_ = self._output_names()
        return self

    def _block_weight(self, featurizer: Featurizer, block: np.ndarray | None) -> float:
        weight = float(self.weights.get(featurizer.column, 1.0)) * float(self.kind_weights.get(featurizer.kind, 1.0))
        balanced = self.balance == "column" and getattr(featurizer, "balance", False)
        if balanced and block is not None and len(block) > 1:
            total = float(block.astype(np.float64).var(axis=0).sum())
            if total > 1e-12:
                weight /= np.sqrt(total)
        return weight

    def _fit_projection(self, matrix: np.ndarray) -> dict:
        data = matrix.astype(np.float64)
        k = int(min(self.reduce_components, data.shape[1], max(1, data.shape[0] - 1)))
        mean = data.mean(axis=0) if self.reduce == "pca" else np.zeros(data.shape[1])
        _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
        energy = singular**2
        return {
            "method": self.reduce,
            "mean": mean.astype(np.float32),
            "components": vt[:k].astype(np.float32),
            "explained_variance_ratio": (energy[:k] / max(energy.sum(), 1e-300)).astype(np.float64),
        }

    def _output_names(self) -> list[str]:
        if self.projection_ is None:
            return list(self.input_feature_names_)
        return [f"pc{i + 1}" for i in range(self.projection_["components"].shape[0])]

    @property
    def input_columns(self) -> list[str]:
        """Columns every partition must provide."""
        return [c for f in self.featurizers_ for c in f.input_columns]

    @property
    def n_features(self) -> int:
        """Width of the output matrix."""
        return len(self.feature_names_)

    def check_columns(self, frame: Any) -> None:
        """Raise InvalidInputError naming the first input column ``frame`` (a DataFrame, or a pyarrow Table /
        RecordBatch) lacks."""
        present = set(frame.column_names if _is_arrow(frame) else frame.columns)
        missing = [c for c in self.input_columns if c not in present]
        if missing:
            raise InvalidInputError(f"column {missing[0]!r} is required by the model but missing (needs {self.input_columns})")

    def _blocks(self, frame: Any, issues: list | None) -> list[np.ndarray]:
        arrow = _is_arrow(frame)
        blocks = []
        for featurizer in self.featurizers_:
            transform = featurizer.transform_arrow if arrow else featurizer.transform
            if issues is not None and getattr(featurizer, "reports_issues", False):
                blocks.append(transform(frame, issues=issues))
            else:
                blocks.append(transform(frame))
        return blocks

    def _weighted_blocks(self, frame: Any, issues: list | None) -> list[np.ndarray]:
        return [
            block if weight == 1.0 else block * np.float32(weight)
            for block, weight in zip(self._blocks(frame, issues), self.block_weights_)
        ]

    def transform_batches(self, batches: Iterable[Any], n_rows: int) -> np.ndarray:
        """:meth:`transform` of the rows of pyarrow RecordBatches or Tables (a Parquet file's row groups
        or ``iter_batches``), ``n_rows`` in all, written batch by batch into one float32 matrix.

        Raises
        ------
        InvalidInputError
            A batch lacks an input column, or the batches hold other than ``n_rows`` rows.
        """
        import pyarrow as pa

        if any(getattr(f, "reports_issues", False) for f in self.featurizers_):  # row numbers span the batches
            tables = [b if isinstance(b, pa.Table) else pa.Table.from_batches([b]) for b in batches]
            if tables:
                return self.transform(pa.concat_tables(tables))
            batches = []
        out = np.empty((n_rows, len(self.input_feature_names_)), np.float32)
        start = 0
        for batch in batches:
            self.check_columns(batch)
            if start + batch.num_rows > n_rows:
                raise InvalidInputError(f"the batches hold more than the n_rows={n_rows} rows announced")
            self._arrow_matrix(batch, out[start : start + batch.num_rows])
            start += batch.num_rows
        if start != n_rows:
            raise InvalidInputError(f"the batches hold {start} rows, not the n_rows={n_rows} announced")
        return self._project(out)

    def _project(self, matrix: np.ndarray) -> np.ndarray:
        if self.projection_ is not None:
            matrix = (matrix - self.projection_["mean"]) @ self.projection_["components"].T
        return np.ascontiguousarray(matrix, dtype=np.float32)

    def _arrow_matrix(self, table: Any, out: np.ndarray | None = None) -> np.ndarray:
        """The weighted blocks of an Arrow table side by side, encoded :data:`ARROW_CHUNK_ROWS` rows at a
        time (zero-copy slices), so each chunk's temporaries stay in the CPU cache, each
        featurizer writing its block straight into its columns of the output (``transform_arrow(out=)``;
        ``np.concatenate`` of blocks one or two features wide copies row by row, 2x slower)."""
        if out is None:
            out = np.empty((table.num_rows, len(self.input_feature_names_)), np.float32)
        for start in range(0, table.num_rows, ARROW_CHUNK_ROWS):
            chunk = table.slice(start, ARROW_CHUNK_ROWS)
            rows = out[start : start + chunk.num_rows]
            column = 0
            for featurizer, weight in zip(self.featurizers_, self.block_weights_):
                block = rows[:, column : column + len(featurizer.feature_names_)]
                featurizer.transform_arrow(chunk, out=block)
                if weight != 1.0:
                    block *= np.float32(weight)
                column += block.shape[1]
        return out

    def transform(self, frame: Any, issues: list | None = None) -> np.ndarray:
        """Encode a partition as float32 of shape (len(frame), n_features).

        Parameters
        ----------
        frame : DataFrame, pyarrow.Table or pyarrow.RecordBatch
            Rows with (at least) :attr:`input_columns`; a plain frame of records works.
            Arrow input is encoded without pandas for numeric, boolean, categorical (string
            or dictionary) and datetime (timestamp) columns, with the same numbers as the
            same rows as a DataFrame; other columns (text, image, geo, values stored as
            text) are converted to pandas one featurizer's columns at a time.
        issues : list, optional
            Receives one dict ``{"row", "column", "value", "error"}`` per row problem that
            did not stop the transform (an unreadable image).
        """
        self.check_columns(frame)
        if (frame.num_rows if _is_arrow(frame) else len(frame)) == 0:
            return np.zeros((0, self.n_features), np.float32)
        if _is_arrow(frame) and not any(getattr(f, "reports_issues", False) for f in self.featurizers_):
            matrix = self._arrow_matrix(frame)
        else:
            matrix = _hstack_float32(self._weighted_blocks(frame, issues))
        return self._project(matrix)

    def get_state(self) -> dict:
        """JSON + arrays."""
        return {
            "schema": self.schema.to_dict(),
            "weights": self.weights,
            "kind_options": self.kind_options,
            "balance": self.balance,
            "kind_weights": self.kind_weights,
            "block_weights": self.block_weights_,
            "featurizers": [f.get_state() for f in self.featurizers_],
            "projection": self.projection_,
            "fit_issues": self.fit_issues_,
        }

    @classmethod
    def from_state(cls, state: dict) -> FeaturePipeline:
        """Rebuild a fitted pipeline."""
        pipeline = cls(
            Schema.from_dict(state["schema"]),
            state.get("weights"),
            kind_options=state.get("kind_options"),
            balance=state.get("balance", "none"),
            kind_weights=state.get("kind_weights"),
        )
        pipeline.featurizers_ = [Featurizer.from_state(s) for s in state["featurizers"]]
        pipeline.block_weights_ = [float(w) for w in state["block_weights"]]
        pipeline.input_feature_names_ = [name for f in pipeline.featurizers_ for name in f.feature_names_]
        projection = state.get("projection")
        if projection is not None:
            projection = dict(projection)
            for key in ("mean", "components"):
                projection[key] = np.asarray(projection[key], np.float32)
            pipeline.reduce = projection["method"]
            pipeline.reduce_components = int(projection["components"].shape[0])
        pipeline.projection_ = projection
        pipeline.fit_issues_ = list(state.get("fit_issues", []))
        pipeline.feature_names_ = pipeline._output_names()
        return pipeline


def _hstack_float32(blocks: list[np.ndarray], tile_rows: int = 8192) -> np.ndarray:
    """``np.hstack(blocks)`` as float32, written tile by tile of rows: the tile's inputs and
    output stay in cache, where one ``hstack`` of many narrow columns writes the whole
    output once per block with a stride (4x slower for 64 numeric columns)."""
    n_rows = blocks[0].shape[0]
    out = np.empty((n_rows, sum(block.shape[1] for block in blocks)), np.float32)
    for start in range(0, n_rows, tile_rows):
        stop = start + tile_rows
        np.concatenate([block[start:stop] for block in blocks], axis=1, out=out[start:stop], casting="same_kind")
    return out
