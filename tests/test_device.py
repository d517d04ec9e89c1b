import pytest

from cluster_core import device as device_module
from cluster_core.device import Device, resolve_device
from cluster_core.errors import InvalidInputError


def test_cpu_when_asked(monkeypatch):
    assert resolve_device("cpu") == Device("cpu")


def test_auto_follows_device_count(monkeypatch):
    monkeypatch.delenv("CLUSTRA_DEVICE", raising=False)
    monkeypatch.setattr(device_module, "cuda_device_count", lambda: 0)
    assert resolve_device() == Device("cpu")
    monkeypatch.setattr(device_module, "cuda_device_count", lambda: 2)
    chosen = resolve_device("auto")
    assert chosen.is_gpu and chosen.torch == "cuda" and chosen.gpu_count == 2


def test_environment_overrides(monkeypatch):
    monkeypatch.setattr(device_module, "cuda_device_count", lambda: 1)
    monkeypatch.setenv("CLUSTRA_DEVICE", "cpu")
    assert resolve_device() == Device("cpu")


def test_cuda_without_a_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(device_module, "cuda_device_count", lambda: 0)
    with pytest.raises(InvalidInputError, match="device='cuda' was requested but no CUDA device is visible"):
        resolve_device("cuda")
    with pytest.raises(InvalidInputError, match="device='tpu' is not one of auto, cpu, cuda"):
        resolve_device("tpu")


def test_this_machine_detection_does_not_trust_imports():
    # importing a GPU library is not evidence of a GPU; on CI there is none
    device_module.cuda_device_count.cache_clear()
    count = device_module.cuda_device_count()
    import torch

    assert count == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


class _FakeCuml:
    """Stands in for an installed cuML so the selection logic can be tested without a GPU."""


def test_kmeans_engine_selection(monkeypatch):
    import cluster_core.algorithms.kmeans as kmeans_module
    from cluster_core.algorithms import KMeans

    monkeypatch.setattr(kmeans_module, "optional_import", lambda name: _FakeCuml() if name == "cuml" else None)
    auto = KMeans(3)
    assert auto._engine(in_memory=True, device="cuda") == "cuml"
    assert auto._engine(in_memory=False, device="cuda") == "torch"  # Dask partitions: our reduction
    assert auto._engine(in_memory=True, device="cpu") == "torch"
    assert KMeans(3, engine="torch")._engine(in_memory=True, device="cuda") == "torch"
    with pytest.raises(ValueError, match="engine='cuml' needs a CUDA device"):
        KMeans(3, engine="cuml")._engine(in_memory=True, device="cpu")
    monkeypatch.setattr(kmeans_module, "optional_import", lambda name: None)
    assert auto._engine(in_memory=True, device="cuda") == "torch"  # no cuML installed: our kernels on cuda
    with pytest.raises(ImportError, match='pip install "clustra\\[gpu\\]"'):
        KMeans(3, engine="cuml")._engine(in_memory=True, device="cuda")


def test_hdbscan_tree_builder_selection(monkeypatch):
    import numpy as np

    import cluster_core.algorithms.hdbscan as hdbscan_module

    calls = []

    class FakeModel:
        def __init__(self, **params):
            calls.append(params)

        def fit(self, x):
            raise RuntimeError("cuML path taken")

    class FakeModule:
        HDBSCAN = FakeModel

    monkeypatch.setattr(hdbscan_module, "optional_import", lambda name: FakeModule() if name == "cuml.cluster.hdbscan" else None)
    sample = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    params = {"min_cluster_size": 5, "min_samples": 3, "cluster_selection_method": "eom", "cluster_selection_epsilon": 0.0}
    with pytest.raises(RuntimeError, match="cuML path taken"):
        hdbscan_module.build_tree(sample, params, "cuda")
    assert calls[0]["output_type"] == "numpy" and calls[0]["min_cluster_size"] == 5
    tree, labels, _ = hdbscan_module.build_tree(sample, params, "cpu")  # the CPU builds with the hdbscan package
    assert labels.shape == (50,) and set(tree.dtype.names) >= {"parent", "child", "lambda_val", "child_size"}
