"""Typed errors shared by the library, the CLI, the jobs API and serving.

Each error says which value was wrong and what was expected. An error that concerns one
setting names it in ``field`` (the library's name: ``k``, ``output``, ``include``); the CLI
turns that name into its flag (``--k``, ``--out``), the HTTP APIs return it as the body's
``field``. Every class carries its HTTP status and error code, so the same exception gets
the same answer from every API (see :mod:`cluster_core.http_contract`) and a bad request is
never a 500.
"""

from __future__ import annotations

from typing import ClassVar


class ClustraError(Exception):
    """Base class of every error Clustra raises on purpose.

    Parameters
    ----------
    message : str
        What was wrong and what was expected, without the field's name.
    field : str, optional
        The setting (or spec field) the error concerns; ``str(error)`` is then
        ``"FIELD: MESSAGE"``.
    """

    http_status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InvalidInputError(ClustraError, ValueError):
    """A value given by the user is not acceptable (bad parameter, bad column, bad record)."""

    http_status = 422
    code = "invalid_input"


class DataError(InvalidInputError):
    """The dataset itself cannot be used: missing path, empty, corrupt file, no usable column."""


class MemoryLimitError(DataError):
    """The data does not fit the Dask workers' memory: a partition larger than a worker can
    hold, or every worker paused at its memory limit with nothing left to spill. The message
    names the memory limit, the partition size and what to change."""


class NotFoundError(ClustraError, LookupError):
    """A named thing (model, version, alias, job) does not exist."""

    http_status = 404
    code = "not_found"


class ArtifactError(ClustraError):
    """A stored artifact is missing a part, has an unknown format version, or is corrupt."""

    http_status = 409
    code = "artifact_unavailable"


class UnavailableError(ClustraError):
    """A service cannot do the request now for a reason on its side that may pass (its state
    store cannot be written: disk full, read-only, locked): HTTP 503 with ``Retry-After``."""

    http_status = 503
    code = "unavailable"
    retry_after_s: ClassVar[int] = 5


class StoreError(ClustraError):
    """A state store (the jobs service's SQLite file) cannot be used at all: corrupt,
    truncated, not Clustra's schema, or read-only. Found when the service starts; the
    command prints one line and exits with status 2."""

    http_status = 503
    code = "store_unusable"


class ConfigurationError(ClustraError, ImportError):
    """The installation or the server's configuration is broken (e.g. a plugin named in
    ``CLUSTRA_PLUGINS`` fails to import): not the request's fault, so a 500 at HTTP."""

    http_status = 500
    code = "misconfigured"


class ClustraWarning(UserWarning):
    """Warnings Clustra emits itself (turned into errors in the test suite)."""
