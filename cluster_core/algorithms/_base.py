"""What every Clustra estimator shares: scikit-learn's contract plus pickle-free state."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Hashable, NamedTuple

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


class _InferenceCache:
    """Per-model values that inference derives from the fitted state (prepared centres, tensors).

    An entry is reused only while its ``key`` is equal and its ``sources`` (the fitted arrays
    it was derived from) are the very same objects: a refit or a load assigns new arrays, so
    a stale entry is never used even if nobody cleared it. Not pickled (see
    :meth:`ClusterEstimator.__getstate__`) and never part of a saved model.
    """

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Hashable, tuple, Any]] = {}

    def get(self, name: str, key: Hashable, sources: tuple, build: Callable[[], Any]) -> Any:
        entry = self.entries.get(name)
        if entry is not None and entry[0] == key and len(entry[1]) == len(sources) \
                and all(a is b for a, b in zip(entry[1], sources)):
            return entry[2]
        value = build()
        self.entries[name] = (key, sources, value)
        return value


_CACHE = "_inference_cache"
_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ClusterEstimator(ClusterMixin, BaseEstimator):
    """Base class: ``fit`` accepts an in-memory array, a dask array or :class:`Blocks`.

    Subclasses implement ``fit``, ``assign`` and the pair ``_fitted_state`` /
    ``_load_fitted_state``; ``get_state`` / ``from_state`` turn a fitted estimator into
    JSON + arrays and back (see :mod:`cluster_core._state`).

    Inference keeps what it derives from the fitted state once per model
    (:meth:`_prepared`): every ``fit`` starts a new cache, a pickle leaves it out, and
    ``get_state`` never sees it.
    """

    algorithm: ClassVar[str] = ""
    _fitted_attribute: ClassVar[str] = ""

    # -- per-model inference cache -------------------------------------------------------
    def _reset_inference_cache(self) -> None:
        """Forget every prepared value (called when a fit starts)."""
        self.__dict__[_CACHE] = _InferenceCache()

    def _prepared(self, name: str, key: Hashable, sources: tuple, build: Callable[[], Any]) -> Any:
        """``build()``, computed once per model: reused while ``key`` is equal and ``sources``
        (the fitted arrays it derives from) are the same objects."""
        cache = self.__dict__.get(_CACHE)
        if cache is None:
            cache = self.__dict__[_CACHE] = _InferenceCache()
        return cache.get(name, key, sources, build)

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ may hand out __dict__ itself
        state.pop(_CACHE, None)
        return state

    # -- input handling -------------------------------------------------------------------
    @property
    def _cosine(self) -> bool:
        """True for an estimator with ``metric="cosine"``: it sees unit-normalized rows only
        (:mod:`cluster_core.distance`), in fit and in every inference call."""
        return getattr(self, "metric", "euclidean") == "cosine"

    def _fit_blocks(self, X: Any) -> tuple[Blocks, np.ndarray | None]:
        """Blocks to fit on, plus the validated array when ``X`` is in memory (for ``labels_``);
        rows unit-normalized for ``metric="cosine"``."""
        self._reset_inference_cache()
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
        if not hasattr(self, self._fitted_attribute):
            check_is_fitted(self, self._fitted_attribute)
        array = X if self._plain_rows(X) else validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return unit_rows(array) if self._cosine else np.ascontiguousarray(array, dtype=np.float32)

    def _plain_rows(self, X: Any) -> bool:
        """True when ``X`` is what ``validate_data`` would return unchanged and silently: a
        C-contiguous, finite float32/float64 numpy matrix with at least one row and
        ``n_features_in_`` columns, for a model fitted without feature names. Anything else
        (and every error message) goes through scikit-learn's ``validate_data``."""
        if type(X) is not np.ndarray or X.ndim != 2 or X.dtype not in _FAST_DTYPES or not X.flags.c_contiguous:
            return False
        if X.shape[0] < 1 or X.shape[1] != getattr(self, "n_features_in_", -1) or hasattr(self, "feature_names_in_"):
            return False
        with np.errstate(over="ignore"):
            return bool(np.isfinite(X.sum()))  # scikit-learn's own first pass; a non-finite sum is re-checked there

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
