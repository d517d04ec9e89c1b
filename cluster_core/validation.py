"""Settings validated by pydantic, with failures turned into Clustra's own error type."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidInputError

Model = TypeVar("Model", bound=BaseModel)


def field_error(exc: ValidationError) -> InvalidInputError:
    """The first problem of a pydantic ``ValidationError`` as an :class:`InvalidInputError` naming its field."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if not isinstance(p, int)]
    message = str(first.get("msg", exc)).removeprefix("Value error, ")
    return InvalidInputError(message, field=".".join(loc) or None)


def validated(model: type[Model], values: dict[str, Any]) -> Model:
    """``model(**values)``; an :class:`InvalidInputError` naming the first bad field otherwise."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise field_error(exc) from None
