"""The values table of the Clustra chart, generated from the ``# --`` comments of values.yaml.

Every value of ``deploy/helm/clustra/values.yaml`` carries a ``# --`` comment on the line(s)
right above it (the helm-docs convention KubeRay's charts follow). A key with such a comment
is one documented value, whatever its type; a key without one must be a section whose
children are documented.

Usage::

    python deploy/helm/values_doc.py            # print the table
    python deploy/helm/values_doc.py --write    # refresh it in deploy/helm/clustra/README.md
    python deploy/helm/values_doc.py --check    # exit 1 when the README's table is stale

Only the standard library and PyYAML are used.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parent / "clustra"
VALUES_FILE = CHART_DIR / "values.yaml"
README_FILE = CHART_DIR / "README.md"
BEGIN_MARK = "<!-- values-table:begin -->"
END_MARK = "<!-- values-table:end -->"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+):(?:\s|$)")
_DOC_LINE = re.compile(r"^ *# -- ?(?P<text>.*)$")
_MORE_LINE = re.compile(r"^ *# ?(?P<text>.*)$")


@dataclass(frozen=True)
class ValueDoc:
    """One documented value: its dotted key, default and description."""

    key: str
    default: Any
    description: str


def comment_docs(text: str) -> dict[str, str]:
    """Map dotted keys to their ``# --`` descriptions, from the raw values.yaml text.

    Lines nested under a documented key (its default's own keys and list items) are skipped.
    """
    docs: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    skip_deeper_than: int | None = None
    for line in text.splitlines():
        doc = _DOC_LINE.match(line)
        if doc:
            pending = [doc.group("text").strip()]
            continue
        more = _MORE_LINE.match(line)
        if more and pending is not None:
            pending.append(more.group("text").strip())
            continue
        key = _KEY_LINE.match(line)
        if not key or line.lstrip().startswith("#"):
            if line.strip() and not line.lstrip().startswith("#"):
                pending = None
            continue
        indent = len(key.group("indent"))
        if skip_deeper_than is not None and indent > skip_deeper_than:
            continue
        skip_deeper_than = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key.group("key")])
        stack.append((indent, key.group("key")))
        if pending is not None:
            docs[dotted] = " ".join(part for part in pending if part)
            skip_deeper_than = indent
        pending = None
    return docs


def undocumented(values: dict[str, Any], docs: dict[str, str], prefix: str = "") -> list[str]:
    """Return the dotted keys that have no ``# --`` comment and are not documented sections."""
    missing = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if dotted in docs:
            continue
        if isinstance(value, dict) and value:
            missing.extend(undocumented(value, docs, f"{dotted}."))
        else:
            missing.append(dotted)
    return missing


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def value_docs(values_file: Path = VALUES_FILE) -> list[ValueDoc]:
    """Every documented value of ``values_file``, in file order."""
    text = values_file.read_text()
    values = yaml.safe_load(text)
    return [ValueDoc(k, _lookup(values, k), d) for k, d in comment_docs(text).items()]


def render_table(docs: list[ValueDoc]) -> str:
    """The markdown table: key, type, default, description."""
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for doc in docs:
        default = json.dumps(doc.default, separators=(",", ":"))
        kind = type(doc.default).__name__
        kind = {"str": "string", "dict": "object", "list": "list", "float": "number"}.get(kind, kind)
        description = doc.description.replace("|", "\\|")
        rows.append(f"| `{doc.key}` | {kind} | `{default}` | {description} |")
    return "\n".join(rows) + "\n"


def readme_with_table(readme: str, table: str) -> str:
    """Replace the text between the README's table markers with ``table``."""
    start = readme.index(BEGIN_MARK) + len(BEGIN_MARK)
    end = readme.index(END_MARK)
    return readme[:start] + "\n" + table + readme[end:]


def main(argv: list[str]) -> int:
    table = render_table(value_docs())
    if not argv:
        sys.stdout.write(table)
        return 0
    readme = README_FILE.read_text()
    updated = readme_with_table(readme, table)
    if argv == ["--write"]:
        README_FILE.write_text(updated)
        return 0
    if argv == ["--check"]:
        if updated != readme:
            print(f"{README_FILE}: the values table is stale; run {__file__} --write", file=sys.stderr)
            return 1
        return 0
    print("usage: values_doc.py [--write | --check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
