"""Serving the model of a shape-method series run: one series per JSON record (docs/series.md).

:class:`ServedShapeModel` answers the calls the model deployment makes of a
:class:`~serving.assign.ServedModel` (``assign_batch``, ``explain_records``,
``assign_arrow_batch``) for a :class:`~cluster_core.series.published.SeriesShapeModel`:
each record is resampled and z-normalized as a series of a long table and assigned to the
nearest center by DTW (``dtw-kmeans``) or k-Shape's distance (``kshape``), the calls
``clustra apply`` makes on the run. :func:`load_served` loads a published version in the
form that serves it (what the model deployment calls).
"""

from __future__ import annotations

import json
from typing import Any

from cluster_core.errors import ClustraError, InvalidInputError
from cluster_core.registry import ModelRef, ModelRegistry, load_model_dir
from cluster_core.series.published import SeriesShapeModel

from .assign import ServedModel, answer_batch
from .errors import error_result

ARROW_REFUSED = ("clusters series: send JSON records, one series each "
                 "({\"values\": [...]} or {\"points\": [{\"time\": ..., ...}]})")


class ServedShapeModel:
    """A published series shape model ready to answer requests.

    Parameters
    ----------
    model : SeriesShapeModel
    ref : ModelRef
        The registry name and version it was loaded from.
    """

    scalar, detail = "distance", "distances"

    def __init__(self, model: SeriesShapeModel, ref: ModelRef) -> None:
        self.model = model
        self.ref = ref
        self.series = model.series  # the settings and value columns a record is read with
        names = model.cluster_names()
        self._names = [names.get(i) for i in range(model.n_clusters)]

    def check_records(self, records: list[Any]) -> None:
        """Raise InvalidInputError naming the record that is not a series the model can take."""
        self.model.record_shapes(records)

    def assignments(self, records: list[Any]) -> list[dict[str, Any]]:
        """One ``{"cluster_id", "cluster_name", "is_noise", "distance", "distances"}`` per record."""
        if not records:
            return []
        labels, distance, distances = self.model.assign_records(records)
        return [{"cluster_id": label, "cluster_name": self._names[label], "is_noise": False, "distance": near,
                 "distances": row}
                for label, near, row in zip(labels.tolist(), distance.tolist(), distances.tolist())]

    def assign_records(self, records: list[Any]) -> bytes:
        """Records -> the JSON array of assignments, as bytes (InvalidInputError naming ``records[i]``)."""
        return json.dumps(self.assignments(records)).encode()

    def assign_batch(self, requests: list[list[Any]]) -> list[tuple[int, bytes, int]]:
        """Several requests' records assigned in one distance computation; ``(status, body, n_records)`` each.

        A request with a bad record fails alone (its JSON error body); the batch is then redone
        request by request, so one bad record never fails its neighbours.
        """
        return answer_batch(requests, lambda requests: self.assignments([r for records in requests for r in records]),
                            self._assign_one)

    def _assign_one(self, records: list[Any]) -> tuple[int, bytes, int]:
        try:
            return 200, self.assign_records(records), len(records)
        except ClustraError as exc:
            return error_result(exc)

    def explain_records(self, records: list[Any]) -> bytes:
        """Not available: a shape model has no features to explain an assignment with (422)."""
        raise InvalidInputError(f"model {self.ref.name!r} clusters series by shape ({self.model.algorithm}): "
                                "explain=true is not available; its answer carries the distance to every center",
                                field="explain")

    def assign_arrow_batch(self, bodies: list[bytes]) -> list[tuple[int, bytes, int]]:
        """Arrow bodies are refused (400: one series per JSON record)."""
        error = error_result(InvalidInputError(f"model {self.ref.name!r} {ARROW_REFUSED}"))
        return [error] * len(bodies)


def served_model(model: Any, ref: ModelRef) -> ServedModel | ServedShapeModel:
    """The served form of a model :func:`cluster_core.registry.load_model_dir` loaded."""
    if isinstance(model, SeriesShapeModel):
        return ServedShapeModel(model, ref)
    return ServedModel(model, ref)


def load_served(registry: ModelRegistry, ref: ModelRef) -> ServedModel | ServedShapeModel:
    """What a model replica loads for ``NAME/VERSION``: the published version, in its served form
    (blocking file-system reads: call from a thread in async code)."""
    return served_model(load_model_dir(registry.local_dir(ref.name, ref.version)), ref)


__all__ = ["ServedShapeModel", "load_served", "served_model"]
