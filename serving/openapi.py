"""What the assignment API documents in its OpenAPI document: request bodies and 200 answers.

The routes build their answers themselves (bytes straight from the model replicas), so these
models only describe them; the Schemathesis tests (``tests/test_serving_schema.py``) check
that every answer conforms.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .records import ARROW_STREAM_TYPE, JSON_TYPE

# one record: column -> scalar value (null = missing, imputed by the model)
_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "column: value; null means missing (the model's imputation)",
    "additionalProperties": {"type": ["string", "number", "integer", "boolean", "null"]},
}

# ``openapi_extra`` of POST /v1/models/{name}/assign: the route reads its body itself
ASSIGN_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"JSON records, or an Arrow IPC stream ({ARROW_STREAM_TYPE}) for bulk scoring. "
                       "Any other Content-Type gets 415; none at all is read as JSON.",
        "content": {
            JSON_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["records"],
                    "additionalProperties": False,
                    "properties": {"records": {"type": "array", "items": _RECORD_SCHEMA}},
                }
            },
            ARROW_STREAM_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class Health(BaseModel):
    """``GET /healthz``."""

    status: str = Field(description="always 'ok' when the ingress answers")


class ModelSummary(BaseModel):
    """One published model in ``GET /v1/models``."""

    name: str
    latest: int
    n_versions: int
    aliases: dict[str, int]
    algorithm: str | None = None
    model_id: str | None = None
    published_at: str | None = None


class ModelList(BaseModel):
    """``GET /v1/models``."""

    models: list[ModelSummary]


class DescribeResponse(BaseModel):
    """``GET /v1/models/{name}``: versions and aliases, then the chosen version's schema, clusters and metrics."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: int
    alias: str | None = None
    latest: int
    aliases: dict[str, int]
    versions: list[dict[str, Any]]
    model_id: str | None = None
    algorithm: str | None = None
    n_clusters: int | None = None
    input_schema: list[dict[str, Any]]
    output: str | None = Field(None, description="'distances', 'probabilities' or null: what each assignment carries")
    clusters: list[dict[str, Any]]
    metrics: dict[str, Any]


class Assignment(BaseModel):
    """One record's cluster."""

    cluster_id: int = Field(description="-1 = noise")
    cluster_name: str | None
    is_noise: bool
    distance: float | None = Field(None, description="KMeans: to the assigned centroid; series shape models: DTW "
                                   "(shape) or k-Shape (kshape) distance to the nearest center")
    distances: list[float] | None = Field(None, description="KMeans: to every centroid; series shape models: to every center")
    probability: float | None = Field(None, description="GMM posterior / HDBSCAN membership strength")
    probabilities: list[float] | None = Field(None, description="per cluster")


class AssignResponse(BaseModel):
    """``POST /v1/models/{name}/assign`` with JSON records."""

    model: str
    version: int
    alias: str | None = None
    assignments: list[Assignment] = Field(description="one per record, in request order")


def prometheus_text() -> dict[str, Any]:
    """The 200 answer of ``GET /metrics`` (Prometheus text exposition)."""
    return {"description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}
