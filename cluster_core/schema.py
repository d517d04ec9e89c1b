"""Column kinds: inferred from a sample and the stored dtypes, overridable by the user.

Rules (first match wins), on the non-missing values of a sample:

1. all values missing, or a single distinct value        -> ``constant`` (excluded)
2. boolean dtype, or strings that are all true/false/yes/no/t/f/y/n -> ``boolean``
3. datetime dtype, or strings of which >= 90% parse as dates   -> ``datetime``
4. numeric dtype: an integer column named like an id (``id``, ``*_id``, ``uuid``,
   ``key``) with >= 95% distinct values -> ``identifier`` (excluded); else ``numeric``
5. pandas ``category`` dtype                                    -> ``categorical``
6. image references: bytes that start like an image file, image structs, or strings of
   which >= 90% are data:image URIs or paths/URLs ending in .png/.jpg/...     -> ``image``
7. strings of which >= 90% are WKT ``POINT (lon lat)`` or GeoJSON points       -> ``geo``
8. strings: >= 90% distinct and short (under 3 words)           -> ``identifier`` (excluded)
   at least 5 words on average, or long and mostly distinct     -> ``text``
   otherwise                                                    -> ``categorical``

Coordinates: two numeric columns named like a latitude and a longitude with the same
prefix/suffix (``lat``/``lon``, ``pickup_latitude``/``pickup_longitude``, ``lat``/``lng``)
whose values lie in [-90, 90] and [-180, 180] become one ``geo`` place: the latitude
column carries ``options={"lat": ..., "lon": ...}``, the longitude column
``options={"part_of": LATITUDE}``. Pairs can be declared (``geo_pairs``) and a column forced
to another kind is never paired.

Every kind with a registered featurizer is used; ``identifier`` and ``constant`` columns
are excluded with the reason shown to the user. The kind names and the value formats of
rules 6 and 7 live in :mod:`cluster_core.kinds` (shared with the featurizers; this module
never imports :mod:`cluster_core.features`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field

import pandas as pd

from .errors import DataError, InvalidInputError
from .kinds import (  # noqa: F401  (the kind names are part of this module's interface)
    BOOLEAN,
    CATEGORICAL,
    CONSTANT,
    DATETIME,
    EXCLUDED_KINDS,
    GEO,
    IDENTIFIER,
    IMAGE,
    KINDS,
    NUMERIC,
    TEXT,
    is_image_bytes,
    looks_like_image_ref,
    looks_like_point,
)
from .text_table import format_table

_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^id[_\W]", re.IGNORECASE)
_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n"}
_DATE_LIKE = re.compile(r"^\s*\d{1,4}[-/.:]\d{1,2}")
_LAT_NAME = re.compile(r"^(?P<pre>|.*[^a-z0-9])(?P<token>latitude|lat)(?P<post>|[^a-z].*)$")
_LON_NAME = re.compile(r"^(?P<pre>|.*[^a-z0-9])(?P<token>longitude|long|lng|lon)(?P<post>|[^a-z].*)$")


@dataclass
class ColumnSpec:
    """One input column: its dtype, kind, whether it is used and why not."""

    name: str
    dtype: str
    kind: str
    used: bool = True
    reason: str = ""
    missing_fraction: float = 0.0
    n_unique: int = 0
    example: str = ""
    options: dict = field(default_factory=dict)


@dataclass
class Schema:
    """The columns of a dataset as Clustra sees them."""

    columns: list[ColumnSpec]

    @property
    def used(self) -> list[ColumnSpec]:
        """Columns that are featurized."""
        return [c for c in self.columns if c.used]

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name`` (KeyError if absent)."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, payload: dict) -> Schema:
        """Inverse of :meth:`to_dict`."""
        return cls([ColumnSpec(**c) for c in payload["columns"]])

    def format_table(self) -> str:
        """A fixed-width table for terminals."""
        rows = [
            (c.name, c.dtype, c.kind, "yes" if c.used else "no", f"{c.missing_fraction:.0%}", c.n_unique, c.reason)
            for c in self.columns
        ]
        return format_table(("column", "dtype", "kind", "used", "missing", "distinct", "note"), rows)


def _parse_dates(values: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(values, errors="coerce", utc=True, format="mixed")


def _n_unique(present: pd.Series) -> int:
    """Distinct values (strings compared as text; bytes and records by value)."""
    if present.dtype != object:
        return int(present.nunique())
    if present.map(lambda v: isinstance(v, (bytes, bytearray, memoryview, dict))).any():
        return int(present.map(repr).nunique())
    return int(present.astype(str).nunique())


def _binary_kind(present: pd.Series) -> tuple[str, str] | None:
    """IMAGE for image bytes/structs, IDENTIFIER for other binary values, None for anything else."""
    head = present.iloc[:500]
    kinds = head.map(lambda v: isinstance(v, (bytes, bytearray, memoryview, dict)))
    if not kinds.all():
        return None
    if head.map(looks_like_image_ref).mean() >= 0.9:
        return IMAGE, "image bytes" if head.map(is_image_bytes).any() else "image records"
    return IDENTIFIER, "binary values that are not images"


def _string_kind(text: pd.Series) -> tuple[str, str] | None:
    """IMAGE for image paths/URLs/data URIs, GEO for WKT/GeoJSON points, None otherwise."""
    head = text.iloc[:500]
    if head.map(looks_like_image_ref).mean() >= 0.9:
        return IMAGE, "image paths/URLs"
    if head.str.contains("point", case=False, regex=False).mean() >= 0.9 and head.map(looks_like_point).mean() >= 0.9:
        return GEO, "WKT/GeoJSON points"
    return None


def _infer_kind(name: str, values: pd.Series, n_unique: int | None = None) -> tuple[str, str]:
    """(kind, reason) for one column of a sample (``n_unique``: its distinct present values, when counted already)."""
    present = values.dropna()
    if present.empty:
        return CONSTANT, "all values missing"
    if present.dtype == object:
        binary = _binary_kind(present)
        if binary is not None:
            return binary
    n_unique = _n_unique(present) if n_unique is None else n_unique
    if n_unique <= 1:
        return CONSTANT, "a single distinct value"
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN, ""
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DATETIME, ""
    if pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype) and _ID_NAME.search(name) and n_unique >= 0.95 * len(present):
            return IDENTIFIER, "integer id: distinct in every row"
        return NUMERIC, ""
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL, ""
    text = present.astype(str)
    if set(text.str.lower().unique()) <= _BOOL_WORDS:
        return BOOLEAN, ""
    sample = text.iloc[:2000]
    if sample.str.match(_DATE_LIKE).mean() >= 0.9 and _parse_dates(sample).notna().mean() >= 0.9:
        return DATETIME, "parsed from strings"
    special = _string_kind(sample)
    if special is not None:
        return special
    words = sample.str.split().str.len().mean()
    distinct = n_unique / len(present)
    if distinct >= 0.9 and words < 3:
        return IDENTIFIER, "distinct short strings (an id?)"
    if words >= 5 or (distinct > 0.5 and sample.str.len().mean() >= 30):
        return TEXT, ""
    return CATEGORICAL, ""


def check_kind_names(kinds: dict[str, str], kind_weights: dict[str, float] | None = None) -> None:
    """Every kind a setting names is a known column kind (built-in or registered by a featurizer).

    Raises
    ------
    InvalidInputError
        Naming the setting (``kinds`` or ``kind_weights``), the unknown kinds and the known ones.
    """
    bad = {c: k for c, k in kinds.items() if k not in KINDS}
    if bad:
        raise InvalidInputError(f"unknown column kind(s) {bad}; expected one of {KINDS}", field="kinds")
    unknown = [k for k in (kind_weights or {}) if k not in KINDS]
    if unknown:
        raise InvalidInputError(f"unknown column kind(s) {unknown}; expected one of {KINDS}", field="kind_weights")


def infer_schema(
    sample: pd.DataFrame,
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    kinds: dict[str, str] | None = None,
    supported_kinds: set[str] | None = None,
    geo_pairs: list[tuple[str, str]] | None = None,
) -> Schema:
    """Infer every column's kind from ``sample`` and apply the user's choices.

    Parameters
    ----------
    sample : DataFrame
        Rows drawn from the dataset (dtypes as stored).
    include : list of str, optional
        Use only these columns (others are kept out, with a reason).
    exclude : list of str, optional
        Leave these columns out.
    kinds : dict, optional
        ``{column: kind}`` forced kinds; a forced kind is used even if it would be excluded.
    supported_kinds : set of str, optional
        Kinds that have a featurizer; others are excluded with a reason.
    geo_pairs : list of (str, str), optional
        Declared (latitude, longitude) column pairs; others are detected by name and range.
    """
    names = [str(c) for c in sample.columns]
    kinds = dict(kinds or {})
    for label, given in (("include", include or []), ("exclude", exclude or []), ("kinds", list(kinds))):
        unknown = [c for c in given if c not in names]
        if unknown:
            raise InvalidInputError(f"column(s) {unknown} not in the dataset; its columns: {names}", field=label)
    check_kind_names(kinds)
    columns = []
    for name in names:
        values = sample[name]
        present = values.dropna()
        n_unique = _n_unique(present) if len(present) else 0
        kind, reason = _infer_kind(name, values, n_unique)
        forced = name in kinds
        if forced:
            kind, reason = kinds[name], "kind set by user"
        used = forced or kind not in EXCLUDED_KINDS
        if include is not None and name not in include:
            used, reason = False, "not in the include list"
        if exclude and name in exclude:
            used, reason = False, "excluded by user"
        if used and supported_kinds is not None and kind not in supported_kinds:
            used, reason = False, f"no featurizer for kind {kind!r} installed"
        columns.append(
            ColumnSpec(
                name=name,
                dtype=str(values.dtype),
                kind=kind,
                used=used,
                reason=reason,
                missing_fraction=float(values.isna().mean()) if len(values) else 0.0,
                n_unique=n_unique,
                example=str(present.iloc[0])[:40] if len(present) else "",
            )
        )
    schema = Schema(columns)
    if supported_kinds is None or GEO in supported_kinds:
        _pair_coordinates(schema, sample, kinds, list(geo_pairs or []))
    if not schema.used:
        raise DataError(f"no usable columns: {_describe_exclusions(schema)}")
    return schema


def _in_range(values: pd.Series, limit: float) -> bool:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return len(numbers) > 0 and bool((numbers.abs() <= limit).all())


def _detect_pairs(schema: Schema, sample: pd.DataFrame, kinds: dict[str, str], taken: set[str]) -> list[tuple[str, str]]:
    """(lat, lon) pairs of numeric columns named alike, with values in range."""

    def candidate(spec: ColumnSpec) -> bool:
        allowed = kinds.get(spec.name, GEO) == GEO and spec.kind in (NUMERIC, GEO)  # a forced other kind is kept
        return allowed and spec.used and spec.name not in taken and not spec.options

    longitudes = {}
    for spec in schema.columns:
        match = _LON_NAME.match(spec.name.lower())
        if match and candidate(spec) and _in_range(sample[spec.name], 180.0):
            longitudes.setdefault((match["pre"], match["post"]), spec.name)
    pairs = []
    for spec in schema.columns:
        match = _LAT_NAME.match(spec.name.lower())
        if match and candidate(spec) and _in_range(sample[spec.name], 90.0):
            lon = longitudes.get((match["pre"], match["post"]))
            if lon is not None and lon != spec.name:
                pairs.append((spec.name, lon))
    return pairs


def _pair_coordinates(schema: Schema, sample: pd.DataFrame, kinds: dict[str, str], declared: list[tuple[str, str]]) -> None:
    """Turn declared and detected (latitude, longitude) column pairs into one geo place each."""
    names = [c.name for c in schema.columns]
    for pair in declared:
        if len(pair) != 2 or any(c not in names for c in pair) or pair[0] == pair[1]:
            raise InvalidInputError(
                f"geo pair {list(pair)} should name two different columns of the dataset; columns: {names}", field="geo_pairs"
            )
    taken = {c for pair in declared for c in pair}
    pairs = list(declared) + _detect_pairs(schema, sample, kinds, taken)
    paired = {c for pair in pairs for c in pair}
    for spec in schema.columns:
        if kinds.get(spec.name) == GEO and spec.name not in paired and pd.api.types.is_numeric_dtype(sample[spec.name].dtype):
            raise InvalidInputError(
                f"column {spec.name!r} is declared geo but is a single number; declare its pair as LAT:LON "
                "(`geo_pairs`), or name the columns like lat/lon", field="kinds"
            )
    for lat, lon in pairs:
        lat_spec, lon_spec = schema.column(lat), schema.column(lon)
        lat_spec.kind, lat_spec.used, lat_spec.options = GEO, True, {"lat": lat, "lon": lon}
        lat_spec.reason = f"latitude of a place, with {lon!r}"
        lon_spec.kind, lon_spec.used, lon_spec.options = GEO, True, {"part_of": lat}
        lon_spec.reason = f"longitude of a place, with {lat!r}"


def _describe_exclusions(schema: Schema) -> str:
    return "; ".join(f"{c.name} ({c.kind}: {c.reason})" for c in schema.columns) or "the dataset has no columns"

