import dask
import dask.array as da
import numpy as np
import pytest

from cluster_core.blocks import ArrayBlocks, DaskBlocks, as_blocks, concat_partials, sum_partials
from cluster_core.kernels.kmeans import column_moments


def _sum_rows(block):
    return np.asarray(block).sum(axis=0)


@pytest.mark.parametrize("block_rows", [1, 7, 100, 1000])
def test_array_blocks_reduce_equals_whole(block_rows):
    x = np.arange(300, dtype=np.float32).reshape(100, 3)
    blocks = ArrayBlocks(x, block_rows=block_rows)
    assert np.allclose(blocks.map_reduce(_sum_rows), x.sum(axis=0))
    assert blocks.count_rows() == 100


def test_dask_blocks_match_array_blocks():
    x = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    parts = [dask.delayed(x[i : i + 130]) for i in range(0, 1000, 130)]
    local, remote = ArrayBlocks(x, 130), DaskBlocks(parts, n_features=4)
    for fn in (column_moments,):
        a, b = local.map_reduce(fn), remote.map_reduce(fn)
        assert a[0] == b[0]
        assert np.allclose(a[1], b[1]) and np.allclose(a[2], b[2])
    assert remote.count_rows() == 1000


def test_sample_rows_is_reproducible_and_all_rows_when_small():
    x = np.arange(2000, dtype=np.float32).reshape(1000, 2)
    blocks = ArrayBlocks(x, 128)
    a, b = blocks.sample_rows(100, seed=3), blocks.sample_rows(100, seed=3)
    assert np.array_equal(a, b)
    assert 50 < a.shape[0] < 150
    assert np.array_equal(blocks.sample_rows(5000, seed=1), x)


def test_as_blocks_accepts_dask_arrays():
    x = da.from_array(np.ones((50, 3), np.float32), chunks=(20, 3))
    blocks = as_blocks(x)
    assert isinstance(blocks, DaskBlocks) and blocks.n_blocks == 3 and blocks.count_rows() == 50


def test_partial_combiners():
    assert sum_partials((1, np.ones(2)), (2, np.ones(2)))[0] == 3
    assert sum_partials(None, 5) == 5
    merged = concat_partials((np.zeros((1, 2)), np.zeros(1)), (np.ones((2, 2)), np.ones(2)))
    assert merged[0].shape == (3, 2) and merged[1].shape == (3,)


def test_small_in_memory_fits_run_single_threaded():
    import torch
    from threadpoolctl import threadpool_info

    from cluster_core.blocks import SMALL_DATA_VALUES, single_threaded_when_small

    before = torch.get_num_threads()
    small = ArrayBlocks(np.zeros((100, 4), np.float32))
    with single_threaded_when_small(small):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    large = ArrayBlocks(np.zeros((SMALL_DATA_VALUES // 4 + 1, 4), np.float32))
    with single_threaded_when_small(large):
        assert torch.get_num_threads() == before


def test_small_arrays_are_assigned_single_threaded_and_limits_are_restored():
    import torch
    from threadpoolctl import threadpool_info

    from cluster_core._threads import limit_threads
    from cluster_core.blocks import SMALL_DATA_VALUES, single_threaded_when_small

    before = torch.get_num_threads()
    pools_before = [pool["num_threads"] for pool in threadpool_info()]
    with single_threaded_when_small(np.zeros((5000, 17), np.float32)):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    assert [pool["num_threads"] for pool in threadpool_info()] == pools_before
    with single_threaded_when_small(np.zeros((SMALL_DATA_VALUES + 1, 1), np.float32)):
        assert torch.get_num_threads() == before
    with limit_threads(1):  # the cached controller limits every pool, as threadpool_limits does
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert [pool["num_threads"] for pool in threadpool_info()] == pools_before
