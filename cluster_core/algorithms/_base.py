"""What every Clustra estimator shares: scikit-learn's contract plus pickle-free state."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..blocks import Blocks, as_blocks
from ..device import resolve_device
from ..distance import unit_blocks, unit_rows


class Assignment(NamedTuple):
    """Per-row result of :meth:`ClusterEstimator.assign`.

    ``labels`` are cluster ids (-1 = noise); ``probability`` is the membership
    probability of the assigned cluster (None when the model has none); ``distance`` is
    the distance to the assigned centroid in the model's metric (Euclidean, or the cosine
    distance ``1 - cos`` for ``metric="cosine"``; None for models without centroids).
    """

    labels: np.ndarray
    probability: np.ndarray | None
    distance: np.ndarray | None


class ClusterEstimator(ClusterMixin, BaseEstimator):
    """Base class: ``fit`` accepts an in-memory array, a dask array or :class:`Blocks`.

    Subclasses implement ``fit``, ``assign`` and the pair ``_fitted_state`` /
    ``_load_fitted_state``; ``get_state`` / ``from_state`` turn a fitted estimator into
    JSON + arrays and back (see :mod:`cluster_core._state`).
    """

    algorithm: ClassVar[str] = ""
    _fitted_attribute: ClassVar[str] = ""

    # -- input handling -------------------------------------------------------------------
    @property
    def _cosine(self) -> bool:
        """True for an estimator with ``metric="cosine"``: it sees unit-normalized rows only
        (:mod:`cluster_core.distance`), in fit and in every inference call."""
        return getattr(self, "metric", "euclidean") == "cosine"

    def _fit_blocks(self, X: Any) -> tuple[Blocks, np.ndarray | None]:
        """Blocks to fit on, plus the validated array when ``X`` is in memory (for ``labels_``);
        rows unit-normalized for ``metric="cosine"``."""
        if isinstance(X, Blocks) or type(X).__module__.startswith("dask."):
            blocks = as_blocks(X)
            self.n_features_in_ = blocks.n_features
            return (unit_blocks(blocks) if self._cosine else blocks), None
        array = validate_data(self, X, dtype=[np.float32, np.float64], ensure_min_samples=1)
        array = unit_rows(array) if self._cosine else np.ascontiguousarray(array, dtype=np.float32)
        return as_blocks(array), array

    def _fit_on_sample(self, X: Any, fit_sample: Callable[[np.ndarray], Assignment]) -> None:
        """Fit on a uniform sample of at most ``max_fit_samples`` rows of ``X``; label the rest from it.

        ``fit_sample(sample)`` fits the estimator on the sample (float32, C-contiguous) and
        returns the sample's own :class:`Assignment`. For an in-memory ``X``, ``labels_`` (and
        ``probabilities_`` where the model has them) are the fit's own when the sample is all of
        ``X``, else every row is assigned by :meth:`assign` from the fitted sample.
        """
        blocks, array = self._fit_blocks(X)
        n_rows = blocks.count_rows()
        sampled = n_rows > self.max_fit_samples
        if sampled:
            sample = blocks.sample_rows(self.max_fit_samples, seed_from(self.random_state))
        else:
            sample = array if array is not None else blocks.sample_rows(n_rows, 0)
        fitted = fit_sample(np.ascontiguousarray(sample, dtype=np.float32))
        if array is not None:
            rows = self.assign(array) if sampled else fitted
            self.labels_ = rows.labels
            if rows.probability is not None:
                self.probabilities_ = rows.probability

    def _check_input(self, X: Any) -> np.ndarray:
        """Validate ``X`` for inference (fitted, right width) and return float32 (unit rows for cosine)."""
        check_is_fitted(self, self._fitted_attribute)
        array = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return unit_rows(array) if self._cosine else np.ascontiguousarray(array, dtype=np.float32)

    def _torch_device(self) -> str:
        return resolve_device(getattr(self, "device", "auto")).torch

    # -- inference ------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """Cluster id of every row of ``X`` (-1 = noise)."""
        return self.assign(X).labels

    def assign(self, X: Any) -> Assignment:  # pragma: no cover - abstract
        """Labels with probabilities and/or centroid distances where the model has them."""
        raise NotImplementedError

    @property
    def n_clusters_found(self) -> int:
        """Number of clusters the fitted model has (noise not counted)."""
        return int(self.n_clusters_)

    # -- persistence ----------------------------------------------------------------------
    def _fitted_state(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_fitted_state(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_state(self) -> dict:
        """The estimator as ``{"algorithm", "params", "fitted"}`` (JSON values and arrays)."""
        check_is_fitted(self, self._fitted_attribute)
        params = {k: v for k, v in self.get_params().items() if not isinstance(v, np.ndarray)}
        fitted = self._fitted_state()
        fitted["n_features_in_"] = int(self.n_features_in_)
        return {"algorithm": self.algorithm, "params": params, "fitted": fitted}

    @classmethod
    def from_state(cls, state: dict) -> ClusterEstimator:
        """Rebuild a fitted estimator from :meth:`get_state` output."""
        if state.get("algorithm") != cls.algorithm:
            raise ValueError(f"state is for algorithm={state.get('algorithm')!r}, expected {cls.algorithm!r}")
        params = {k: v for k, v in state["params"].items() if k in cls._get_param_names()}
        estimator = cls(**params)
        fitted = dict(state["fitted"])
        estimator.n_features_in_ = int(fitted.pop("n_features_in_"))
        estimator._load_fitted_state(fitted)
        return estimator


def seed_from(random_state: Any) -> int:
    """A 32-bit seed from an int, None or a numpy RandomState/Generator."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, (int, np.integer)):
        return int(random_state) & 0xFFFFFFFF
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    raise TypeError(f"random_state={random_state!r} should be None, an int or a numpy random generator")
