"""Serving: the Ray Serve assignment API over models published to the registry.

``serving.app:build_app`` is the application builder ``serve deploy`` / ``serve run`` import.
Names below load on first use, so ``clustra`` (which imports ``serving.settings``) starts fast
and nothing but ``build_app`` imports Ray.
"""

import importlib
from typing import Any

_EXPORTS = {
    "IngressOptions": "settings",
    "ModelOptions": "settings",
    "RegistryView": "resolver",
    "ServeArgs": "settings",
    "ServedModel": "assign",
    "build_app": "app",
    "serve_config": "config",
}

__all__ = ["IngressOptions", "ModelOptions", "RegistryView", "ServeArgs", "ServedModel", "build_app", "serve_config"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
