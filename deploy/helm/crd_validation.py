"""Validate custom resources against the operators' CustomResourceDefinitions, offline.

A CRD's ``openAPIV3Schema`` is a *structural* schema: the API server prunes (or, with
``kubectl --validate=strict`` / server-side field validation, rejects) every field that is not
listed under ``properties``, unless the node says ``x-kubernetes-preserve-unknown-fields``.
This module converts such a schema to JSON Schema (draft 2020-12) with the same meaning and
validates rendered manifests with the ``jsonschema`` library:

- a node with ``properties`` and without ``x-kubernetes-preserve-unknown-fields`` gets
  ``additionalProperties: false`` (unknown fields fail), unless it already has an
  ``additionalProperties`` schema (a map);
- ``x-kubernetes-int-or-string`` accepts an integer or a string;
- ``nullable: true`` also accepts null;
- ``x-kubernetes-embedded-resource`` admits ``apiVersion``, ``kind`` and ``metadata``;
- the root object admits ``apiVersion``, ``kind``, ``metadata`` (validated by the API server,
  not by the CRD) and ``status``.

Types, ``required``, ``enum``, ``minimum``/``maximum``, ``pattern``, ``minItems``/``maxItems``
and the like are JSON Schema keywords already and are kept as they are.

Usage (from the repository root)::

    helm template rel deploy/helm/clustra -f VALUES | python deploy/helm/crd_validation.py CRD.yaml...

prints one line per violation and exits with status 1 when there is any.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parent / "crds-for-validation"

# OpenAPI / Kubernetes keys with no JSON Schema meaning that the conversion drops.
_DROPPED = {
    "nullable",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def to_json_schema(node: dict[str, Any], *, root: bool = False) -> dict[str, Any]:
    """The JSON Schema equivalent of one structural OpenAPI v3 schema node (recursively).

    Parameters
    ----------
    node : dict
        A node of a CRD's ``openAPIV3Schema``.
    root : bool
        Whether ``node`` is the resource's root (which admits apiVersion, kind, metadata, status).
    """
    out = {k: v for k, v in node.items() if k not in _DROPPED and k not in {"properties", "items", "additionalProperties", *_SCHEMA_LISTS}}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
    if "items" in node:
        out["items"] = to_json_schema(node["items"])
    for key in _SCHEMA_LISTS:
        if key in node:
            # int-or-string's anyOf [{type: integer}, {type: string}] is expressed by "type" above
            out[key] = [to_json_schema(s) for s in node[key]]
    properties = {name: to_json_schema(sub) for name, sub in node.get("properties", {}).items()}
    if root or node.get("x-kubernetes-embedded-resource"):
        for name in ("apiVersion", "kind"):
            properties.setdefault(name, {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
    if root:
        properties.setdefault("status", {"type": "object"})
    if properties:
        out["properties"] = properties
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = to_json_schema(additional)
    elif additional is not None:
        out["additionalProperties"] = additional
    elif properties and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class CustomResourceSchema:
    """The JSON Schema of one served version of a CRD."""

    api_version: str  # group/version
    kind: str
    source: str  # the CRD file it came from
    validator: jsonschema.Draft202012Validator

    def errors(self, resource: dict[str, Any]) -> list[str]:
        """One ``path: message`` line per violation in ``resource`` (empty when valid)."""
        found = sorted(self.validator.iter_errors(resource), key=lambda e: [str(p) for p in e.absolute_path])
        where = f"{self.kind}/{resource.get('metadata', {}).get('name', '?')}"
        return [f"{where}: {_path(e)}: {e.message}" for e in found]


def _path(error: jsonschema.ValidationError) -> str:
    return "." + ".".join(str(p) for p in error.absolute_path) if error.absolute_path else "(root)"


def load_crd(path: Path | str) -> list[CustomResourceSchema]:
    """The schemas of every served version in one CRD file."""
    crd = yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{path}: expected a CustomResourceDefinition, got kind={crd.get('kind') if isinstance(crd, dict) else type(crd).__name__}")
    spec = crd["spec"]
    schemas = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = to_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]), root=True)
        jsonschema.Draft202012Validator.check_schema(schema)
        schemas.append(CustomResourceSchema(f"{spec['group']}/{version['name']}", spec["names"]["kind"],
                                            Path(path).name, jsonschema.Draft202012Validator(schema)))
    return schemas


def load_crds(paths: Iterable[Path | str]) -> dict[tuple[str, str], CustomResourceSchema]:
    """Schemas by (apiVersion, kind) from several CRD files; a kind defined twice is an error."""
    schemas: dict[tuple[str, str], CustomResourceSchema] = {}
    for path in paths:
        for schema in load_crd(path):
            key = (schema.api_version, schema.kind)
            if key in schemas:
                raise ValueError(f"{schema.kind} {schema.api_version} is defined by both {schemas[key].source} and {schema.source}")
            schemas[key] = schema
    return schemas


def validate_manifests(docs: Iterable[dict[str, Any]], schemas: dict[tuple[str, str], CustomResourceSchema],
                       kinds: set[str]) -> list[str]:
    """Violations of every resource whose kind is in ``kinds``; a kind without a schema is one too."""
    errors = []
    for doc in docs:
        if doc.get("kind") not in kinds:
            continue
        schema = schemas.get((doc.get("apiVersion"), doc["kind"]))
        if schema is None:
            known = sorted(f"{v} {k}" for v, k in schemas)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: no CRD for apiVersion={doc.get('apiVersion')}; expected one of {known}")
            continue
        errors += schema.errors(doc)
    return errors


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: helm template ... | python deploy/helm/crd_validation.py CRD.yaml...", file=sys.stderr)
        return 2
    schemas = load_crds(argv)
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    errors = validate_manifests(docs, schemas, {kind for _, kind in schemas})
    for line in errors:
        print(line)
    checked = sum(1 for d in docs if (d.get("apiVersion"), d.get("kind")) in schemas)
    print(f"{checked} custom resource(s) checked, {len(errors)} violation(s)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
