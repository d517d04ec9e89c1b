"""Typed errors shared by the library, the CLI, the jobs API and serving.

Each error says which value was wrong and what was expected. The HTTP edges map
these types to status codes in one place (``InvalidInputError`` -> 422/400,
``NotFoundError`` -> 404), so a bad request is never a 500.
"""

from __future__ import annotations


class ClustraError(Exception):
    """Base class of every error Clustra raises on purpose."""


class InvalidInputError(ClustraError, ValueError):
    """A value given by the user is not acceptable (bad parameter, bad column, bad record)."""


class DataError(InvalidInputError):
    """The dataset itself cannot be used: missing path, empty, corrupt file, no usable column."""


class NotFoundError(ClustraError, LookupError):
    """A named thing (model, version, alias, job) does not exist."""


class ArtifactError(ClustraError):
    """A stored artifact is missing a part, has an unknown format version, or is corrupt."""


class ClustraWarning(UserWarning):
    """Warnings Clustra emits itself (turned into errors in the test suite)."""
