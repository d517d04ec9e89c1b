"""Which files a job may read and write: paths confined to the service's configured roots.

A spec names its data, model and output paths; each is checked here before the job is
accepted and again when it runs:

* ``..`` components are refused outright, whatever they would resolve to;
* a relative path is taken relative to the roots (data: the first data root where it
  exists; output: the output root); an absolute path must lie under a root;
* the *real* path (symlinks resolved) must lie under a root too, and for a directory or
  glob so must every entry a reader would follow, so a symlink cannot lead outside;
* an output path must not exist unless the spec says ``overwrite``, must not be a
  symlink, a root itself, or hold the job's input data.

URL roots (``s3://bucket/prefix``) confine URL paths by prefix.
"""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cluster_core.errors import InvalidInputError

from .specs import FieldError

MAX_ENTRIES_CHECKED = 200_000
_GLOB_CHARS = set("*?[")


class PathNotAllowedError(FieldError):
    """A spec path outside the configured roots (HTTP 403)."""

    http_status = 403
    code = "path_not_allowed"


class PathMissingError(FieldError):
    """A spec path that should exist and does not (HTTP 422)."""


def _is_url(value: str) -> bool:
    return "://" in value


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _has_parent_reference(value: str) -> bool:
    return ".." in value.replace("\\", "/").split("/")


@dataclass(frozen=True)
class PathPolicy:
    """The roots a job may read from and write to.

    Parameters
    ----------
    data_roots : list of str
        Directories (or ``scheme://prefix`` URLs) data and models may be read from.
    output_root : str
        Where job outputs go by default; readable and writable.
    """

    data_roots: tuple[str, ...]
    output_root: str
    _real: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(cls, data_roots: list[str] | tuple[str, ...], output_root: str | os.PathLike) -> PathPolicy:
        """Normalize the roots (absolute, no trailing separator); the output root is created.

        Raises
        ------
        InvalidInputError
            A local data root that is not a directory, an output root that cannot be created.
        """
        roots = tuple(r.rstrip("/") if _is_url(r) else os.path.abspath(os.path.expanduser(r)) for r in data_roots)
        missing = [r for r in roots if not _is_url(r) and not os.path.isdir(r)]
        if missing:
            raise InvalidInputError(f"data root {missing[0]!r} is not a directory")
        output = os.path.abspath(os.path.expanduser(str(output_root)))
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"cannot create the output root {output!r}: {exc.strerror or exc}") from None
        policy = cls(roots, output)
        for root in (*roots, output):
            if not _is_url(root):
                policy._real[root] = os.path.realpath(root)
        return policy

    @property
    def read_roots(self) -> tuple[str, ...]:
        """Data roots, then the output root (jobs read the models other jobs wrote)."""
        return (*self.data_roots, self.output_root)

    @property
    def write_roots(self) -> tuple[str, ...]:
        """The output root, then the local data roots."""
        return (self.output_root, *(r for r in self.data_roots if not _is_url(r)))

    def _refuse(self, field_name: str, value: str, why: str) -> PathNotAllowedError:
        roots = ", ".join(self.read_roots)
        return PathNotAllowedError(field_name, f"{value!r} {why}; allowed roots: {roots}")

    def _root_of(self, path: str, roots: tuple[str, ...]) -> str | None:
        return next((r for r in roots if not _is_url(r) and _within(path, r)), None)

    def _check_real(self, field_name: str, value: str, path: str, roots: tuple[str, ...], *, tree: bool = True) -> None:
        """The real path of ``path`` (and with ``tree``, of the entries under it) stays under a root's real path."""
        real_roots = [self._real.get(r, os.path.realpath(r)) for r in roots if not _is_url(r)]

        def inside(candidate: str) -> bool:
            real = os.path.realpath(candidate)
            return any(_within(real, root) for root in real_roots)

        if not inside(path):
            raise self._refuse(field_name, value, "resolves (through a symlink) outside the allowed roots")
        if tree and os.path.isdir(path) and not os.path.islink(path):
            self._check_tree(field_name, value, path, inside)

    def _check_tree(self, field_name: str, value: str, top: str, inside: Callable[[str], bool]) -> None:
        seen = 0
        for folder, dirs, files in os.walk(top, followlinks=False):
            for name in (*dirs, *files):
                seen += 1
                entry = os.path.join(folder, name)
                if os.path.islink(entry) and not inside(entry):
                    rel = os.path.relpath(entry, top)
                    raise self._refuse(field_name, value, f"holds a symlink {rel!r} that leads outside the allowed roots")
            if seen > MAX_ENTRIES_CHECKED:
                raise self._refuse(field_name, value, f"has more than {MAX_ENTRIES_CHECKED} entries to check")

    def readable(self, value: str, field_name: str = "data") -> str:
        """The checked local path (or URL) for reading ``value``.

        Raises
        ------
        PathNotAllowedError
            ``..``, outside every root, or leading outside through a symlink.
        PathMissingError
            Nothing exists there (no file matches a glob).
        """
        value = value.strip()
        if _has_parent_reference(value):
            raise self._refuse(field_name, value, "contains '..'")
        if _is_url(value):
            if any(_is_url(r) and (value == r or value.startswith(r + "/")) for r in self.data_roots):
                return value
            raise self._refuse(field_name, value, "is a URL outside the allowed roots")
        expanded = os.path.expanduser(value)
        if os.path.isabs(expanded):
            candidates = [os.path.normpath(expanded)]
            if self._root_of(candidates[0], self.read_roots) is None:
                raise self._refuse(field_name, value, "is outside the allowed roots")
        else:
            candidates = [os.path.normpath(os.path.join(r, expanded)) for r in self.read_roots if not _is_url(r)]
        for path in candidates:
            matches = _glob.glob(path) if set(path) & _GLOB_CHARS else ([path] if os.path.lexists(path) else [])
            if not matches:
                continue
            for match in matches:
                self._check_real(field_name, value, match, self.read_roots)
            return path
        raise PathMissingError(field_name, f"{value!r} does not exist under the data roots ({', '.join(self.read_roots)})")

    def writable(self, value: str | None, default: str | os.PathLike, *, field_name: str = "output",
                 overwrite: bool = False, inputs: tuple[str, ...] = ()) -> str:
        """The checked local path a job may create (``default`` when ``value`` is None).

        ``inputs``: paths the job reads, which the output must not replace or contain.
        """
        if value is None:
            value = str(default)
        value = value.strip()
        if _has_parent_reference(value):
            raise self._refuse(field_name, value, "contains '..'")
        if _is_url(value):
            raise self._refuse(field_name, value, "is a URL; outputs are written under a local root")
        expanded = os.path.expanduser(value)
        path = os.path.normpath(expanded if os.path.isabs(expanded) else os.path.join(self.output_root, expanded))
        root = self._root_of(path, self.write_roots)
        if root is None:
            raise self._refuse(field_name, value, "is outside the allowed roots")
        if path == root:
            raise self._refuse(field_name, value, "is a root itself; name a directory under it")
        if os.path.islink(path):
            raise self._refuse(field_name, value, "is a symlink")
        existing = path
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        self._check_real(field_name, value, existing if existing != path else os.path.dirname(path), self.write_roots,
                         tree=False)
        for source in inputs:
            if not _is_url(source) and (_within(source, path) or _within(path, source)):
                raise self._refuse(field_name, value, f"would overwrite or nest inside the input {source!r}")
        if os.path.lexists(path) and not overwrite:
            raise FieldError(field_name, f"{value!r} already exists; choose another path or set overwrite: true")
        return path


__all__ = ["PathMissingError", "PathNotAllowedError", "PathPolicy"]
