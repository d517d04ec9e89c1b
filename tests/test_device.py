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
