"""Exact neighbour search and its answer cache (cluster_core.kernels.neighbors)."""

from __future__ import annotations

import numpy as np
import pytest

from cluster_core.kernels import neighbors
from cluster_core.kernels.neighbors import NeighborIndex, _AnswerCache


@pytest.fixture()
def fresh_cache(monkeypatch):
    cache = _AnswerCache(max_bytes=10_000)
    monkeypatch.setattr(neighbors, "_ANSWERS", cache)
    return cache


def brute_force(queries, base, k):
    d = ((queries[:, None, :].astype(np.float64) - base[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def test_repeated_queries_are_searched_once_and_answer_exactly(fresh_cache, monkeypatch):
    rng = np.random.default_rng(0)
    base, queries = rng.normal(size=(300, 5)).astype(np.float32), rng.normal(size=(40, 5)).astype(np.float32)
    searches = []
    original = NeighborIndex._search
    monkeypatch.setattr(NeighborIndex, "_search", lambda self, q, k: searches.append(len(q)) or original(self, q, k))
    first = NeighborIndex(base).query(queries, 3)
    second = NeighborIndex(base.copy()).query(queries.copy(), 3)  # another model, same fit sample
    assert searches == [40]
    _, expected = brute_force(queries, base, 3)
    np.testing.assert_array_equal(first[1], expected)
    np.testing.assert_array_equal(second[1], first[1])
    np.testing.assert_allclose(first[0], brute_force(queries, base, 3)[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        first[1][0, 0] = 7  # shared answers are read-only


def test_a_different_base_or_k_is_searched_again(fresh_cache, monkeypatch):
    rng = np.random.default_rng(1)
    base, queries = rng.normal(size=(200, 3)).astype(np.float32), rng.normal(size=(20, 3)).astype(np.float32)
    other = base.copy()
    other[0] += 10.0
    searches = []
    original = NeighborIndex._search
    monkeypatch.setattr(NeighborIndex, "_search", lambda self, q, k: searches.append(k) or original(self, q, k))
    NeighborIndex(base).query(queries, 1)
    NeighborIndex(other).query(queries, 1)
    NeighborIndex(base).query(queries, 2)
    assert searches == [1, 1, 2]
    np.testing.assert_array_equal(NeighborIndex(other).query(queries, 1)[1], brute_force(queries, other, 1)[1])


def test_the_cache_stays_within_its_byte_budget(fresh_cache):
    rng = np.random.default_rng(2)
    base = rng.normal(size=(100, 2)).astype(np.float32)
    index = NeighborIndex(base)
    for _ in range(30):  # 30 answers of 50 rows x 2 neighbours x 16 bytes = 1,600 bytes each
        index.query(rng.normal(size=(50, 2)).astype(np.float32), 2)
    assert fresh_cache._bytes <= fresh_cache.max_bytes and len(fresh_cache._answers) == 6
