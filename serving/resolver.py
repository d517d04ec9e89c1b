"""Which version a request means, answered from a periodically refreshed view of the registry.

Versions are immutable, so ``NAME/VERSION`` names fixed content: replicas cache models by
it forever (LRU). What moves is the mapping from a request (``latest``, ``?alias=``,
``?version=``) to a version. :class:`RegistryView` keeps that mapping in memory, re-reads
it every ``refresh_interval_s``, and re-reads one model at once when a request names a
model, version or alias it has not seen -- so a newly published version is served on the
first request that asks for it, and a moved alias within ``refresh_interval_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cluster_core.errors import InvalidInputError, NotFoundError
from cluster_core.registry import LATEST, ModelRef, ModelRegistry, check_name, parse_version


@dataclass(frozen=True)
class _Entry:
    versions: tuple[int, ...]
    aliases: dict[str, int] = field(default_factory=dict)


class RegistryView:
    """An in-memory copy of every model's versions and aliases.

    Parameters
    ----------
    registry : ModelRegistry
    refresh_interval_s : float
        Age after which :meth:`due` asks for a full re-read.
    """

    def __init__(self, registry: ModelRegistry, refresh_interval_s: float = 2.0) -> None:
        self.registry = registry
        self.refresh_interval_s = refresh_interval_s
        self._entries: dict[str, _Entry] = {}
        self._refreshed_at = float("-inf")

    def due(self) -> bool:
        """True when the view is older than ``refresh_interval_s``."""
        return time.monotonic() - self._refreshed_at >= self.refresh_interval_s

    def refresh(self) -> None:
        """Re-read every model (blocking file-system reads: call from a thread in async code)."""
        self._refreshed_at = time.monotonic()
        entries = {}
        for name in self.registry.names():
            entry = self._read(name)
            if entry.versions:
                entries[name] = entry
        self._entries = entries

    def refresh_model(self, name: str) -> None:
        """Re-read one model (after a request named something the view lacks)."""
        entry = self._read(name)
        entries = dict(self._entries)
        if entry.versions:
            entries[name] = entry
        else:
            entries.pop(name, None)
        self._entries = entries

    def _read(self, name: str) -> _Entry:
        return _Entry(tuple(self.registry.versions(name)), self.registry.aliases(name))

    @staticmethod
    def check_request(name: str, version: str | None, alias: str | None) -> None:
        """Raise InvalidInputError for a malformed name, version or alias (before any lookup)."""
        check_name(name)
        if version is not None and alias is not None:
            raise InvalidInputError("give either ?version= or ?alias=, not both")
        if version is not None:
            parse_version(version)
        if alias is not None:
            check_name(alias, "alias")

    def lookup(self, name: str, version: str | None = None, alias: str | None = None) -> ModelRef | None:
        """The version meant, or None when the view does not know it (yet)."""
        self.check_request(name, version, alias)
        entry = self._entries.get(name)
        if entry is None:
            return None
        if version is not None:
            number = parse_version(version)
            return ModelRef(name, number) if number in entry.versions else None
        if alias is not None and alias != LATEST:
            return ModelRef(name, entry.aliases[alias], alias) if alias in entry.aliases else None
        return ModelRef(name, entry.versions[-1], alias)

    def not_found(self, name: str, version: str | None = None, alias: str | None = None) -> NotFoundError:
        """The 404 error for a request :meth:`lookup` could not answer after a refresh."""
        entry = self._entries.get(name)
        if entry is None:
            return NotFoundError(f"model {name!r} is not in the registry (models: {sorted(self._entries) or 'none'})")
        if version is not None:
            return NotFoundError(f"model {name!r} has no version {parse_version(version)} (versions: {list(entry.versions)})")
        return NotFoundError(f"model {name!r} has no alias {alias!r} (aliases: {sorted(entry.aliases) or 'none'})")

    def models(self) -> list[str]:
        """Names the view knows."""
        return sorted(self._entries)
