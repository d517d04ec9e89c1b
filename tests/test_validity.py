"""WCNN and DuNN-OWA from one shared neighbour graph: genieclust's values bit for bit, the graph built once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cluster_core import validity
from cluster_core.validity import dunn_owa, neighbour_graph, wcnn

genieclust_validity = pytest.importorskip("genieclust.cluster_validity")


def _table(kind: str, rng: np.random.Generator) -> np.ndarray:
    n, d = 700, 9
    x = rng.normal(size=(n, d))
    if kind == "one-hot":  # ties everywhere: equal distances, duplicate rows
        x[:, :5] = np.eye(5)[rng.integers(0, 5, n)]
        x[:, 5] = rng.integers(0, 2, n)
    elif kind == "rounded":
        x = np.round(x, 1)
        x[:, 0] = rng.integers(0, 3, n)
    return x.astype(np.float32).astype(np.float64)  # features are float32, scored as float64


@pytest.mark.parametrize("kind", ["continuous", "one-hot", "rounded"])
@pytest.mark.parametrize("k", [2, 3, 6])
def test_the_indices_equal_genieclusts_bit_for_bit(kind, k):
    rng = np.random.default_rng(k)
    x = _table(kind, rng)
    graph = neighbour_graph(x, 25)
    for labels in (rng.integers(0, k, len(x)), np.argsort(np.argsort(x[:, -1] + x[:, 0])) * k // len(x)):
        assert wcnn(graph, labels) == genieclust_validity.wcnn_index(x, labels, M=25)
        expected = genieclust_validity.dunnowa_index(x, labels, M=25, owa_numerator="SMin:5", owa_denominator="Max")
        assert dunn_owa(graph, labels) == expected


def test_the_graph_is_each_rows_nearest_others_ties_to_the_lower_index():
    x = np.array([[0.0], [1.0], [1.0], [3.0], [-1.0]])
    distances, indices = neighbour_graph(x, 2)
    np.testing.assert_array_equal(indices, [[1, 2], [2, 0], [1, 0], [1, 2], [0, 1]])
    np.testing.assert_array_equal(distances, [[1, 1], [0, 1], [0, 1], [2, 2], [1, 2]])


def test_the_graph_is_built_once_per_sample(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    calls = []
    build = validity._graph
    monkeypatch.setattr(validity, "_graph", lambda rows, m: calls.append(m) or build(rows, m))
    first = neighbour_graph(x, 25)
    assert neighbour_graph(x.copy(), 25) is first  # the same contents: remembered
    assert neighbour_graph(x + 1e-9, 25) is not first  # other rows: their own graph
    assert calls == [25, 25]


def test_edge_cases_follow_the_definition():
    x = np.arange(8, dtype=np.float64)[:, None]
    graph = neighbour_graph(x, 2)
    assert dunn_owa(graph, np.zeros(8, np.int64)) == math.inf  # no edge between clusters
    assert wcnn(graph, np.zeros(8, np.int64)) == 1.0
    assert dunn_owa(graph, np.arange(8)) == -math.inf  # no edge within a cluster
    with pytest.raises(ValueError, match="neighbours=8 should be >= 1 and < the 8 rows"):
        neighbour_graph(x, 8)
