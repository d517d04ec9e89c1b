"""Request bodies: JSON ``{"records": [...]}`` and Arrow IPC streams, decoded and checked.

Decoding (this module) needs no model: size limits, JSON syntax, the envelope's shape.
Column checks against a model's input schema live in :mod:`serving.assign`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd

from cluster_core.errors import InvalidInputError
from cluster_core.http_contract import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

JSON_TYPE = "application/json"
ARROW_STREAM_TYPE = "application/vnd.apache.arrow.stream"
ENVELOPE_HINT = 'expected {"records": [{"column": value, ...}, ...]}'


def is_arrow(content_type: str | None) -> bool:
    """True when the Content-Type names an Arrow IPC stream."""
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == ARROW_STREAM_TYPE


def body_format(content_type: str | None) -> str:
    """``"json"`` or ``"arrow"``: how to read a body with this Content-Type.

    No Content-Type (or an empty one) means JSON; parameters such as ``charset`` are ignored.

    Raises
    ------
    UnsupportedMediaTypeError
        Any other media type (415), named in the message with the two accepted.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in ("", JSON_TYPE):
        return "json"
    if media_type == ARROW_STREAM_TYPE:
        return "arrow"
    raise UnsupportedMediaTypeError(
        f"Content-Type {content_type[:100]!r} is not supported; send {JSON_TYPE} (records) or {ARROW_STREAM_TYPE} (bulk)"
    )


def check_declared_length(content_length: str | None, limit: int) -> None:
    """Refuse early when the declared Content-Length is above ``limit`` (413) or malformed (400)."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise BadRequestError(f"Content-Length {content_length!r} is not a number") from None
    if declared > limit:
        raise PayloadTooLargeError(f"request body of {declared:,} bytes is above the limit of {limit:,} bytes")


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Join a streamed body, stopping with 413 as soon as it passes ``limit`` bytes."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is above the limit of {limit:,} bytes")
        parts.append(chunk)
    return b"".join(parts)


def parse_records(body: bytes, max_records: int) -> list[Any]:
    """The ``records`` list of a JSON body.

    Raises
    ------
    BadRequestError
        Empty body, not UTF-8, not JSON.
    InvalidInputError
        Valid JSON of the wrong shape (names what was expected).
    PayloadTooLargeError
        More than ``max_records`` records.
    """
    if not body.strip():
        raise BadRequestError(f"request body is empty; {ENVELOPE_HINT}")
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"request body is not UTF-8 text: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {ENVELOPE_HINT}") from None
    except RecursionError:
        raise BadRequestError(f"request body is JSON nested too deeply to decode; {ENVELOPE_HINT}") from None
    if not isinstance(payload, dict):
        raise InvalidInputError(f"request body is a JSON {_json_type(payload)}; {ENVELOPE_HINT}")
    if "records" not in payload:
        raise InvalidInputError(f"field 'records' is missing; {ENVELOPE_HINT}")
    extra = sorted(set(payload) - {"records"})
    if extra:
        raise InvalidInputError(f"unknown field {extra[0]!r} in the request body; {ENVELOPE_HINT}")
    records = payload["records"]
    if not isinstance(records, list):
        raise InvalidInputError(f"field 'records' is a JSON {_json_type(records)}, expected an array of objects")
    if len(records) > max_records:
        raise PayloadTooLargeError(f"{len(records):,} records in one request is above the limit of {max_records:,}; split the request or use the Arrow bulk path")
    return records


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), type(value).__name__)


def read_arrow(body: bytes) -> Any:
    """The ``pyarrow.Table`` of an Arrow IPC stream (BadRequestError when it is not one)."""
    import pyarrow as pa

    if not body:
        raise BadRequestError("request body is empty; expected an Arrow IPC stream")
    try:
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise BadRequestError(f"request body is not an Arrow IPC stream: {exc}") from None


def write_table(table: Any) -> bytes:
    """A ``pyarrow.Table`` as Arrow IPC stream bytes."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def write_arrow(frame: pd.DataFrame) -> bytes:
    """A pandas frame as Arrow IPC stream bytes (no index)."""
    import pyarrow as pa

    return write_table(pa.Table.from_pandas(frame, preserve_index=False, nthreads=1))
