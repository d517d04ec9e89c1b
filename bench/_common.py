"""Helpers shared by the benchmark scripts (not part of the library)."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeats`` runs (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def sgemm_gflops(size: int = 4096, repeats: int = 3) -> float:
    """This machine's float32 GEMM rate with torch (all threads), the ceiling for GEMM-bound kernels."""
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b
    seconds, _ = timed(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def machine() -> dict:
    """What the numbers were measured on."""
    import os

    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0],
    }


def blobs(n: int, d: int, centers: int, seed: int = 0) -> np.ndarray:
    """Gaussian blobs as float32, generated in chunks to keep memory at the output size."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 6, (centers, d)).astype(np.float32)
    out = np.empty((n, d), np.float32)
    step = 1 << 20
    for start in range(0, n, step):
        m = min(step, n - start)
        out[start : start + m] = means[rng.integers(0, centers, m)] + rng.normal(0, 1, (m, d)).astype(np.float32)
    return out


def write_result(name: str, payload: dict) -> Path:
    """Store a benchmark's results as bench/out/NAME.json."""
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path
