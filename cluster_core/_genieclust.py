"""genieclust's compiled cluster validity module, loaded without the package's plotting imports.

``import genieclust`` imports its plots (and deadwood's), hence matplotlib: ~0.7 s of a
process that only wants two validity indices (:func:`cluster_core.selection.validity_indices`).
The indices live in one compiled extension module, ``genieclust.cluster_validity``, that
needs nothing else of the package: it is loaded here from its file, under its own name, and
kept out of ``sys.modules`` (a later ``import genieclust``, for the Genie algorithm, loads
the package as usual). When the package is imported already, its own module is used.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import threading
from types import ModuleType

MODULE = "genieclust.cluster_validity"

_lock = threading.Lock()
_loaded: ModuleType | None = None


def _extension_path() -> str | None:
    """The file of genieclust's compiled ``cluster_validity`` module, None when not found."""
    spec = importlib.util.find_spec("genieclust")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cluster_validity" + suffix)
            if os.path.isfile(path):
                return path
    return None


def load_cluster_validity() -> ModuleType:
    """``genieclust.cluster_validity`` (``wcnn_index``, ``dunnowa_index``, ...), without matplotlib.

    Falls back to the plain import when the compiled file is not where the package keeps it.
    """
    global _loaded
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    with _lock:
        if _loaded is None:
            path = _extension_path()
            if path is None:
                from genieclust import cluster_validity as module
            else:
                loader = importlib.machinery.ExtensionFileLoader(MODULE, path)
                spec = importlib.util.spec_from_file_location(MODULE, path, loader=loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
            _loaded = module
        return _loaded
