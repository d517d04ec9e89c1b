"""Which files a job may read and write: paths confined to the service's configured roots.

A spec names its data, model and output paths; each is checked here before the job is
accepted and again when it runs:

* ``..`` components are refused outright, whatever they would resolve to;
* a relative path is taken relative to the roots (data: the first data root where it
  exists; output: the output root); an absolute path must lie under a root;
* the *real* path (symlinks resolved) must lie under a root too, and for a directory or
  glob so must every entry a reader would follow, so a symlink cannot lead outside;
* an output path must not exist unless the spec says ``overwrite``, must not be a
  symlink, a root itself, or hold the job's input data;
* an output path must never be, contain or lie inside a *protected* path (the job store
  and its side files, the model registry), whatever the roots allow;
* model weights (``text_model``, ``image_model``) are read only under the model roots
  (``--model-root``); with none configured, a spec naming weights is refused.

Every path-valued spec field declares its role (:class:`cluster_core.config.PathRole`:
``data``, ``model`` or ``output``); :meth:`PathPolicy.check_field` confines a value by
its role, so a new path field is confined as soon as it is declared.

URL roots (``s3://bucket/prefix``) confine URL paths by prefix.
"""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cluster_core.config import MAX_PATH_CHARS
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


class ProtectedPathError(PathNotAllowedError):
    """An output that would replace, contain or nest inside the job store or the registry (HTTP 422)."""

    http_status = 422
    code = "invalid_spec"


# names of model weights that are not paths: the packaged text model (cluster_core.features._models)
PACKAGED_MODEL_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


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
    model_roots : list of str
        Directories model weights (``text_model``, ``image_model``) may be read from.
    protected : list of str
        Paths no job may write to, over or into (the job store, the registry).
    """

    data_roots: tuple[str, ...]
    output_root: str
    model_roots: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    _real: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(cls, data_roots: list[str] | tuple[str, ...], output_root: str | os.PathLike, *,
               model_roots: list[str] | tuple[str, ...] = (), protected: list[str] | tuple[str, ...] = ()) -> PathPolicy:
        """Normalize the roots (absolute, no trailing separator); the output root is created.

        Raises
        ------
        InvalidInputError
            A local data or model root that is not a directory, an output root that cannot be created.
        """
        roots = tuple(r.rstrip("/") if _is_url(r) else os.path.abspath(os.path.expanduser(r)) for r in data_roots)
        missing = [r for r in roots if not _is_url(r) and not os.path.isdir(r)]
        if missing:
            raise InvalidInputError(f"data root {missing[0]!r} is not a directory")
        models = tuple(os.path.abspath(os.path.expanduser(r)) for r in model_roots)
        missing = [r for r in models if not os.path.isdir(r)]
        if missing:
            raise InvalidInputError(f"model root {missing[0]!r} is not a directory", field="model_roots")
        output = os.path.abspath(os.path.expanduser(str(output_root)))
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"cannot create the output root {output!r}: {exc.strerror or exc}") from None
        guarded = tuple(os.path.abspath(os.path.expanduser(p)) for p in protected if not _is_url(p))
        policy = cls(roots, output, models, guarded)
        for root in (*roots, *models, output, *guarded):
            if not _is_url(root):
                policy._real[root] = os.path.realpath(root)
        return policy

    def check_field(self, field_name: str, value: str | None, role: str) -> str | None:
        """Confine the value of a path-valued spec field by its role; the checked path (None stays None).

        ``data``: readable under a data root (see :meth:`readable`); ``model``: readable under a
        model root (:meth:`model_readable`); ``output``: see :meth:`writable` (the caller passes
        the default and the inputs there; here only the roots and protected paths are checked).
        """
        if value is None:
            return None
        if role == "data":
            return self.readable(value, field_name)
        if role == "model":
            return self.model_readable(value, field_name)
        if role == "output":
            return self.writable(value, value, field_name=field_name, overwrite=True)
        raise ValueError(f"role={role!r} is not one of data, model, output")

    def model_readable(self, value: str, field_name: str) -> str:
        """The checked path of model weights: under a model root (``..``, outside paths and escaping
        symlinks refused); the packaged text model's name is kept as it is.

        Raises
        ------
        FieldError
            No model root is configured (422).
        PathNotAllowedError, PathMissingError
            As :meth:`readable`, against the model roots.
        """
        value = value.strip()
        if value in PACKAGED_MODEL_NAMES:
            return value
        if not self.model_roots:
            raise FieldError(field_name, f"{value!r} names model weights, but this service has no model root; "
                                         "start it with --model-root DIR to allow weights under DIR")
        return self._readable_under(value, field_name, self.model_roots, "model roots")

    @property
    def read_roots(self) -> tuple[str, ...]:
        """Data roots, then the output root (jobs read the models other jobs wrote)."""
        return (*self.data_roots, self.output_root)

    @property
    def write_roots(self) -> tuple[str, ...]:
        """The output root, then the local data roots."""
        return (self.output_root, *(r for r in self.data_roots if not _is_url(r)))

    def _refuse(self, field_name: str, value: str, why: str, roots: tuple[str, ...] | None = None) -> PathNotAllowedError:
        allowed = ", ".join(self.read_roots if roots is None else roots)
        return PathNotAllowedError(field_name, f"{value!r} {why}; allowed roots: {allowed}")

    def _root_of(self, path: str, roots: tuple[str, ...]) -> str | None:
        return next((r for r in roots if not _is_url(r) and _within(path, r)), None)

    def _check_real(self, field_name: str, value: str, path: str, roots: tuple[str, ...], *, tree: bool = True) -> None:
        """The real path of ``path`` (and with ``tree``, of the entries under it) stays under a root's real path."""
        real_roots = [self._real.get(r, os.path.realpath(r)) for r in roots if not _is_url(r)]

        def inside(candidate: str) -> bool:
            real = os.path.realpath(candidate)
            return any(_within(real, root) for root in real_roots)

        if not inside(path):
            raise self._refuse(field_name, value, "resolves (through a symlink) outside the allowed roots", roots)
        if tree and os.path.isdir(path) and not os.path.islink(path):
            self._check_tree(field_name, value, path, inside, roots)

    def _check_tree(self, field_name: str, value: str, top: str, inside: Callable[[str], bool],
                    roots: tuple[str, ...] | None = None) -> None:
        seen = 0
        for folder, dirs, files in os.walk(top, followlinks=False):
            for name in (*dirs, *files):
                seen += 1
                entry = os.path.join(folder, name)
                if os.path.islink(entry) and not inside(entry):
                    rel = os.path.relpath(entry, top)
                    raise self._refuse(field_name, value, f"holds a symlink {rel!r} that leads outside the allowed roots",
                                       roots)
            if seen > MAX_ENTRIES_CHECKED:
                raise self._refuse(field_name, value, f"has more than {MAX_ENTRIES_CHECKED} entries to check", roots)

    def readable(self, value: str, field_name: str = "data") -> str:
        """The checked local path (or URL) for reading ``value``.

        Raises
        ------
        PathNotAllowedError
            ``..``, outside every root, or leading outside through a symlink.
        PathMissingError
            Nothing exists there (no file matches a glob).
        """
        return self._readable_under(value.strip(), field_name, self.read_roots, "data roots")

    def _readable_under(self, value: str, field_name: str, roots: tuple[str, ...], what: str) -> str:
        _check_text(field_name, value)
        if _has_parent_reference(value):
            raise self._refuse(field_name, value, "contains '..'", roots)
        if _is_url(value):
            if any(_is_url(r) and (value == r or value.startswith(r + "/")) for r in roots):
                return value
            raise self._refuse(field_name, value, "is a URL outside the allowed roots", roots)
        expanded = os.path.expanduser(value)
        if os.path.isabs(expanded):
            candidates = [os.path.normpath(expanded)]
            if self._root_of(candidates[0], roots) is None:
                raise self._refuse(field_name, value, "is outside the allowed roots", roots)
        else:
            candidates = [os.path.normpath(os.path.join(r, expanded)) for r in roots if not _is_url(r)]
        for path in candidates:
            matches = _glob.glob(path) if set(path) & _GLOB_CHARS else ([path] if os.path.lexists(path) else [])
            if not matches:
                continue
            for match in matches:
                self._check_real(field_name, value, match, roots)
            return path
        raise PathMissingError(field_name, f"{value!r} does not exist under the {what} ({', '.join(roots)})")

    def writable(self, value: str | None, default: str | os.PathLike, *, field_name: str = "output",
                 overwrite: bool = False, inputs: tuple[str, ...] = ()) -> str:
        """The checked local path a job may create (``default`` when ``value`` is None).

        ``inputs``: paths the job reads, which the output must not replace or contain.
        """
        if value is None:
            value = str(default)
        value = value.strip()
        _check_text(field_name, value)
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
        self._check_not_protected(field_name, value, path)
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

    def _check_not_protected(self, field_name: str, value: str, path: str) -> None:
        """Refuse an output that is, contains or lies inside a protected path (by name and by real path)."""
        real = os.path.realpath(path)
        for guarded in self.protected:
            real_guarded = self._real.get(guarded, os.path.realpath(guarded))
            for mine, theirs in ((path, guarded), (real, real_guarded)):
                if _within(mine, theirs) or _within(theirs, mine):
                    raise ProtectedPathError(
                        field_name, f"{value!r} would replace, contain or nest inside {guarded!r}, which holds the "
                        "service's own state (job store or model registry); choose another output")


def _check_text(field_name: str, value: str) -> None:
    """A path as text: not empty, no NUL, at most MAX_PATH_CHARS characters (422)."""
    if not value:
        raise FieldError(field_name, "must be a non-empty path")
    if "\x00" in value:
        raise FieldError(field_name, "must not contain a NUL character")
    if len(value) > MAX_PATH_CHARS:
        raise FieldError(field_name, f"is {len(value)} characters long; a path has at most {MAX_PATH_CHARS}")


__all__ = ["PACKAGED_MODEL_NAMES", "PathMissingError", "PathNotAllowedError", "PathPolicy", "ProtectedPathError"]
