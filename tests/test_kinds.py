"""Column kinds and the value formats that identify them (cluster_core.kinds)."""

from __future__ import annotations

import pytest

from cluster_core import kinds, schema
from cluster_core.features import FEATURIZERS


def test_featurizer_kinds_are_registered_before_the_excluded_ones():
    assert set(FEATURIZERS) <= set(kinds.KINDS)
    assert kinds.KINDS[-2:] == list(kinds.EXCLUDED_KINDS)
    assert schema.KINDS is kinds.KINDS  # one list, whichever module a caller reads it from


def test_register_kind(monkeypatch):
    monkeypatch.setattr(kinds, "KINDS", list(kinds.KINDS))
    kinds.register_kind("audio")
    kinds.register_kind("audio")
    assert kinds.KINDS.count("audio") == 1 and kinds.KINDS[-3:] == ["audio", "identifier", "constant"]
    with pytest.raises(ValueError, match="column kind '' should be a non-empty string"):
        kinds.register_kind("")


@pytest.mark.parametrize(
    "value, point, image",
    [
        ("POINT (2.35 48.85)", True, False),
        ('{"type": "Point", "coordinates": [139.69, 35.68]}', True, False),
        ({"type": "Point", "coordinates": [1, 2]}, True, False),
        ("photos/cat.JPG", False, True),
        ("https://example.org/a.png?size=2", False, True),
        ("data:image/png;base64,iVBORw0", False, True),
        (b"\x89PNG\r\n\x1a\n0000", False, True),
        ({"bytes": b"...", "path": None}, False, True),
        ("LINESTRING (0 0, 1 1)", False, False),
        ("a cat", False, False),
        (b"\x00\x01", False, False),
        (None, False, False),
    ],
)
def test_value_formats(value, point, image):
    assert kinds.looks_like_point(value) is point
    assert kinds.looks_like_image_ref(value) is image
