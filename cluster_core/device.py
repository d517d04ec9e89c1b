"""One device decision for the whole process.

``resolve_device()`` looks once (``CLUSTRA_DEVICE`` or an explicit setting overrides
auto-detection) and the result is passed down to kernels, featurizers and the Dask
cluster factory. Detection asks for a *device*, not for an import: ``import cuml``
succeeds on a machine without a GPU and fails only at its first call.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ._compat import optional_import
from .errors import InvalidInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Device:
    """Where array work runs: ``kind`` is ``"cpu"`` or ``"cuda"``."""

    kind: str
    gpu_count: int = 0

    @property
    def is_gpu(self) -> bool:
        """True when kernels should run on a CUDA device."""
        return self.kind == "cuda"

    @property
    def torch(self) -> str:
        """The torch device string for this device."""
        return "cuda" if self.is_gpu else "cpu"


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of usable CUDA devices (0 when none, or when no CUDA library is installed).

    Asks cupy first (``cupy.is_available()`` is true only with a working device), then
    torch; an import alone proves nothing.
    """
    cupy = optional_import("cupy")
    if cupy is not None:
        try:
            if cupy.is_available():
                return int(cupy.cuda.runtime.getDeviceCount())
        except Exception:  # cupy without a driver raises CUDARuntimeError
            pass
    torch = optional_import("torch")
    if torch is not None and torch.cuda.is_available():
        return int(torch.cuda.device_count())
    return 0


def faiss_gpu_count() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu)."""
    faiss = optional_import("faiss")
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def resolve_device(setting: str | None = None) -> Device:
    """Decide the device from ``setting`` (or ``CLUSTRA_DEVICE``), defaulting to auto-detection.

    Parameters
    ----------
    setting : {"auto", "cpu", "cuda"}, optional
        ``"cuda"`` fails clearly when no CUDA device is visible.
    """
    chosen = (setting or os.environ.get("CLUSTRA_DEVICE") or "auto").lower()
    if chosen not in DEVICE_CHOICES:
        raise InvalidInputError(f"device={chosen!r} is not one of {', '.join(DEVICE_CHOICES)}")
    if chosen == "cpu":
        return Device("cpu")
    count = cuda_device_count()
    if chosen == "cuda" and count == 0:
        raise InvalidInputError("device='cuda' was requested but no CUDA device is visible")
    return Device("cuda", count) if count else Device("cpu")
