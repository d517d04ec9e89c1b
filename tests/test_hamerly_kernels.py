"""The compiled kernels behind the Hamerly iterations, against brute force (numpy, float64)."""

import numpy as np
import pytest

from cluster_core.kernels import _hamerly
from cluster_core.kernels._simd import LANES

TILE = _hamerly.TILE_ROWS


def _tiles(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """``rows`` in the tile layout filter_rows writes (last tile padded with zeros)."""
    n, d = rows.shape
    n_tiles = -(-n // TILE)
    padded = np.zeros((n_tiles * TILE, d), np.float32)
    padded[:n] = rows
    return np.ascontiguousarray(padded.reshape(n_tiles, TILE, d).transpose(0, 2, 1)).ravel(), n_tiles


def _padded_scores(centers: np.ndarray):
    k, d = centers.shape
    padded = -(-k // _hamerly.CENTER_BLOCK) * _hamerly.CENTER_BLOCK
    minus_two = np.zeros((padded, d), np.float32)
    minus_two[:k] = -2.0 * centers
    bias = np.full(padded, _hamerly.FAR, np.float32)
    bias[:k] = (centers.astype(np.float64) ** 2).sum(axis=1)
    return minus_two, bias


@pytest.mark.parametrize(("n", "k", "d"), [(1, 1, 1), (70, 5, 3), (300, 64, 32), (200, 67, 33), (TILE, 9, LANES + 1)])
def test_nearest_two_matches_brute_force(n, k, d):
    rng = np.random.default_rng(n + k + d)
    rows = rng.standard_normal((n, d)).astype(np.float32)
    centers = rng.standard_normal((k, d)).astype(np.float32)
    tiles, n_tiles = _tiles(rows)
    minus_two, bias = _padded_scores(centers)
    first, second = np.empty(n_tiles * TILE, np.float32), np.empty(n_tiles * TILE, np.float32)
    label = np.empty(n_tiles * TILE, np.int32)
    _hamerly.nearest_two(tiles, n_tiles, minus_two, bias, first, second, label)
    scores = -2.0 * rows.astype(np.float64) @ centers.T.astype(np.float64) + bias[:k].astype(np.float64)
    ordered = np.sort(scores, axis=1)
    scale = 1e-4 * (1.0 + np.abs(scores).max())
    np.testing.assert_allclose(first[:n], ordered[:, 0], atol=scale)
    gap = ordered[:, 1] - ordered[:, 0] if k > 1 else np.full(n, np.inf)
    clear = gap > 2 * scale  # rows whose nearest center rounding cannot change
    assert np.array_equal(label[:n][clear], scores.argmin(axis=1)[clear])
    assert clear.mean() > 0.9
    if k > 1:
        np.testing.assert_allclose(second[:n], ordered[:, 1], atol=scale)
    else:
        assert np.all(second[:n] == _hamerly.FAR) and np.all(label[:n] == 0)


def test_nearest_two_breaks_ties_toward_the_first_center():
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((TILE + 5, 6)).astype(np.float32)
    center = rng.standard_normal((1, 6)).astype(np.float32)
    centers = np.concatenate([rng.standard_normal((2, 6)).astype(np.float32) + 50, center, center, center])
    tiles, n_tiles = _tiles(rows)
    minus_two, bias = _padded_scores(centers)
    first, second = np.empty(n_tiles * TILE, np.float32), np.empty(n_tiles * TILE, np.float32)
    label = np.empty(n_tiles * TILE, np.int32)
    _hamerly.nearest_two(tiles, n_tiles, minus_two, bias, first, second, label)
    n = rows.shape[0]
    assert np.all(label[:n] == 2)  # three identical nearest centers: the first of them
    assert np.array_equal(first[:n], second[:n])  # the second nearest is its twin, at the same distance


@pytest.mark.parametrize("d", [3, LANES, 2 * LANES + 3])
def test_filter_rows_gathers_candidates_into_tiles(d):
    """Every row is a candidate when its bounds are loose (upper bound far above the lower
    bound) or on the first step; a row whose bounds prove its center is skipped. The
    candidates are written shifted, in the tile layout, with their squared norms."""
    rng = np.random.default_rng(d)
    n = 3 * TILE + 7
    x = rng.standard_normal((n, d)).astype(np.float32)
    centers = rng.standard_normal((4, d)).astype(np.float32)
    shift = rng.standard_normal(d).astype(np.float32)
    labels = rng.integers(0, 4, n).astype(np.int32)
    exact = np.sqrt(((x - centers[labels]).astype(np.float64) ** 2).sum(axis=1)).astype(np.float32)
    keeps = np.arange(n) % 3 == 0  # these rows' lower bound proves they keep their center
    upper = np.where(keeps, exact, exact + 1.0).astype(np.float32)
    lower = np.where(keeps, exact + 1.0, 0.0).astype(np.float32)
    zeros = np.zeros(4, np.float32)
    candidates = np.empty(n, np.int64)
    gathered = np.full(-(-n // TILE) * TILE * d, np.nan, np.float32)
    sqnorm = np.empty(n, np.float32)
    found = _hamerly.filter_rows(
        x, shift, centers, labels, upper.copy(), lower.copy(), zeros, zeros, zeros, False, candidates, gathered, sqnorm
    )
    expected = np.flatnonzero(~keeps)
    assert found == expected.size and np.array_equal(candidates[:found], expected)
    tiles, _ = _tiles(x[expected] - shift)
    n_written = -(-found // TILE) * TILE * d
    np.testing.assert_allclose(gathered[:n_written], tiles[:n_written], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sqnorm[:found], ((x[expected] - shift) ** 2).sum(axis=1), rtol=1e-5)

    found = _hamerly.filter_rows(
        x, shift, centers, labels, upper.copy(), lower.copy(), zeros, zeros, zeros, True, candidates, gathered, sqnorm
    )
    assert found == n and np.array_equal(candidates[:n], np.arange(n))


def test_kernels_on_a_cpu_without_avx512(tmp_path):
    """On a CPU without AVX-512 the vectors are 8 lanes wide (tiles of 32 rows): the same
    tests pass there. Run in a fresh interpreter that reports no AVX-512, with its own numba
    cache so the narrow kernels never land in the shared one."""
    import os
    import subprocess
    import sys

    script = (
        "import llvmlite.binding as b, sys, pytest\n"
        "features = b.get_host_cpu_features()\n"
        "features['avx512f'] = False\n"
        "b.get_host_cpu_features = lambda: features\n"
        "from cluster_core.kernels import _simd\n"
        "assert _simd.LANES == 8, _simd.LANES\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-k', 'not avx512', sys.argv[1]]))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", script, __file__], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" in result.stdout
