"""Assignment inside the ingress replica (one hop): a small LRU of loaded models and opportunistic batching.

Without a model deployment, the ingress replica answers ``/v1/models/{name}/assign`` itself:
no deployment-handle call (the framework's main per-request cost, docs/benchmarks.md), no
second replica to route to. Published models are JSON + npz, so loading one on first use is
cheap; up to ``max_models`` stay loaded (least recently used goes first).

Batching does not wait: a request that finds its model idle runs at once; requests that
arrive while a call runs are merged into the next call (up to ``max_batch_size``). A lone
client pays nothing for batching, a busy replica shares the featurizers' fixed cost per
call, exactly what ``@serve.batch`` gives the model deployment without its wait.

A call runs in a worker thread, so the event loop keeps reading the requests that arrive
meanwhile. A small JSON request that is the only one in the replica (``inline=True``, at
most :data:`INLINE_MAX_RECORDS` records, a model of numeric, boolean, categorical and
datetime columns only) runs on the event loop itself instead: a few hundred microseconds of
work (:mod:`serving.row_encoder`), where the hop to a thread and back costs two thread
wake-ups, each a wait for a core on a busy machine.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from typing import Any, Callable

from cluster_core.errors import ClustraError
from cluster_core.registry import ModelRef, ModelRegistry

from .assign import ServedModel
from .errors import error_result
from .series_shape import ServedShapeModel, load_served

Result = tuple[int, bytes, int]
#: most records of a request assigned on the event loop (``inline``) rather than in a worker thread
INLINE_MAX_RECORDS = 16


def limit_math_threads() -> None:
    """One math thread per replica core (Ray sets ``OMP_NUM_THREADS`` from ``num_cpus``).

    On small batches, torch/BLAS threads oversubscribed on a busy machine cost 10-50x.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))
    torch.set_num_threads(threads)
    threadpool_limits(threads)


class Coalescer:
    """Runs ``call(items) -> results`` (one result per item, same order) in a worker thread, merging arrivals.

    Parameters
    ----------
    call : callable
        Takes a list of items, returns a list of the same length.
    max_batch_size : int
        Most items in one call.
    """

    def __init__(self, call: Callable[[list[Any]], list[Any]], max_batch_size: int) -> None:
        self.call = call
        self.max_batch_size = max_batch_size
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._running = False

    async def submit(self, item: Any, inline: bool = False) -> Any:
        """The result for ``item``: computed now if no call is running, else in the next merged call.

        With ``inline`` and nothing running or waiting, ``call([item])`` runs on the event loop
        itself (no worker thread); its exception, if any, is raised here as from a thread.
        """
        if inline and not self._running and not self._pending:
            return self.call([item])[0]
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._running:
            self._running = True
            asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                size = max(1, self.max_batch_size)
                batch, self._pending = self._pending[:size], self._pending[size:]
                try:
                    results = await asyncio.to_thread(self.call, [item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running = False


class _Loaded:
    """A loaded version and its two batchers (JSON records, Arrow bodies)."""

    def __init__(self, served: ServedModel | ServedShapeModel, max_batch_size: int, bulk_max_batch_size: int) -> None:
        self.served = served
        self.records = Coalescer(served.assign_batch, max_batch_size)
        self.arrow = Coalescer(served.assign_arrow_batch, bulk_max_batch_size)


class InProcessAssigner:
    """Loads published versions on demand (LRU) and assigns in this process.

    Answers are ``(status, body, n_records)`` as the model deployment gives them: the JSON
    array of assignments or an Arrow stream, or a JSON error body (:func:`error_result`).

    Parameters
    ----------
    registry : ModelRegistry
    max_models : int
        Versions kept loaded at once.
    max_batch_size, bulk_max_batch_size : int
        Most JSON requests, Arrow requests merged into one call.
    """

    def __init__(self, registry: ModelRegistry, max_models: int, max_batch_size: int = 64, bulk_max_batch_size: int = 8) -> None:
        self.registry = registry
        self.max_models = max_models
        self.max_batch_size = max_batch_size
        self.bulk_max_batch_size = bulk_max_batch_size
        self._models: OrderedDict[str, _Loaded] = OrderedDict()
        self._loading: dict[str, asyncio.Task] = {}

    def set_batch_sizes(self, max_batch_size: int, bulk_max_batch_size: int) -> None:
        """New batch limits (``user_config``), for loaded and future models alike."""
        self.max_batch_size, self.bulk_max_batch_size = max_batch_size, bulk_max_batch_size
        for loaded in self._models.values():
            loaded.records.max_batch_size, loaded.arrow.max_batch_size = max_batch_size, bulk_max_batch_size

    async def _get(self, ref: ModelRef) -> _Loaded:
        loaded = self._models.get(ref.key)
        if loaded is not None:
            self._models.move_to_end(ref.key)
            return loaded
        task = self._loading.get(ref.key)
        if task is None:  # one load per version, however many requests wait for it
            task = self._loading[ref.key] = asyncio.create_task(asyncio.to_thread(self._load, ref))
            task.add_done_callback(lambda _: self._loading.pop(ref.key, None))
        served = await asyncio.shield(task)
        loaded = self._models.get(ref.key)
        if loaded is None:
            loaded = self._models[ref.key] = _Loaded(served, self.max_batch_size, self.bulk_max_batch_size)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        return loaded

    def _load(self, ref: ModelRef) -> ServedModel | ServedShapeModel:
        return load_served(self.registry, ref)  # a series shape model too (serving/series_shape.py)

    async def assign_records(self, ref: ModelRef, records: list[Any], alone: bool = False) -> Result:
        """JSON records of one request (merged with others for the same version while busy).

        ``alone``: no other request is in this replica; a small one for a model of scalar columns
        (``cheap_records``) then runs on the event loop (:data:`INLINE_MAX_RECORDS`).
        """
        try:
            loaded = await self._get(ref)
        except ClustraError as exc:
            return error_result(exc)
        inline = alone and len(records) <= INLINE_MAX_RECORDS and getattr(loaded.served, "cheap_records", False)
        return await loaded.records.submit(records, inline=inline)

    async def explain_records(self, ref: ModelRef, records: list[Any]) -> Result:
        """JSON records with explanations (not batched: explaining costs more than assigning)."""
        try:
            loaded = await self._get(ref)
            return 200, await asyncio.to_thread(loaded.served.explain_records, records), len(records)
        except ClustraError as exc:
            return error_result(exc)

    async def assign_arrow(self, ref: ModelRef, body: bytes) -> Result:
        """An Arrow IPC body of one request (merged with others of the same schema while busy)."""
        try:
            loaded = await self._get(ref)
        except ClustraError as exc:
            return error_result(exc)
        return await loaded.arrow.submit(body)


__all__ = ["INLINE_MAX_RECORDS", "Coalescer", "InProcessAssigner", "limit_math_threads"]
