"""The algorithm registry: the one list of algorithms Clustra can train, save and load.

An entry (:class:`AlgorithmSpec`) holds what every part of Clustra asks about an
algorithm: how to build an unfitted estimator from a :class:`~cluster_core.config.TrainConfig`
(training), which class rebuilds its saved state (loading), and its capabilities
(``needs_k`` for the sweep, ``probabilities`` / ``distances`` for the outputs of apply and
serving). Adding an algorithm is one :func:`register_algorithm` call.

Plugins
    Modules named in ``CLUSTRA_PLUGINS`` (comma-separated) and modules exposed through the
    ``clustra.plugins`` entry-point group are imported once, on the first lookup in a
    process (:func:`load_plugins`); they register their algorithms when imported. The CLI,
    the jobs API, serving and Dask worker processes therefore all see the same algorithms
    without code of their own.

Import cost
    This module imports neither torch nor scikit-learn (``import cluster_core.config``
    validates names through it before anything heavy loads). Built-ins name their
    estimator class as ``"module:Class"``, imported on first use.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ..errors import ArtifactError, ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from ._base import ClusterEstimator

PLUGINS_ENV = "CLUSTRA_PLUGINS"
PLUGIN_GROUP = "clustra.plugins"
FIELD = "algorithms"

# ``(config, n_clusters, device) -> estimator``; ``config`` is a cluster_core.config.TrainConfig, typed
# Any here because config imports this module to check names (no import cycle, not even for typing).
EstimatorFactory = Callable[[Any, Union[int, None], str], "ClusterEstimator"]

# Model ids (``NAME-k3``) and model directories are made from the name.
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_LOCK = threading.RLock()
_plugins = {"state": "pending"}  # pending -> loading -> done (back to pending when an import fails)


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered algorithm.

    Parameters
    ----------
    name : str
        What users write in ``algorithms`` (``--algorithms``); lowercase letters, digits,
        ``-`` and ``_``.
    factory : callable
        ``factory(config, n_clusters, device)`` -> an unfitted estimator.
        ``n_clusters`` is the swept cluster count (None when ``needs_k`` is False);
        ``device`` is the device setting, ``"auto"``, ``"cpu"`` or ``"cuda"``: estimators are
        built on the driver, so ``"auto"`` must be resolved where the estimator fits
        (:class:`~cluster_core.algorithms.ClusterEstimator` does, from its ``device`` parameter).
    estimator : type or str
        The :class:`~cluster_core.algorithms.ClusterEstimator` subclass whose
        ``from_state`` loads a saved model, or ``"module:Class"`` to import it on first
        use. Its ``algorithm`` attribute (written into the saved state) must be a
        registered name; variants share one class (``gmm-diag`` loads as ``gmm``).
    needs_k : bool
        True: one model per cluster count of the sweep; False: one model that finds
        its own number of clusters.
    probabilities : bool
        ``assign`` returns the membership probability of every row.
    distances : bool
        ``assign`` returns the distance to the assigned centroid, and ``transform(X)``
        the distances to every centroid (serving's ``distances``).
    distributed : bool
        Fits on Dask partitions as per-block statistics reduced on the driver; False
        means it fits a sample and assigns the other rows (informational).
    gpu_engine : str or None
        What runs the fit on a GPU (``"torch"``, ``"cuml"``), None when it runs on the
        CPU only (informational).
    description : str
        One line for listings.
    sweep : callable or None
        ``sweep(config)`` -> ``[(label, overrides), ...]``: variants of the algorithm that
        the sweep trains side by side, each built from ``config`` updated with
        ``overrides`` (TrainConfig fields) and named ``NAME-LABEL`` (e.g. ``genie-g0.3``,
        models ``genie-g0.3-k4``). None: one variant, named ``NAME``.
    metrics : tuple of str
        The distances (``TrainConfig.metric``, :data:`cluster_core.distance.METRICS`) the
        factory can build the estimator for; the factory reads ``config.metric``.
        Default: ``("euclidean",)``.
    """

    name: str
    factory: EstimatorFactory
    estimator: type | str
    needs_k: bool
    probabilities: bool = False
    distances: bool = False
    distributed: bool = False
    gpu_engine: str | None = None
    description: str = ""
    sweep: Callable[[Any], list[tuple[str, dict]]] | None = None
    metrics: tuple[str, ...] = ("euclidean",)

    def variants(self, config: Any) -> list[tuple[str, dict]]:
        """``[(variant name, config overrides), ...]`` the sweep trains for this algorithm."""
        if self.sweep is None:
            return [(self.name, {})]
        return [(f"{self.name}-{label}", dict(overrides)) for label, overrides in self.sweep(config)]

    @property
    def estimator_class(self) -> type[ClusterEstimator]:
        """The estimator class (imported now when registered as ``"module:Class"``)."""
        if not isinstance(self.estimator, str):
            return self.estimator
        module, _, attribute = self.estimator.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def build(self, config: Any, n_clusters: int | None, device: str) -> ClusterEstimator:
        """An unfitted estimator from the factory, with the cluster count checked against ``needs_k``.

        Parameters
        ----------
        config : cluster_core.config.TrainConfig
        n_clusters : int or None
            The cluster count of this model of the sweep; None exactly when ``needs_k`` is False.
        device : {"auto", "cpu", "cuda"}
        """
        from ._base import ClusterEstimator

        if self.needs_k and n_clusters is None:
            raise ValueError(f"algorithm {self.name!r} needs a cluster count (needs_k=True), got n_clusters=None")
        if not self.needs_k and n_clusters is not None:
            raise ValueError(f"algorithm {self.name!r} finds its own cluster count (needs_k=False), got n_clusters={n_clusters}")
        estimator = self.factory(config, n_clusters, device)
        if not isinstance(estimator, ClusterEstimator):
            raise TypeError(
                f"the factory of algorithm {self.name!r} returned {type(estimator).__name__}; expected a ClusterEstimator"
            )
        return estimator


_ALGORITHMS: dict[str, AlgorithmSpec] = {}


def register_algorithm(
    name: str,
    factory: EstimatorFactory | None = None,
    *,
    estimator: type | str,
    needs_k: bool,
    description: str,
    probabilities: bool = False,
    distances: bool = False,
    distributed: bool = False,
    gpu_engine: str | None = None,
    sweep: Callable[[Any], list[tuple[str, dict]]] | None = None,
    metrics: tuple[str, ...] = ("euclidean",),
    replace: bool = False,
) -> Any:
    """Register algorithm ``name``; with ``factory`` omitted, a decorator for the factory.

    Parameters
    ----------
    name, factory, estimator, needs_k, description, probabilities, distances, distributed, gpu_engine, sweep, metrics
        The fields of :class:`AlgorithmSpec`.
    replace : bool, default=False
        Replace an existing entry of the same name (otherwise that is an error, unless
        the entry is identical: registering the same thing twice is harmless).

    Returns
    -------
    AlgorithmSpec or callable
        The new entry; in decorator form, a decorator that registers and returns the factory.

    Examples
    --------
    >>> @register_algorithm("kcenters", estimator=KCenters, needs_k=True, distances=True,
    ...                     description="farthest-first k-centers")
    ... def build_kcenters(config, n_clusters, device):
    ...     return KCenters(n_clusters, random_state=config.seed)
    """
    fields = dict(estimator=estimator, needs_k=needs_k, description=description, probabilities=probabilities,
                  distances=distances, distributed=distributed, gpu_engine=gpu_engine, sweep=sweep,
                  metrics=tuple(metrics))
    if factory is None:

        def decorate(function: EstimatorFactory) -> EstimatorFactory:
            register_algorithm(name, function, replace=replace, **fields)
            return function

        return decorate
    spec = AlgorithmSpec(name, factory, **fields)
    _check_spec(spec)
    with _LOCK:
        existing = _ALGORITHMS.get(name)
        if existing is not None and existing != spec and not replace:
            raise ValueError(
                f"algorithm {name!r} is already registered (estimator {existing.estimator!r}); "
                "pass replace=True to replace it"
            )
        _ALGORITHMS[name] = spec
    return spec


def _check_spec(spec: AlgorithmSpec) -> None:
    """ValueError / TypeError naming the field of ``spec`` that cannot work."""
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        raise ValueError(
            f"algorithm name {spec.name!r} should be lowercase letters, digits, '-' or '_', starting with a letter"
        )
    if not callable(spec.factory):
        raise TypeError(f"factory of algorithm {spec.name!r} is {spec.factory!r}; expected a callable")
    if isinstance(spec.estimator, str):
        if not re.match(r"^[\w.]+:\w+$", spec.estimator):
            raise ValueError(f"estimator of algorithm {spec.name!r} is {spec.estimator!r}; expected a class or 'module:Class'")
    else:
        from ._base import ClusterEstimator

        if not (isinstance(spec.estimator, type) and issubclass(spec.estimator, ClusterEstimator)):
            raise TypeError(f"estimator of algorithm {spec.name!r} is {spec.estimator!r}; expected a ClusterEstimator subclass")
        if not spec.estimator.algorithm:
            raise ValueError(f"estimator {spec.estimator.__name__} of algorithm {spec.name!r} has an empty `algorithm` attribute")
    if not isinstance(spec.description, str) or not spec.description.strip() or "\n" in spec.description:
        raise ValueError(f"description of algorithm {spec.name!r} is {spec.description!r}; expected one non-empty line")
    if spec.gpu_engine is not None and not (isinstance(spec.gpu_engine, str) and spec.gpu_engine):
        raise ValueError(f"gpu_engine of algorithm {spec.name!r} is {spec.gpu_engine!r}; expected a name such as 'torch' or None")
    known = ("euclidean", "cosine")  # cluster_core.distance.METRICS (not imported: this module stays light)
    if not spec.metrics or any(m not in known for m in spec.metrics):
        raise ValueError(f"metrics of algorithm {spec.name!r} is {spec.metrics!r}; expected a non-empty tuple of {known}")


def load_plugins() -> None:
    """Import the plugin modules, once per process (every lookup calls this first).

    First the modules named in ``CLUSTRA_PLUGINS`` (comma-separated), then those of the
    ``clustra.plugins`` entry-point group, in that order. A plugin that fails to import
    raises :class:`~cluster_core.errors.ConfigurationError` (an ImportError) naming it; the
    next lookup tries again.
    """
    if _plugins["state"] == "done":  # every lookup passes here: no lock once loaded
        return
    with _LOCK:
        if _plugins["state"] != "pending":  # done, or a plugin looking names up while it is imported
            return
        _plugins["state"] = "loading"
        try:
            for module in plugin_modules():
                _import_plugin(module, f"{PLUGINS_ENV}={os.environ.get(PLUGINS_ENV, '')!r}")
            for entry_point in _entry_points():
                _import_plugin(entry_point.value, f"entry point {entry_point.name!r} of group {PLUGIN_GROUP!r}", entry_point)
        except BaseException:
            _plugins["state"] = "pending"
            raise
        _plugins["state"] = "done"


def plugin_modules() -> list[str]:
    """The module names in ``CLUSTRA_PLUGINS`` (blank items dropped)."""
    return [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=PLUGIN_GROUP))


def _import_plugin(target: str, origin: str, entry_point: Any = None) -> None:
    try:
        if entry_point is not None:
            entry_point.load()
        else:
            importlib.import_module(target)
    except Exception as exc:
        raise ConfigurationError(
            f"Clustra plugin {target!r} (from {origin}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def algorithm_names() -> list[str]:
    """Registered algorithm names, built-ins first, then plugins in registration order."""
    load_plugins()
    return list(_ALGORITHMS)


def get_algorithm(name: str) -> AlgorithmSpec:
    """The registry entry of ``name``.

    Raises
    ------
    InvalidInputError
        ``name`` is not registered (``field="algorithms"``; the message lists the registered names).
    """
    load_plugins()
    spec = _ALGORITHMS.get(name)
    if spec is None:
        raise InvalidInputError(_unknown_message([name]), field=FIELD)
    return spec


def _unknown_message(names: list[str]) -> str:
    """What to say about unregistered algorithm ``names``."""
    return f"unknown algorithm(s) {names}; expected any of the registered algorithms {list(_ALGORITHMS)}"


def check_algorithms(names: list[str]) -> None:
    """InvalidInputError (``field="algorithms"``) listing every name of ``names`` that is not registered."""
    load_plugins()
    unknown = [name for name in names if name not in _ALGORITHMS]
    if unknown:
        raise InvalidInputError(_unknown_message(unknown), field=FIELD)


def check_metric_support(names: list[str], metric: str) -> None:
    """InvalidInputError (``field="metric"``) when an algorithm of ``names`` cannot use ``metric``."""
    load_plugins()
    unsupported = [name for name in names if name in _ALGORITHMS and metric not in _ALGORITHMS[name].metrics]
    if unsupported:
        able = [name for name, spec in _ALGORITHMS.items() if metric in spec.metrics]
        raise InvalidInputError(
            f"metric={metric!r} is not supported by {unsupported}; algorithms with it: {able} "
            f"(drop {unsupported} from `algorithms`, or set `metric` to 'euclidean')", field="metric",
        )


def algorithms_with_metric(names: list[str], metric: str) -> list[str]:
    """The names of ``names`` whose algorithm supports ``metric`` (unregistered names dropped)."""
    load_plugins()
    return [name for name in names if name in _ALGORITHMS and metric in _ALGORITHMS[name].metrics]


def estimator_from_state(state: dict) -> ClusterEstimator:
    """Rebuild a fitted estimator from its ``get_state()`` output, by the class registered for it.

    Raises
    ------
    ArtifactError
        The state's algorithm is not registered in this process (its plugin is not loaded).
    """
    name = state.get("algorithm")
    load_plugins()
    spec = _ALGORITHMS.get(name)
    if spec is None:
        raise ArtifactError(
            f"the saved estimator is algorithm {name!r}, which is not registered here (registered: {list(_ALGORITHMS)}); "
            f"name its plugin module in {PLUGINS_ENV} or install it"
        )
    return spec.estimator_class.from_state(state)
