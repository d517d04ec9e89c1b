"""Clustra's library: data, features, algorithms, metrics, models (no web framework, no job state)."""

__version__ = "0.1.0"

from .errors import ArtifactError, ClustraError, DataError, InvalidInputError, NotFoundError  # noqa: E402

__all__ = ["ArtifactError", "ClustraError", "DataError", "InvalidInputError", "NotFoundError", "__version__"]
