"""Settings validated by pydantic, with failures turned into Clustra's own error type."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidInputError

Model = TypeVar("Model", bound=BaseModel)


_NO_VALUE_TYPES = ("missing", "extra_forbidden", "union_tag_not_found", "union_tag_invalid")
MAX_SHOWN_CHARS = 60


def shown_value(value: Any) -> str:
    """A short ``repr`` of a rejected value (long strings cut, NUL shown escaped)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[:MAX_SHOWN_CHARS - 12]}... ({len(str(value))} chars)"


def error_message(error: dict[str, Any]) -> str:
    """The message of one pydantic error, followed by the rejected value for scalar inputs
    (``Input should be less than or equal to 1000, got 1e+20``)."""
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    value = error.get("input")
    if error.get("type") not in _NO_VALUE_TYPES and isinstance(value, (str, int, float, bool)) and "got " not in message:
        message = f"{message}, got {shown_value(value)}"
    return message


def field_error(exc: ValidationError) -> InvalidInputError:
    """The first problem of a pydantic ``ValidationError`` as an :class:`InvalidInputError` naming its field."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if not isinstance(p, int)]
    return InvalidInputError(error_message(first) or str(exc), field=".".join(loc) or None)


def validated(model: type[Model], values: dict[str, Any]) -> Model:
    """``model(**values)``; an :class:`InvalidInputError` naming the first bad field otherwise."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise field_error(exc) from None
