"""The model registry: named models, immutable numbered versions, movable aliases.

A registry is a directory on any filesystem fsspec knows (a local path by default,
``s3://bucket/prefix``, ``gs://``, ``memory://`` ...)::

    REGISTRY/
      NAME/
        versions/
          1/  model.json  pipeline.json/.npz  estimator.json/.npz  version.json
          2/  ...
        aliases/
          production.json   {"alias": "production", "version": 2, "updated_at": ...}

* A version is a copy of a model directory (see :mod:`cluster_core.model`) plus
  ``version.json`` (number, model id, source, publication time, size and sha256 of every
  file). Versions never change once published.
* A reader never sees a half-written version. On a local filesystem the version is
  assembled in a hidden sibling directory and renamed into place (a rename onto an
  existing version fails, so two concurrent publishers get different numbers). On an
  object store ``version.json`` is written last and a version without it does not exist
  for readers; publishers of the same model name on an object store must not run
  concurrently.
* An alias is one small JSON document replaced in a single step (``os.replace`` on a
  local filesystem, one object PUT on an object store), so it always names a complete
  version. ``latest`` is implicit: the highest version.

The location comes from the caller, else the ``CLUSTRA_REGISTRY`` environment
variable, else ``~/.clustra/registry``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._state import staged_directory
from .errors import ArtifactError, InvalidInputError, NotFoundError

# cluster_core.model (and torch behind it) is imported inside the functions that load models,
# so the `clustra` command starts fast.

REGISTRY_ENV = "CLUSTRA_REGISTRY"
DEFAULT_REGISTRY = "~/.clustra/registry"
CACHE_ENV = "CLUSTRA_REGISTRY_CACHE"
VERSION_FILE = "version.json"
LATEST = "latest"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PUBLISH_ATTEMPTS = 20


def default_registry_url() -> str:
    """``CLUSTRA_REGISTRY`` when set, else ``~/.clustra/registry`` (expanded)."""
    return os.environ.get(REGISTRY_ENV) or os.path.expanduser(DEFAULT_REGISTRY)


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` when it is a valid model (or alias) name, else raise InvalidInputError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"{what} {name!r} is not valid: expected 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` when it can name a version (not a number, not ``latest``)."""
    check_name(alias, "alias")
    if alias.isdigit() or alias == LATEST:
        raise InvalidInputError(f"alias {alias!r} is reserved: aliases cannot be numbers or {LATEST!r}")
    return alias


def parse_version(value: Any) -> int:
    """A version number from ``3``, ``"3"`` or ``"v3"``; InvalidInputError otherwise."""
    text = str(value).strip()
    text = text[1:] if text[:1] in ("v", "V") else text
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(f"version {value!r} is not valid: expected a positive integer such as 3")
    return int(text)


def _reason(exc: BaseException) -> str:
    """An OS error's reason without its traceback (``Read-only file system``)."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model_dir(path: str | os.PathLike) -> Any:
    """The model of a model directory: a :class:`~cluster_core.model.ClusteringModel`, or a
    :class:`~cluster_core.series.published.SeriesShapeModel` for the model of a shape-method
    series run (``model.json``'s ``model_type`` is ``series-shape``; docs/series.md)."""
    from .model import ClusteringModel
    from .series.published import SeriesShapeModel, is_shape_model_dir

    if is_shape_model_dir(path):
        return SeriesShapeModel.load(path)
    return ClusteringModel.load(path)


def publishable_dir(path: str | os.PathLike) -> Path:
    """The model directory ``clustra publish PATH`` copies: ``path`` itself (a model directory), a run's
    recommended model, or a shape-method series run's model (``RUN/models/MODEL_ID``)."""
    from .runs import resolve_model_dir
    from .series.published import shape_run_model_dir

    if Path(path).is_dir() and not (Path(path) / "model.json").is_file():
        found = shape_run_model_dir(path)
        if found is not None:
            return found
    return resolve_model_dir(path)


@dataclass(frozen=True)
class ModelRef:
    """A resolved reference: model ``name`` at ``version`` (reached through ``alias`` if any)."""

    name: str
    version: int
    alias: str | None = None

    @property
    def key(self) -> str:
        """``NAME/VERSION``: unique, and immutable content, so safe as a cache key."""
        return f"{self.name}/{self.version}"


class ModelRegistry:
    """Publish, list, resolve and load models in a registry directory.

    Parameters
    ----------
    url : str, optional
        A local path or an fsspec URL. Default: :func:`default_registry_url`.
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint).
    cache_dir : str, optional
        Where versions from a remote registry are copied before loading (default
        ``CLUSTRA_REGISTRY_CACHE`` or ``~/.cache/clustra/registry``). Versions are
        immutable, so the cache never goes stale.
    """

    def __init__(self, url: str | os.PathLike | None = None, *, storage_options: dict | None = None, cache_dir: str | None = None):
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.url = str(url) if url else default_registry_url()
        if "://" not in self.url:
            self.url = os.path.abspath(os.path.expanduser(self.url))
        self.fs, root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.root = root.rstrip("/") or "/"
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self._cache_dir = cache_dir

    def __repr__(self) -> str:
        return f"ModelRegistry({self.url!r})"

    # -- paths ----------------------------------------------------------------------------
    def _path(self, *parts: str | int) -> str:
        return "/".join([self.root, *(str(p) for p in parts)])

    def _read_json(self, path: str) -> dict:
        try:
            with self.fs.open(path, "rb") as handle:
                return json.loads(handle.read())
        except FileNotFoundError:
            raise
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"registry file {path!r} is not valid JSON: {exc}") from exc

    def _write_json_atomic(self, path: str, payload: dict) -> None:
        """Replace ``path`` in one step (ArtifactError naming the path when the registry refuses the write)."""
        data = (json.dumps(payload, indent=2) + "\n").encode()
        if not self.is_local:  # one object PUT replaces the object in a single step
            try:
                self.fs.pipe_file(path, data)
            except (OSError, NotImplementedError) as exc:
                raise ArtifactError(f"cannot write {path!r} in the registry {self.url!r}: {_reason(exc)}") from None
            return
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)
            raise ArtifactError(f"cannot write {path!r} in the registry {self.url!r}: {_reason(exc)}") from None

    # -- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Model names with at least one published version, sorted."""
        if not self.fs.exists(self.root):
            return []
        found = self.fs.glob(self._path("*", "versions", "*", VERSION_FILE))
        return sorted({p.rstrip("/").split("/")[-4] for p in found})

    def versions(self, name: str) -> list[int]:
        """Published versions of ``name``, ascending (empty when the model does not exist)."""
        check_name(name)
        found = self.fs.glob(self._path(name, "versions", "*", VERSION_FILE))
        numbers = [p.rstrip("/").split("/")[-2] for p in found]
        return sorted(int(n) for n in numbers if n.isdigit())

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` of ``name``."""
        check_name(name)
        out = {}
        for path in self.fs.glob(self._path(name, "aliases", "*.json")):
            alias = path.rstrip("/").split("/")[-1][: -len(".json")]
            if alias.startswith("."):
                continue
            try:
                out[alias] = int(self._read_json(path)["version"])
            except FileNotFoundError:  # removed between listing and reading
                continue
            except (KeyError, TypeError, ValueError) as exc:
                raise ArtifactError(f"alias file {path!r} is corrupt: {exc}") from exc
        return dict(sorted(out.items()))

    def resolve(self, name: str, version: Any = None, alias: str | None = None) -> ModelRef:
        """The version a request means: ``version``, else ``alias``, else the latest.

        Raises
        ------
        InvalidInputError
            Both ``version`` and ``alias`` given, or a malformed one.
        NotFoundError
            Unknown model, version or alias.
        """
        check_name(name)
        if version is not None and alias is not None:
            raise InvalidInputError("give either version or alias, not both")
        if alias is not None and alias != LATEST:
            check_name(alias, "alias")
            known = self.aliases(name)
            if alias not in known:
                self._require_model(name)
                raise NotFoundError(f"model {name!r} has no alias {alias!r} (aliases: {sorted(known) or 'none'})")
            return ModelRef(name, known[alias], alias)
        versions = self._require_model(name)
        if version is None:
            return ModelRef(name, versions[-1], LATEST if alias == LATEST else None)
        number = parse_version(version)
        if number not in versions:
            raise NotFoundError(f"model {name!r} has no version {number} (versions: {versions})")
        return ModelRef(name, number)

    def _require_model(self, name: str) -> list[int]:
        versions = self.versions(name)
        if not versions:
            known = self.names()
            raise NotFoundError(f"model {name!r} is not in the registry {self.url!r} (models: {known or 'none'})")
        return versions

    def version_info(self, name: str, version: int) -> dict:
        """``version.json`` of a published version."""
        try:
            return self._read_json(self._path(name, "versions", version, VERSION_FILE))
        except FileNotFoundError as exc:
            raise NotFoundError(f"model {name!r} has no version {version}") from exc

    def model_info(self, name: str, version: int) -> dict:
        """``model.json`` of a published version (algorithm, clusters, input schema, metrics)."""
        from .model import MODEL_FILE

        try:
            return self._read_json(self._path(name, "versions", version, MODEL_FILE))
        except FileNotFoundError as exc:
            raise NotFoundError(f"model {name!r} has no version {version}") from exc

    def insights(self, name: str, version: int) -> dict:
        """``insights.json`` of a published version (docs/insights.md); NotFoundError when it has none."""
        from .insights import INSIGHTS_FILE

        self.version_info(name, version)  # NotFoundError for an unknown version
        try:
            return self._read_json(self._path(name, "versions", version, INSIGHTS_FILE))
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"model {name!r} version {version} has no insights (trained with --no-insights or by an older Clustra)"
            ) from exc

    def describe(self, name: str) -> dict:
        """Name, versions (with their facts), aliases and the latest version."""
        versions = self._require_model(name)
        return {
            "name": name,
            "latest": versions[-1],
            "aliases": self.aliases(name),
            "versions": [self.version_info(name, v) for v in versions],
        }

    def list_models(self) -> list[dict]:
        """One summary per model: name, latest version, version count, aliases, algorithm."""
        out = []
        for name in self.names():
            versions = self.versions(name)
            latest = self.version_info(name, versions[-1])
            out.append(
                {
                    "name": name,
                    "latest": versions[-1],
                    "n_versions": len(versions),
                    "aliases": self.aliases(name),
                    "algorithm": latest.get("algorithm"),
                    "model_id": latest.get("model_id"),
                    "published_at": latest.get("published_at"),
                }
            )
        return out

    # -- loading --------------------------------------------------------------------------
    def local_dir(self, name: str, version: int) -> Path:
        """A local directory holding the version's files (the registry itself when local)."""
        if self.is_local:
            path = Path(self._path(name, "versions", version))
            if not (path / VERSION_FILE).is_file():
                raise NotFoundError(f"model {name!r} has no version {version}")
            return path
        return self._cached_copy(name, version)

    def _cache_root(self) -> Path:
        base = self._cache_dir or os.environ.get(CACHE_ENV) or os.path.expanduser("~/.cache/clustra/registry")
        return Path(base) / hashlib.sha256(self.url.encode()).hexdigest()[:16]

    def _cached_copy(self, name: str, version: int) -> Path:
        target = self._cache_root() / name / str(version)
        if (target / VERSION_FILE).is_file():
            return target
        info = self.version_info(name, version)
        try:
            with staged_directory(target) as staging:
                for file, facts in info.get("files", {}).items():
                    self.fs.get_file(self._path(name, "versions", version, file), str(staging / file))
                    if _sha256(staging / file) != facts["sha256"]:
                        raise ArtifactError(f"model {name!r} version {version}: file {file!r} does not match its checksum")
                self.fs.get_file(self._path(name, "versions", version, VERSION_FILE), str(staging / VERSION_FILE))
        except OSError:  # another process cached it first; its copy is identical
            if not (target / VERSION_FILE).is_file():
                raise
        return target

    def load(self, name: str, version: Any = None, alias: str | None = None) -> Any:
        """Load the model a reference resolves to (see :meth:`resolve`): a
        :class:`~cluster_core.model.ClusteringModel`, or a series shape model (:func:`load_model_dir`)."""
        ref = self.resolve(name, version, alias)
        return load_model_dir(self.local_dir(ref.name, ref.version))

    # -- writing --------------------------------------------------------------------------
    def publish(self, model_path: str | os.PathLike, name: str, *, alias: str | None = None) -> dict:
        """Copy a model directory (or a run directory's recommended model, or a shape-method series
        run's model) in as the next version.

        The model is loaded first, so a corrupt model is refused before anything is
        written. With ``alias``, the alias is moved to the new version once it is complete.

        Returns
        -------
        dict
            ``version.json`` of the new version plus ``alias`` and ``registry``.
        """
        from .model import read_model_info

        check_name(name)
        if alias is not None:
            check_alias(alias)
        source = publishable_dir(model_path)
        load_model_dir(source)  # refuse what cannot be served
        model = read_model_info(source)
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != VERSION_FILE)
        facts = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}
        info = {
            "name": name,
            "model_id": model.get("model_id"),
            "algorithm": model.get("algorithm"),
            "n_clusters": model.get("n_clusters"),
            "source": str(source.resolve()),
            "published_at": _now(),
            "files": facts,
        }
        write = self._publish_local if self.is_local else self._publish_remote
        info = write(name, files, info)
        if alias is not None:
            try:
                self.set_alias(name, alias, info["version"])
            except ArtifactError as exc:
                raise ArtifactError(f"model {name!r} version {info['version']} is published, but alias {alias!r} "
                                    f"was not moved: {exc}") from None
        return {**info, "alias": alias, "registry": self.url}

    def _next_version(self, name: str) -> int:
        """One above every version directory present, complete or not."""
        present = [p.rstrip("/").split("/")[-1] for p in self.fs.glob(self._path(name, "versions", "*"))]
        return max([int(n) for n in present if n.isdigit()], default=0) + 1

    def _publish_local(self, name: str, files: list[Path], info: dict) -> dict:
        versions_dir = Path(self._path(name, "versions"))
        for _ in range(_PUBLISH_ATTEMPTS):
            info = {**info, "version": self._next_version(name)}
            try:
                with staged_directory(versions_dir / str(info["version"])) as staging:
                    for file in files:
                        shutil.copy2(file, staging / file.name)
                    (staging / VERSION_FILE).write_text(json.dumps(info, indent=2) + "\n")
                return info
            except FileExistsError:  # another publisher took the number: take the next one
                continue
            except OSError as exc:
                if not (versions_dir / str(info["version"])).exists():
                    raise ArtifactError(f"cannot publish model {name!r} to {self.url!r}: {_reason(exc)}") from None
        raise ArtifactError(f"could not allocate a version number for model {name!r} (too many concurrent publishers)")

    def _publish_remote(self, name: str, files: list[Path], info: dict) -> dict:
        info = {**info, "version": self._next_version(name)}
        version_dir = self._path(name, "versions", info["version"])
        try:
            for file in files:
                self.fs.put_file(str(file), f"{version_dir}/{file.name}")
            self.fs.pipe_file(f"{version_dir}/{VERSION_FILE}", (json.dumps(info, indent=2) + "\n").encode())  # commit
        except (OSError, NotImplementedError) as exc:  # no version.json: readers never see the partial version
            raise ArtifactError(f"cannot publish model {name!r} to {self.url!r}: {_reason(exc)}") from None
        return info

    def set_alias(self, name: str, alias: str, version: Any) -> dict:
        """Point ``alias`` at an existing ``version`` of ``name`` (replacing where it pointed)."""
        check_alias(alias)
        number = self.resolve(name, version).version
        payload = {"alias": alias, "version": number, "updated_at": _now()}
        self._write_json_atomic(self._path(name, "aliases", f"{alias}.json"), payload)
        return payload

    def remove_alias(self, name: str, alias: str) -> None:
        """Delete ``alias`` of ``name`` (NotFoundError when it does not exist)."""
        check_alias(alias)
        path = self._path(name, "aliases", f"{alias}.json")
        if not self.fs.exists(path):
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        try:
            self.fs.rm_file(path)
        except (OSError, NotImplementedError) as exc:
            raise ArtifactError(f"cannot remove {path!r} from the registry {self.url!r}: {_reason(exc)}") from None
