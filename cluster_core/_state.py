"""Pickle-free persistence of nested state: JSON for structure, one ``.npz`` for arrays.

A state is a dict of JSON values and numpy arrays, nested freely. ``write_state`` swaps
each array for ``{"__array__": KEY}`` and stores the arrays in ``NAME.npz`` (object
arrays are refused); ``read_state`` loads with ``allow_pickle=False``, so loading never
executes code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, InvalidInputError

_ARRAY_KEY = "__array__"


def _split_arrays(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"state entry {path!r} is an object array; only numeric/str arrays can be saved")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {_ARRAY_KEY: key}
    if isinstance(value, dict):
        return {str(k): _split_arrays(v, f"{path}.{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, f"{path}[{i}]", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join_arrays(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_KEY}:
            return arrays[value[_ARRAY_KEY]]
        return {k: _join_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays) for v in value]
    return value


def write_json(path: str | os.PathLike, payload: Any, *, compact: bool = False) -> None:
    """Write ``payload`` as indented JSON through a temporary file and an atomic rename.

    ``compact``: no indentation nor spaces, for bulk data (per-point arrays): Python's JSON
    encoder is C code only without indentation, ~10x faster.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    layout = {"separators": (",", ":")} if compact else {"indent": 2}
    tmp.write_text(json.dumps(payload, sort_keys=False, allow_nan=False, **layout) + "\n")
    os.replace(tmp, path)


def write_state(directory: str | os.PathLike, name: str, state: dict) -> None:
    """Write ``state`` as ``NAME.json`` (+ ``NAME.npz`` when it holds arrays) in ``directory``."""
    directory = Path(directory)
    arrays: dict[str, np.ndarray] = {}
    structure = _split_arrays(state, name, arrays)
    if arrays:
        with open(directory / f"{name}.npz", "wb") as handle:
            np.savez(handle, **arrays)
    write_json(directory / f"{name}.json", structure)


def read_state(directory: str | os.PathLike, name: str) -> dict:
    """Read a state written by :func:`write_state` (never unpickles).

    Raises
    ------
    ArtifactError
        A part is missing, empty, truncated, not JSON / not an ``.npz`` archive, or lacks an
        array the JSON part refers to.
    """
    directory = Path(directory)
    json_path = directory / f"{name}.json"
    try:
        structure = json.loads(json_path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(f"artifact part {str(json_path)!r} is missing") from exc
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ArtifactError(f"artifact part {str(json_path)!r} is not valid JSON: {exc}") from exc
    npz_path = directory / f"{name}.npz"
    arrays: dict[str, np.ndarray] = {}
    if npz_path.exists():
        try:
            with np.load(npz_path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            reason = "it is empty" if npz_path.stat().st_size == 0 else (str(exc) or type(exc).__name__)
            raise ArtifactError(f"artifact part {str(npz_path)!r} cannot be read: {reason}") from exc
    try:
        return _join_arrays(structure, arrays)
    except KeyError as exc:
        missing = "is missing" if not npz_path.exists() else f"lacks array {exc}"
        raise ArtifactError(f"artifact part {str(npz_path)!r} {missing}") from exc


def _remove(path: Path) -> None:
    """Remove a file or a directory tree (whatever ``path`` is)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_dir(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move directory ``source`` to ``target`` by rename.

    An existing ``target`` (a directory or a file) is renamed aside first and removed
    afterwards, so at every moment ``target`` is either the old complete content or the new
    one, and nothing is left beside it.
    """
    source, target = Path(source), Path(target)
    if not target.exists() and not target.is_symlink():
        os.rename(source, target)
        return
    trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, trash)
    os.rename(source, target)
    _remove(trash)


# Linux's limits: a whole path (PATH_MAX) and one name in it (NAME_MAX), in bytes
PATH_MAX_BYTES = 4096
NAME_MAX_BYTES = 255


def check_output(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """``path`` as a Path when it may be written: a valid path, absent or ``overwrite`` set,
    and in a place where this process can create it — checked before any work starts, so
    an unwritable output fails in a second, not after the training.

    Raises
    ------
    InvalidInputError
        A NUL character or an over-long path or name; ``path`` exists and ``overwrite`` is
        not set; its folder is a file, read-only or not accessible (field ``output``).
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if "\0" in text:
        raise InvalidInputError(f"output path {text!r} contains a NUL character", field="output")
    path = Path(text)
    if len(os.fsencode(text)) > PATH_MAX_BYTES:
        raise InvalidInputError(f"output path is {len(os.fsencode(text)):,} bytes long; at most {PATH_MAX_BYTES:,} are allowed", field="output")
    long_names = [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX_BYTES]
    if long_names:
        raise InvalidInputError(
            f"output path has a name of {len(os.fsencode(long_names[0])):,} bytes; at most {NAME_MAX_BYTES} are allowed", field="output"
        )
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise InvalidInputError(f"{text!r} already exists; choose another output or set overwrite", field="output")
    _check_can_create(path)
    return path


def _check_can_create(path: Path) -> None:
    """The nearest existing folder above ``path`` accepts new entries: probed by creating
    (and removing) a hidden directory there, which is what the write does first. This
    catches read-only file systems and permissions whoever runs it (root included)."""
    ancestor = path.absolute().parent
    while not (ancestor.exists() or ancestor.is_symlink()) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InvalidInputError(f"cannot write {str(path)!r}: {str(ancestor)!r} is not a directory", field="output")
    try:
        probe = tempfile.mkdtemp(prefix=f".{path.name[:64]}.probe-", dir=ancestor)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write {str(path)!r}: {str(ancestor)!r} does not accept new files ({exc.strerror or exc})", field="output"
        ) from exc
    os.rmdir(probe)


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a directory in a hidden sibling and rename it to ``target`` when complete.

    Yields the staging directory. When the block raises (or is interrupted), the staging
    directory is removed and ``target`` is untouched. With ``overwrite`` an existing
    ``target`` is replaced (see :func:`replace_dir`); without it, a ``target`` that
    exists when the rename happens makes it fail with :class:`FileExistsError` (so two
    writers of the same name never both succeed).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
        if overwrite:
            replace_dir(staging, target)
        elif target.exists() or target.is_symlink():
            raise FileExistsError(f"{str(target)!r} already exists")
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
