"""The algorithm registry: built-ins, registration, plugin loading, lookups and the capabilities models report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cluster_core.algorithms import (
    GaussianMixture,
    Genie,
    HDBSCAN,
    KMeans,
    _registry,
    algorithm_names,
    estimator_from_state,
    get_algorithm,
    register_algorithm,
)
from cluster_core.config import TrainConfig
from cluster_core.errors import ArtifactError, InvalidInputError
from cluster_core.training import ModelSpec, plan_models

PLUGIN_DIR = Path(__file__).parent / "plugins"


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry with its plugins not loaded yet (the real one is untouched)."""
    monkeypatch.setattr(_registry, "_ALGORITHMS", dict(_registry._ALGORITHMS))
    monkeypatch.setattr(_registry, "_plugins", {"state": "pending"})
    monkeypatch.delenv("CLUSTRA_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    monkeypatch.delitem(sys.modules, "clustra_kcenters", raising=False)
    return _registry


def _factory(config, n_clusters, device):
    return KMeans(n_clusters, device=device)


@pytest.mark.parametrize(
    "name, needs_k, probabilities, distances, distributed, estimator, params",
    [
        ("kmeans", True, False, True, True, KMeans, {}),
        ("gmm", True, True, False, True, GaussianMixture, {"covariance_type": "full"}),
        ("gmm-diag", True, True, False, True, GaussianMixture, {"covariance_type": "diag"}),
        ("hdbscan", False, True, False, False, HDBSCAN, {"max_fit_samples": 50_000}),
        ("genie", True, False, False, False, Genie, {"gini_threshold": 0.3, "max_fit_samples": 20_000}),
    ],
)
def test_builtins(name, needs_k, probabilities, distances, distributed, estimator, params):
    spec = get_algorithm(name)
    assert (spec.needs_k, spec.probabilities, spec.distances, spec.distributed) == (needs_k, probabilities, distances, distributed)
    assert spec.estimator_class is estimator and spec.description
    built = ModelSpec(name, name, 3 if needs_k else None).build(TrainConfig(seed=4, max_iter=7), "cpu")
    assert type(built) is estimator and built.random_state == 4 and built.device == "cpu"
    assert params.items() <= built.get_params().items()


def test_plan_sweeps_only_the_algorithms_that_need_k():
    ids = [s.model_id for s in plan_models(TrainConfig(algorithms=["hdbscan", "gmm-diag"], k=[2, 4]), 100, 120)]
    assert ids == ["hdbscan", "gmm-diag-k2", "gmm-diag-k4"]


def test_unknown_names_name_the_field_and_the_registered_algorithms():
    with pytest.raises(InvalidInputError) as info:
        get_algorithm("spectral")
    assert info.value.field == "algorithms"
    assert "unknown algorithm(s) ['spectral']" in str(info.value) and "'kmeans', 'gmm', 'gmm-diag', 'hdbscan'" in str(info.value)
    with pytest.raises(ArtifactError, match="algorithm 'spectral', which is not registered here.*CLUSTRA_PLUGINS"):
        estimator_from_state({"algorithm": "spectral", "params": {}, "fitted": {}})


def test_plugin_named_in_the_environment_is_loaded_on_first_lookup(registry, monkeypatch):
    monkeypatch.setenv("CLUSTRA_PLUGINS", " clustra_kcenters , ")
    assert "clustra_kcenters" not in sys.modules
    assert algorithm_names() == ["kmeans", "gmm", "gmm-diag", "hdbscan", "genie", "kcenters"]
    spec = get_algorithm("kcenters")
    assert spec.needs_k and spec.distances and not spec.probabilities
    assert TrainConfig(algorithms=["kcenters"], k=[2, 3]).algorithms == ["kcenters"]
    data = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    fitted = ModelSpec("kcenters-k3", "kcenters", 3).build(TrainConfig(), "cpu").fit(data)
    loaded = estimator_from_state(fitted.get_state())
    assert type(loaded) is spec.estimator_class and np.array_equal(loaded.predict(data), fitted.labels_)


def test_plugin_that_fails_to_import_is_named_and_retried(registry, monkeypatch):
    monkeypatch.setenv("CLUSTRA_PLUGINS", "clustra_no_such_plugin")
    for _ in range(2):
        with pytest.raises(ImportError, match="plugin 'clustra_no_such_plugin' \\(from CLUSTRA_PLUGINS="):
            algorithm_names()


def test_decorator_registers_and_returns_the_factory(registry):
    decorated = register_algorithm("kmeans-alias", estimator=KMeans, needs_k=True, distances=True, description="k-means again")(_factory)
    assert decorated is _factory and get_algorithm("kmeans-alias").factory is _factory
    assert register_algorithm("kmeans-alias", _factory, estimator=KMeans, needs_k=True, distances=True,
                              description="k-means again") == get_algorithm("kmeans-alias")  # the same entry twice is harmless
    replaced = register_algorithm("kmeans-alias", _factory, estimator=KMeans, needs_k=True, description="plain", replace=True)
    assert get_algorithm("kmeans-alias") is replaced and not replaced.distances


@pytest.mark.parametrize(
    "name, fields, error, message",
    [
        ("K-Means", {}, ValueError, "algorithm name 'K-Means' should be lowercase"),
        ("kmeans", {}, ValueError, "algorithm 'kmeans' is already registered"),
        ("mine", {"estimator": dict}, TypeError, "expected a ClusterEstimator subclass"),
        ("mine", {"estimator": "no colon"}, ValueError, "expected a class or 'module:Class'"),
        ("mine", {"description": "two\nlines"}, ValueError, "expected one non-empty line"),
        ("mine", {"gpu_engine": ""}, ValueError, "gpu_engine of algorithm 'mine' is ''"),
    ],
    ids=["name", "duplicate", "estimator-type", "estimator-ref", "description", "gpu-engine"],
)
def test_registration_errors(registry, name, fields, error, message):
    kwargs = {"estimator": KMeans, "needs_k": True, "description": "test", **fields}
    with pytest.raises(error, match=message):
        register_algorithm(name, _factory, **kwargs)
    assert name == "kmeans" or name not in algorithm_names()


def test_build_checks_the_cluster_count_and_the_factory(registry):
    with pytest.raises(ValueError, match=r"algorithm 'kmeans' needs a cluster count \(needs_k=True\), got n_clusters=None"):
        get_algorithm("kmeans").build(TrainConfig(), None, "cpu")
    with pytest.raises(ValueError, match=r"finds its own cluster count \(needs_k=False\), got n_clusters=3"):
        get_algorithm("hdbscan").build(TrainConfig(), 3, "cpu")
    register_algorithm("broken", lambda config, k, device: "not an estimator", estimator=KMeans, needs_k=True, description="x")
    with pytest.raises(TypeError, match="the factory of algorithm 'broken' returned str; expected a ClusterEstimator"):
        get_algorithm("broken").build(TrainConfig(), 2, "cpu")


def test_capabilities_decide_what_models_and_serving_report(registry, mixed_frame):
    from cluster_core.features import FeaturePipeline
    from cluster_core.model import ClusteringModel
    from cluster_core.registry import ModelRef
    from cluster_core.schema import infer_schema
    from serving.assign import ServedModel
    from serving.catalog import assignment_detail

    register_algorithm("kmeans-bare", _factory, estimator=KMeans, needs_k=True, description="k-means, labels only")
    pipeline = FeaturePipeline(infer_schema(mixed_frame)).fit(mixed_frame)
    estimator = KMeans(3, random_state=0, device="cpu").fit(pipeline.transform(mixed_frame))
    expected = {"kmeans": ("distance", "distances"), "gmm": ("cluster_probability", "probabilities"), "kmeans-bare": (None, None)}
    for algorithm, (column, detail) in expected.items():
        model = ClusteringModel(pipeline, estimator, algorithm, metadata={"algorithm": algorithm})
        columns = model.output_columns()
        assert list(columns) == ["cluster_id"] + ([column] if column else []) + ["cluster_name"]
        assert assignment_detail(columns) == detail
    served = ServedModel(model, ModelRef("bare", 1))
    answers = served.assignments(mixed_frame.head(4))
    assert [set(a) for a in answers] == [{"cluster_id", "cluster_name", "is_noise"}] * 4
    assert [a["cluster_id"] for a in answers] == estimator.predict(pipeline.transform(mixed_frame.head(4))).tolist()
