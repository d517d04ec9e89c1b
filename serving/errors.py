"""HTTP status codes for Clustra's typed errors, in one place (never a 500 for bad input).

=============================  ======  ===============================================
error                          status  meaning
=============================  ======  ===============================================
``BadRequestError``            400     body is not JSON / not an Arrow IPC stream
``UnauthorizedError``          401     bearer token missing or wrong
``NotFoundError``              404     unknown model, version or alias
``PayloadTooLargeError``       413     body or record count above the configured limit
``InvalidInputError``          422     missing, unknown or mistyped column; bad field
``ArtifactError``              500     a published model cannot be read (server fault)
=============================  ======  ===============================================
"""

from __future__ import annotations

from cluster_core.errors import ArtifactError, ClustraError, InvalidInputError, NotFoundError


class BadRequestError(ClustraError):
    """The body cannot be decoded at all (not JSON, not an Arrow IPC stream)."""


class PayloadTooLargeError(ClustraError):
    """The body, or its number of records, is above the configured limit."""


class UnauthorizedError(ClustraError):
    """Authentication is on and the request lacks the right bearer token."""


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BadRequestError, 400),
    (UnauthorizedError, 401),
    (NotFoundError, 404),
    (PayloadTooLargeError, 413),
    (InvalidInputError, 422),
    (ArtifactError, 500),
)


def status_for(error: BaseException) -> int:
    """The HTTP status of a Clustra error (500 for anything unexpected)."""
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_for(status: int, message: str) -> ClustraError:
    """The typed error for ``status`` (inverse of :func:`status_for`), carrying ``message``."""
    for cls, code in _STATUS:
        if code == status:
            return cls(message)
    return ClustraError(message)
