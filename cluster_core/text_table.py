"""Fixed-width tables for terminals and progress logs (one helper for every table Clustra prints)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_table(header: Sequence[str], rows: Iterable[Sequence[object]], *, right: Iterable[int] = ()) -> str:
    """``header`` and ``rows`` as aligned columns with a dashed rule under the header.

    Parameters
    ----------
    header : sequence of str
    rows : iterable of sequences
        Cells are turned into text with ``str``; None shows as ``-``.
    right : iterable of int
        Indexes of the columns aligned to the right (numbers); the others align left.

    Returns
    -------
    str
        Lines without trailing spaces, joined by newlines.
    """
    text = [tuple(header)] + [tuple("-" if cell is None else str(cell) for cell in row) for row in rows]
    right = set(right)
    widths = [max(len(row[i]) for row in text) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = (v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(row))
        return "  ".join(cells).rstrip()

    lines = [line(row) for row in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
