"""Row-blocked matrices: the one interface distributed algorithms are written against.

An algorithm never holds "the data"; it asks a :class:`Blocks` to apply a pure
per-block function and to combine the small results (``map_reduce``). Two
implementations run the same functions:

* :class:`ArrayBlocks` — an in-memory array (numpy, or cupy on a GPU) cut into views;
* :class:`DaskBlocks` — Dask delayed objects or futures, one per partition, each
  yielding a 2-D array. The per-block calls run on the workers and the partial
  results are tree-reduced, so only small state (centroids, counts, sums) reaches the
  driver. Persisted blocks stay in worker memory; lazy ones are recomputed from their
  source (e.g. streamed from Parquet) on every pass.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

REDUCE_FAN_IN = 8


def sum_partials(a: Any, b: Any) -> Any:
    """Add two partial results element by element (tuples, lists and dicts recurse; None is zero)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, tuple):
        return tuple(sum_partials(x, y) for x, y in zip(a, b))
    if isinstance(a, list):
        return [sum_partials(x, y) for x, y in zip(a, b)]
    if isinstance(a, dict):
        return {key: sum_partials(a[key], b[key]) for key in a}
    return a + b


def concat_partials(a: Any, b: Any) -> Any:
    """Concatenate partial results along rows (tuples recurse; None is empty)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, tuple):
        return tuple(concat_partials(x, y) for x, y in zip(a, b))
    return np.concatenate([a, b])


def _combine_all(parts: Sequence[Any], combine: Callable[[Any, Any], Any]) -> Any:
    result = None
    for part in parts:
        result = part if result is None else combine(result, part)
    return result


def _sample_block(block: Any, index: int, probability: float, seed: int) -> np.ndarray:
    """Bernoulli row sample of one block, reproducible from (seed, block index)."""
    rows = block.shape[0]
    if probability >= 1.0:
        return np.asarray(block)
    keep = np.random.default_rng([seed, index]).random(rows) < probability
    return np.asarray(block[keep])


def row_count(block: Any) -> int:
    """Rows of one block (an array, or what a Dask task yields)."""
    return int(block.shape[0])


class Blocks(ABC):
    """A 2-D float matrix stored as row blocks."""

    @property
    @abstractmethod
    def n_blocks(self) -> int:
        """Number of row blocks."""

    @abstractmethod
    def map_reduce(self, fn: Callable[..., Any], *args: Any, combine: Callable[[Any, Any], Any] = sum_partials) -> Any:
        """Return ``combine`` over ``fn(block, *args)`` for every block (None for no blocks)."""

    @abstractmethod
    def map_indexed_reduce(
        self, fn: Callable[..., Any], *args: Any, combine: Callable[[Any, Any], Any] = sum_partials
    ) -> Any:
        """Like :meth:`map_reduce`, calling ``fn(block, block_index, *args)``."""

    def count_rows(self) -> int:
        """Total number of rows (cached after the first call)."""
        cached = getattr(self, "_n_rows", None)
        if cached is None:
            cached = int(self.map_reduce(row_count) or 0)
            self._n_rows = cached
        return cached

    def sample_rows(self, n: int, seed: int) -> np.ndarray:
        """About ``n`` rows drawn uniformly without replacement (all rows when ``n >= count_rows()``).

        Each block keeps each row with probability ``n / count_rows()``, seeded by
        ``(seed, block index)``, so the sample is reproducible and never needs the whole
        matrix in one place.
        """
        total = self.count_rows()
        probability = 1.0 if total == 0 else min(1.0, n / total)
        return self.map_indexed_reduce(_sample_block, probability, seed, combine=concat_partials)


@contextlib.contextmanager
def _one_torch_thread_each() -> Iterator[int]:
    """Yield how many block threads to run; torch and BLAS run single-threaded inside each meanwhile."""
    import torch

    from ._threads import limit_threads

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with limit_threads(1):
            yield threads
    finally:
        torch.set_num_threads(threads)


# In-memory data up to this many values (4 MiB of float32) is fitted single-threaded.
SMALL_DATA_VALUES = 1 << 20


@contextlib.contextmanager
def single_threaded_when_small(blocks: Blocks | np.ndarray) -> Iterator[None]:
    """Run torch and BLAS on one thread while fitting (or assigning) small in-memory data.

    On a few thousand rows every kernel call and every (d x d) factorisation lasts
    microseconds, and waking a thread team costs more than it saves: on two busy cores a
    Gaussian mixture on 770 rows ran 70x slower with two BLAS threads than with one.
    Dask blocks and larger arrays keep the caller's thread settings. ``blocks`` may be
    an array (the rows about to be assigned).
    """
    size = blocks.size if isinstance(blocks, np.ndarray) else blocks.data.size if isinstance(blocks, ArrayBlocks) else None
    if size is None or size > SMALL_DATA_VALUES:
        yield
        return
    with _one_torch_thread_each():
        yield


def threaded_blocks(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a per-block kernel whose work is mostly single-threaded library calls that
    release the GIL (BLAS with one thread, numba): :class:`ArrayBlocks` then runs its
    blocks in parallel threads, like scikit-learn's OpenMP loop over chunks. Small torch
    operations belong here too: with two cores shared by Dask workers, waking a torch/BLAS
    thread team per call cost 10-20x the work (see metrics._cluster_sums). Only kernels whose
    operations are each large enough to keep several threads busy are faster left unmarked."""
    fn.threaded_blocks = True
    return fn


@contextlib.contextmanager
def block_thread_rounds() -> Iterator[Callable[[list[Callable[[], Any]]], list[Any]]]:
    """A runner for rounds of single-threaded, GIL-releasing block calls, in parallel
    threads (one per torch thread), with one thread pool for all rounds and torch and BLAS kept
    single-threaded throughout, the caller's work between rounds included: BLAS threads
    woken there keep spinning on the cores the block threads need (iterations ran 1.4x
    slower). Meant for iterative fits; inside, plain map_reduce calls run their blocks in turn.
    """
    with _one_torch_thread_each() as threads:
        if threads <= 1:
            yield lambda calls: [call() for call in calls]
            return
        with ThreadPoolExecutor(threads) as pool:
            yield lambda calls: list(pool.map(lambda call: call(), calls))


def _run_blocks(calls: list[Callable[[], Any]], threaded: bool) -> list[Any]:
    """Run per-block calls, in parallel threads for kernels marked :func:`threaded_blocks`."""
    if len(calls) <= 1 or not threaded:
        return [call() for call in calls]
    with block_thread_rounds() as run_round:
        return run_round(calls)


THREADED_MIN_BLOCK_ROWS = 8192


class ArrayBlocks(Blocks):
    """An in-memory 2-D array seen as consecutive row blocks of ``block_rows`` rows.

    Kernels marked :func:`threaded_blocks` process blocks in as many threads as torch
    would use, each single-threaded.
    """

    def __init__(self, data: Any, block_rows: int = 1 << 16):
        if data.ndim != 2:
            raise ValueError(f"expected a 2-D array, got shape {data.shape}")
        self.data = data
        self.block_rows = max(1, int(block_rows))
        self._n_rows = int(data.shape[0])

    @property
    def n_blocks(self) -> int:
        return max(1, -(-self._n_rows // self.block_rows))

    @property
    def n_features(self) -> int:
        """Number of columns."""
        return int(self.data.shape[1])

    def _blocks(self, block_rows: int | None = None):
        step = block_rows or self.block_rows
        for start in range(0, max(self._n_rows, 1), step):
            yield self.data[start : start + step]

    def map_reduce(self, fn, *args, combine=sum_partials):
        threaded = getattr(fn, "threaded_blocks", False)
        blocks = self._blocks(self._threaded_block_rows() if threaded else self.block_rows)
        calls = [lambda block=block: fn(block, *args) for block in blocks]
        return _combine_all(_run_blocks(calls, threaded), combine)

    def threaded_views(self) -> list[Any]:
        """The row blocks kernels marked :func:`threaded_blocks` receive (the same views on every call)."""
        return list(self._blocks(self._threaded_block_rows()))

    def _threaded_block_rows(self) -> int:
        """Rows per block for kernels run one block per thread: at least four blocks per
        thread where that keeps THREADED_MIN_BLOCK_ROWS rows per block (a thread that draws
        the last big block alone would leave the others idle); never above ``block_rows``."""
        import torch

        per_block = -(-self._n_rows // (4 * max(1, torch.get_num_threads())))
        return min(self.block_rows, max(THREADED_MIN_BLOCK_ROWS, per_block))

    def map_indexed_reduce(self, fn, *args, combine=sum_partials):
        calls = [lambda block=block, i=i: fn(block, i, *args) for i, block in enumerate(self._blocks())]
        return _combine_all(_run_blocks(calls, getattr(fn, "threaded_blocks", False)), combine)


class DaskBlocks(Blocks):
    """Blocks held by a Dask cluster: delayed objects or futures yielding 2-D arrays.

    Non-scalar arguments (centers, a model's predict method) are wrapped in one delayed
    object per call so that the graph ships them once, not once per block.
    """

    def __init__(self, blocks: Sequence[Any], n_features: int, n_rows: int | None = None):
        if not blocks:
            raise ValueError("DaskBlocks needs at least one block")
        self.blocks = list(blocks)
        self._n_features = int(n_features)
        self._n_rows = n_rows

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def n_features(self) -> int:
        """Number of columns."""
        return self._n_features

    @staticmethod
    def _shared(args: tuple) -> list:
        import dask

        return [a if isinstance(a, (bool, int, float, str, type(None))) else dask.delayed(a, pure=True) for a in args]

    def _reduce(self, parts: list, combine) -> Any:
        import dask

        combine_all = dask.delayed(_combine_all, pure=True)
        while len(parts) > 1:
            parts = [combine_all(parts[i : i + REDUCE_FAN_IN], combine) for i in range(0, len(parts), REDUCE_FAN_IN)]
        (result,) = dask.compute(parts[0])
        return result

    def map_reduce(self, fn, *args, combine=sum_partials):
        import dask

        call = dask.delayed(fn, pure=True)
        shared = self._shared(args)
        return self._reduce([call(block, *shared) for block in self.blocks], combine)

    def map_indexed_reduce(self, fn, *args, combine=sum_partials):
        import dask

        call = dask.delayed(fn, pure=True)
        shared = self._shared(args)
        return self._reduce([call(block, i, *shared) for i, block in enumerate(self.blocks)], combine)


def as_blocks(data: Any, block_rows: int = 1 << 16) -> Blocks:
    """Wrap ``data`` (Blocks, dask array, or in-memory 2-D array) as :class:`Blocks`."""
    if isinstance(data, Blocks):
        return data
    if type(data).__module__.startswith("dask.array"):
        data = data.rechunk({1: -1})
        delayed = list(data.to_delayed().ravel())
        return DaskBlocks(delayed, n_features=data.shape[1])
    return ArrayBlocks(data, block_rows=block_rows)
