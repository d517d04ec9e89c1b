"""Column kinds: their names, and the value formats that identify the special ones.

The one place both sides of kind handling import from: :mod:`cluster_core.schema` infers
kinds with the detectors below, and the featurizers (:mod:`cluster_core.features`) register
their kinds here and parse values with the same functions, so what is detected as a point
or an image is exactly what the featurizer accepts. This module imports neither of them
(nor numpy or pandas): ``schema -> kinds <- features``, no cycle.
"""

from __future__ import annotations

import json
import re
from typing import Any

NUMERIC, BOOLEAN, CATEGORICAL, DATETIME, TEXT = "numeric", "boolean", "categorical", "datetime", "text"
IMAGE, GEO = "image", "geo"
IDENTIFIER, CONSTANT = "identifier", "constant"
#: Kinds inferred but never featurized unless the user forces them.
EXCLUDED_KINDS = (IDENTIFIER, CONSTANT)
#: Every valid column kind: the built-ins, then those of registered featurizers, the excluded kinds last.
KINDS = [NUMERIC, BOOLEAN, CATEGORICAL, DATETIME, TEXT, IMAGE, GEO, IDENTIFIER, CONSTANT]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_WKT_POINT = re.compile(
    r"^\s*POINT\s*(?:Z\s*|M\s*|ZM\s*)?\(\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s+([-+]?[\d.]+(?:[eE][-+]?\d+)?)"
    r"(?:\s+[-+]?[\d.]+(?:[eE][-+]?\d+)?)*\s*\)\s*$",
    re.IGNORECASE,
)


def register_kind(kind: str) -> None:
    """Make ``kind`` a valid column kind (:func:`cluster_core.features.register` calls this).

    Parameters
    ----------
    kind : str
        A new kind is inserted before the excluded kinds; a known one is left in place.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"column kind {kind!r} should be a non-empty string")
    if kind not in KINDS:
        KINDS.insert(len(KINDS) - len(EXCLUDED_KINDS), kind)


# -- geo: WKT and GeoJSON points -----------------------------------------------------------
def parse_point(value: Any) -> tuple[float, float]:
    """(lat, lon) of a WKT point string, a GeoJSON Point (string or dict); ValueError otherwise."""
    if isinstance(value, str):
        text = value.strip()
        match = _WKT_POINT.match(text)
        if match:
            return float(match.group(2)), float(match.group(1))
        if text.startswith("{"):
            value = json.loads(text)
    if isinstance(value, dict) and str(value.get("type", "")).lower() == "point":
        coordinates = value.get("coordinates")
        if isinstance(coordinates, (list, tuple)) and len(coordinates) >= 2:
            return float(coordinates[1]), float(coordinates[0])
    raise ValueError("not a WKT POINT or GeoJSON Point")


def looks_like_point(value: Any) -> bool:
    """True for a WKT/GeoJSON point (used by column-kind detection)."""
    try:
        parse_point(value)
        return True
    except (ValueError, TypeError):
        return False


# -- image: bytes, structs, data URIs, paths and URLs ----------------------------------------
def is_image_bytes(value: Any) -> bool:
    """True when ``value`` is bytes that start like PNG, JPEG, GIF, BMP, TIFF or WebP."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        return False
    head = bytes(value[:16])
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def looks_like_image_ref(value: Any) -> bool:
    """True for image bytes, an image struct, a data URI, or a path/URL ending in an image suffix."""
    if isinstance(value, dict):
        return value.get("bytes") is not None or looks_like_image_ref(value.get("path"))
    if is_image_bytes(value):
        return True
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    return text.startswith("data:image/") or text.split("?", 1)[0].endswith(IMAGE_SUFFIXES)
