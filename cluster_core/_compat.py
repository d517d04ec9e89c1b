"""Optional imports in one place; each failure says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

_INSTALL_HINTS = {
    "cupy": 'pip install "clustra[gpu]"  (cupy-cuda12x)',
    "cudf": 'pip install "clustra[gpu]"  (cudf-cu12)',
    "cuml": 'pip install "clustra[gpu]"  (cuml-cu12)',
    "dask_cuda": 'pip install "clustra[gpu]"  (dask-cuda)',
    "ray": 'pip install "clustra[serve]"  (ray[serve])',
    "prometheus_client": 'pip install "clustra[serve]"  (prometheus-client)',
    "sentence_transformers": 'pip install "clustra[text]"',
    "PIL": 'pip install "clustra[image]"  (pillow)',
    "onnxruntime": 'pip install "clustra[image]"  (onnxruntime)',
    "tslearn": 'pip install "clustra[series]"  (tslearn)',
}


def optional_import(name: str) -> ModuleType | None:
    """Import module ``name`` or return None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(name)
    except Exception:  # a broken GPU stack raises more than ImportError on import
        return None


def require(name: str, feature: str) -> ModuleType:
    """Import module ``name``; raise ImportError naming the feature and the install command."""
    module = optional_import(name)
    if module is None:
        hint = _INSTALL_HINTS.get(name.split(".")[0], f"pip install {name}")
        raise ImportError(f"{feature} needs the Python module {name!r}; install it with: {hint}")
    return module
