"""The GPU path of KMeans (device-sized chunks, rows and centers held on the device, one small
host read per Lloyd iteration) run on the CPU: it must give the per-block kernels', the host
update's and a plain numpy Lloyd's answers."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

import cluster_core.algorithms.kmeans as kmeans_module
import cluster_core.kernels._torch as torch_kernels
from cluster_core.algorithms import KMeans
import cluster_core.kernels.kmeans as kernels_module
from cluster_core.algorithms.kmeans import _HostLloyd, lloyd
from cluster_core.blocks import ArrayBlocks
from cluster_core.kernels.kmeans import (
    FLOAT32_SUM_ROWS,
    ONEHOT_BATCH_ROWS,
    DeviceRows,
    assign_nearest,
    column_moments,
    lloyd_partial_sums,
    onehot_cluster_sums,
)

N_ROWS = 40_000  # more than FLOAT32_SUM_ROWS: one large chunk takes the float64 sums


@pytest.fixture(scope="module")
def planted():
    x, truth = make_blobs(N_ROWS, n_features=12, centers=20, cluster_std=1.0, random_state=0)
    return x.astype(np.float32), truth


@pytest.fixture(scope="module")
def blobs(planted):
    return planted[0]


def _one_row_per_blob(x, truth, seed):
    """Initial centers with no row near a tie (one row of each planted blob, spread 2.5 std
    further): two float32 roundings of the same iterations then take the same steps."""
    rng = np.random.default_rng(seed)
    rows = x[[rng.choice(np.flatnonzero(truth == j)) for j in range(20)]]
    return (rows + rng.normal(0, 2.5, rows.shape)).astype(np.float32)


def _chunks(monkeypatch, size):
    """Cache-sized chunks (256 rows, float32 sums) or one chunk per block (float64 sums)."""
    if size == "small":
        monkeypatch.setattr(torch_kernels, "CHUNK_BYTES", 4096)
    else:
        monkeypatch.setattr(torch_kernels, "CHUNK_BYTES", 1 << 30)
        monkeypatch.setattr(torch_kernels, "CHUNK_ROWS", 1 << 30)


LAYOUTS = [
    pytest.param("small", {}, id="small-chunks-resident"),
    pytest.param("large", {}, id="one-chunk-resident"),
    pytest.param("large", {"resident": False, "block_rows": 7000}, id="one-chunk-per-streamed-block"),
    pytest.param("small", {"resident": False, "block_rows": 7000}, id="small-chunks-streamed"),
    # the one-hot reduction (GEMMs, no atomic adds), forced on the CPU
    pytest.param("large", {"reduction": "onehot"}, id="one-chunk-resident-onehot"),
    pytest.param("small", {"resident": False, "block_rows": 7000, "reduction": "onehot"}, id="small-chunks-streamed-onehot"),
]


def _numpy_lloyd(x, centers, iterations):
    """Textbook Lloyd in float64 (no empty clusters in these tests)."""
    x64, centers = x.astype(np.float64), centers.astype(np.float64)
    for _ in range(iterations):
        labels = ((x64[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
        centers = np.stack([x64[labels == j].mean(0) for j in range(centers.shape[0])])
    d2 = ((x64[:, None, :] - centers[None]) ** 2).sum(-1)
    return centers, d2.argmin(1), d2.min(1).sum()


def test_chunk_rows_cpu_unchanged_gpu_sized_from_free_memory(monkeypatch):
    assert torch_kernels.chunk_rows(1_000_000, 64) == 8192  # 2 MiB of float32 scores
    assert torch_kernels.chunk_rows(1_000_000, 4) == torch_kernels.CHUNK_ROWS
    assert torch_kernels.chunk_rows(100, 64) == 256
    assert torch_kernels.device_free_bytes("cpu") is None
    free = {"bytes": 100 << 30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 141 << 30))
    assert torch_kernels.device_chunk_bytes("cuda") == torch_kernels.DEVICE_CHUNK_BYTES
    assert torch_kernels.chunk_rows(1_000_000, 64, device="cuda") == 1_000_000  # the whole block at once
    assert torch_kernels.chunk_rows(10_000_000, 64, device="cuda") == (256 << 20) // 256
    free["bytes"] = 1 << 30  # a busy device: 1/16 of its free memory
    assert torch_kernels.chunk_rows(10_000_000, 64, device="cuda") == (64 << 20) // 256


def test_device_rows_stay_resident_when_they_fit(monkeypatch, blobs):
    from cluster_core.kernels import kmeans as kernels

    assert DeviceRows(blobs, "cpu").resident
    # the decision alone (no CUDA here): resident up to half the free memory, else blocks of 1/8 of it
    free = {"bytes": 2 * blobs.nbytes}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 1 << 40))
    monkeypatch.setattr(kernels, "to_tensor", lambda data, device: torch.from_numpy(np.asarray(data)))
    assert DeviceRows(blobs, "cuda").resident
    free["bytes"] = 2 * blobs.nbytes - 1
    streamed = DeviceRows(blobs, "cuda")
    assert not streamed.resident
    assert streamed.block_rows == (2 * blobs.nbytes - 1) // 8 // (4 * blobs.shape[1])


@pytest.mark.parametrize("chunks, layout", LAYOUTS)
@pytest.mark.parametrize("n_clusters", [20, 150])  # both score layouts (ROW_LAYOUT_MAX_K = 128)
def test_device_rows_pass_matches_per_block_kernels(monkeypatch, blobs, chunks, layout, n_clusters):
    centers = blobs[np.random.default_rng(0).choice(N_ROWS, n_clusters, replace=False)]
    shift = centers.mean(axis=0)
    counts_ref, sums_ref, inertia_ref = lloyd_partial_sums(blobs, centers, "cpu", shift)
    labels_ref, sqdist_ref = assign_nearest(blobs, centers, "cpu")
    _, col_sum_ref, col_sumsq_ref = column_moments(blobs, "cpu")
    _chunks(monkeypatch, chunks)
    rows = DeviceRows(blobs, "cpu", **layout)
    counts, sums, inertia = rows.lloyd_sums(centers, shift)
    assert np.array_equal(counts, counts_ref)
    # both agree with the exact sums to float32 rounding of the (shifted) terms added up
    x64 = blobs.astype(np.float64)
    exact = np.stack([x64[labels_ref == j].sum(0) for j in range(n_clusters)])
    scale = np.stack([np.abs(x64[labels_ref == j] - shift).sum(0) for j in range(n_clusters)])
    assert np.all(np.abs(sums_ref - exact) <= 4e-6 * scale + 1e-6)
    assert np.all(np.abs(sums - exact) <= 4e-6 * scale + 1e-6)
    # the inertia comes from float32 GEMM scores: ~1e-6 of the total either way (test_kmeans.py)
    c64 = centers.astype(np.float64)
    exact_inertia = ((x64**2).sum(1) - 2 * (x64 @ c64.T)[np.arange(N_ROWS), labels_ref] + (c64**2).sum(1)[labels_ref]).sum()
    assert inertia_ref == pytest.approx(exact_inertia, rel=1e-5)
    assert inertia == pytest.approx(exact_inertia, rel=1e-5)
    labels, sqdist = rows.nearest(centers)
    assert labels.dtype == np.int64 and np.array_equal(labels, labels_ref)
    np.testing.assert_allclose(sqdist, sqdist_ref, rtol=1e-5, atol=1e-3)
    n, col_sum, col_sumsq = rows.moments()
    assert n == N_ROWS
    np.testing.assert_allclose(col_sum, col_sum_ref, rtol=1e-6)  # float32 chunk sums
    np.testing.assert_allclose(col_sumsq, col_sumsq_ref, rtol=1e-6)


def test_one_chunk_takes_the_float64_sums(monkeypatch, blobs):
    """Guard for the test above: its one-chunk layouts really add more than FLOAT32_SUM_ROWS rows at once."""
    _chunks(monkeypatch, "large")
    assert torch_kernels.chunk_rows(N_ROWS, 20) == N_ROWS > FLOAT32_SUM_ROWS


@pytest.mark.parametrize("chunks, layout", LAYOUTS)
def test_lloyd_on_device_rows_matches_numpy_and_the_block_path(monkeypatch, planted, chunks, layout):
    x, truth = planted
    init = _one_row_per_blob(x, truth, 1)
    blocks = ArrayBlocks(x, 5000)
    block_centers, block_inertia, block_iter = lloyd(blocks, init, 15, 0.0, "cpu")
    expected_centers, expected_labels, expected_inertia = _numpy_lloyd(x, init, block_iter)
    _chunks(monkeypatch, chunks)
    rows = DeviceRows(x, "cpu", **layout)
    centers, inertia, n_iter = lloyd(blocks, init, 15, 0.0, "cpu", rows=rows)
    assert n_iter == block_iter
    np.testing.assert_allclose(centers, block_centers, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(centers, expected_centers, rtol=1e-5, atol=1e-5)
    # both inertias come from float32 GEMM scores summed in another order (chunk sizes, threads, the
    # CPU GEMM backend picked at start-up): ~1e-6 of the total each, up to 8e-6 apart in a full run
    assert inertia == pytest.approx(block_inertia, rel=1e-5)
    assert inertia == pytest.approx(expected_inertia, rel=1e-5)
    assert np.array_equal(rows.nearest(centers)[0], expected_labels)


@pytest.mark.parametrize("params", [
    {"init": "fixed", "n_init": 1, "max_iter": 30, "tol": 0.0},
    {"init": "k-means++", "n_init": 1, "tol": 1e-4},  # column moments for the tolerance, labels pass
    {"init": "k-means++", "n_init": 3, "tol": 1e-4},  # the best of three by inertia
], ids=["fixed-init", "kmeans++", "kmeans++x3"])
@pytest.mark.parametrize("reduction", ["index_add", "onehot"])
def test_kmeans_fit_through_device_rows_matches_the_cpu_fit(monkeypatch, planted, params, reduction):
    x, truth = planted
    if params["init"] == "fixed":
        params = {**params, "init": _one_row_per_blob(x, truth, 2)}
    cpu = KMeans(20, random_state=0, device="cpu", **params).fit(x)  # Hamerly bounds on the CPU
    used = []

    def on_device(blocks, device):
        used.append(DeviceRows(blocks.data, device, reduction=reduction))
        return used[-1]

    monkeypatch.setattr(kmeans_module, "device_rows", on_device)  # the GPU's path, run on the CPU
    _chunks(monkeypatch, "large")
    device = KMeans(20, random_state=0, device="cpu", **params).fit(x)
    assert len(used) == 1  # one copy for the whole fit
    # restarts that reach the same clusters in another order tie on inertia up to rounding,
    # so either may be kept: compare up to the order of the clusters
    order = np.array([np.bincount(cpu.labels_[device.labels_ == j], minlength=20).argmax() for j in range(20)])
    assert sorted(order) == list(range(20))
    assert np.array_equal(order[device.labels_], cpu.labels_)
    np.testing.assert_allclose(device.cluster_centers_, cpu.cluster_centers_[order], rtol=1e-5, atol=1e-5)
    assert device.inertia_ == pytest.approx(cpu.inertia_, rel=1e-5)  # float32 scores summed in another order
    if params["n_init"] == 1:
        assert device.n_iter_ == cpu.n_iter_
        assert np.array_equal(order, np.arange(20))


@pytest.mark.parametrize("n_rows", [1, 300, 3 * ONEHOT_BATCH_ROWS, 5 * ONEHOT_BATCH_ROWS + 77])
def test_onehot_cluster_sums_match_index_add(n_rows):
    """Whole batches (the batched GEMM), a ragged tail (one GEMM) and both; clusters 3 and 9 stay empty."""
    rng = np.random.default_rng(n_rows)
    k, d = 11, 6
    x = (rng.standard_normal((n_rows, d)) * 3 + 50).astype(np.float32)
    labels = rng.choice([0, 1, 2, 4, 5, 6, 7, 8, 10], size=n_rows, p=[0.5] + [0.0625] * 8)
    counts, sums = onehot_cluster_sums(torch.from_numpy(x), torch.from_numpy(labels), k)
    assert counts.dtype == torch.int64 and sums.dtype == torch.float64
    assert np.array_equal(counts.numpy(), np.bincount(labels, minlength=k))
    x64 = x.astype(np.float64)
    exact = np.zeros((k, d))
    np.add.at(exact, labels, x64)
    reference = torch.zeros(k, d, dtype=torch.float64).index_add_(0, torch.from_numpy(labels), torch.from_numpy(x64))
    np.testing.assert_allclose(reference.numpy(), exact, rtol=1e-12, atol=1e-9)
    scale = np.zeros((k, d))
    np.add.at(scale, labels, np.abs(x64))
    # float32 partial sums over at most ONEHOT_BATCH_ROWS rows: within float32 rounding of the terms
    assert np.all(np.abs(sums.numpy() - exact) <= 1e-6 * scale)
    assert np.all(sums.numpy()[[3, 9]] == 0.0)


def test_device_rows_reduction_defaults_per_device_and_is_checked(monkeypatch, blobs):
    from cluster_core.kernels import kmeans as kernels

    assert DeviceRows(blobs, "cpu").reduction == "index_add"  # the CPU keeps the per-block kernels' sums
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 << 40, 1 << 40))
    monkeypatch.setattr(kernels, "to_tensor", lambda data, device: torch.from_numpy(np.asarray(data)))
    # index_add on a GPU too: on an H200 it ran 13.8 ms per Lloyd iteration, the one-hot 18.4 (docs/gpu.md)
    assert DeviceRows(blobs, "cuda").reduction == "index_add"
    assert DeviceRows(blobs, "cuda", reduction="onehot").reduction == "onehot"
    with pytest.raises(ValueError, match=r"reduction='atomic' should be one of \('index_add', 'onehot'\)"):
        DeviceRows(blobs, "cpu", reduction="atomic")


def test_onehot_lloyd_pass_is_the_index_add_pass_to_rounding(blobs):
    """The same pass with both reductions: identical counts, sums and inertia to float rounding."""
    centers = blobs[np.random.default_rng(3).choice(N_ROWS, 20, replace=False)]
    shift = centers.mean(axis=0)
    counts_ref, sums_ref, inertia_ref = DeviceRows(blobs, "cpu", reduction="index_add").lloyd_sums(centers, shift)
    counts, sums, inertia = DeviceRows(blobs, "cpu", reduction="onehot").lloyd_sums(centers, shift)
    assert np.array_equal(counts, counts_ref)
    np.testing.assert_allclose(sums, sums_ref, rtol=1e-5, atol=1e-2)
    # the new centers (coordinates up to ~10) agree to the float32 partial sums' rounding
    np.testing.assert_allclose(sums / counts[:, None], sums_ref / counts_ref[:, None], rtol=1e-5, atol=3e-5)
    assert inertia == pytest.approx(inertia_ref, rel=1e-6)


def _host_lloyd_over(blocks):
    """The loop as it ran before the centers stayed on the device: every pass through the numpy
    API of the rows (:meth:`DeviceRows.lloyd_sums`), the update (and re-seeding) on the host."""

    class HostOverRows(_HostLloyd):
        def __init__(self, rows, centers, spherical):
            super().__init__(blocks, centers, "cpu", spherical)
            self.rows = rows

        def _sums(self):
            rows = self.rows
            return rows.lloyd_sums(self.centers, self.shift)

    return HostOverRows


def _empty_cluster_init(x, truth):
    """One row per blob, and a 21st center far from every row: empty after the first pass."""
    init = _one_row_per_blob(x, truth, 4)
    return np.vstack([init, x[:1] + 1000.0]).astype(np.float32)


@pytest.mark.parametrize("tol", [0.0, 1e-3, -1.0], ids=["tol0", "tol", "fixed-iterations"])
@pytest.mark.parametrize("spherical", [False, True], ids=["euclidean", "spherical"])
@pytest.mark.parametrize("empty", [False, True], ids=["filled", "an-emptied-cluster"])
@pytest.mark.parametrize("layout", [{}, {"resident": False, "block_rows": 7000}, {"reduction": "onehot"}],
                         ids=["resident", "streamed", "onehot"])
def test_device_resident_lloyd_matches_the_host_update(monkeypatch, planted, tol, spherical, empty, layout):
    """Centers kept on the device (update, re-seeding and convergence test there) against the
    same passes with the centers updated on the host: same n_iter, centers, inertia and labels."""
    x, truth = planted
    if spherical:
        x = x / np.linalg.norm(x, axis=1, keepdims=True).astype(np.float32)
    init = _empty_cluster_init(x, truth) if empty else _one_row_per_blob(x, truth, 4)
    if spherical:
        init = init / np.linalg.norm(init, axis=1, keepdims=True).astype(np.float32)
    blocks = ArrayBlocks(x, 5000)
    rows = DeviceRows(x, "cpu", **layout)
    with monkeypatch.context() as patched:
        patched.setattr(kmeans_module, "_DeviceLloyd", _host_lloyd_over(blocks))
        ref_centers, ref_inertia, ref_iter = lloyd(blocks, init, 60, tol, "cpu", spherical=spherical, rows=rows)
    centers, inertia, n_iter = lloyd(blocks, init, 60, tol, "cpu", spherical=spherical, rows=rows)
    assert n_iter == ref_iter
    if tol == 0.0 and not empty:  # (the 21st center splits a blob: slow to settle)
        assert n_iter < 60  # the strict convergence test fired on the device too
    assert centers.dtype == np.float32 and centers.shape == init.shape
    np.testing.assert_allclose(centers, ref_centers, rtol=1e-6, atol=1e-6)
    assert inertia == pytest.approx(ref_inertia, rel=1e-9)
    assert np.array_equal(rows.nearest(centers)[0], rows.nearest(ref_centers)[0])
    if empty:  # the far center was re-seeded onto a row: every cluster ends up used
        assert np.all(np.abs(centers[-1]) < 100)
        assert np.unique(rows.nearest(centers)[0]).size == init.shape[0]


def test_device_rows_farthest_matches_the_per_block_kernels(blobs):
    centers = blobs[np.random.default_rng(5).choice(N_ROWS, 20, replace=False)]
    from cluster_core.kernels.kmeans import combine_far, farthest_points

    ref_dist, ref_rows = ArrayBlocks(blobs, 7000).map_reduce(farthest_points, centers, "cpu", combine=combine_far)
    for layout in ({}, {"resident": False, "block_rows": 7000}):
        dist, rows = DeviceRows(blobs, "cpu", **layout).farthest(torch.from_numpy(centers))
        np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-5)
        assert np.array_equal(rows.numpy(), ref_rows)


def test_device_resident_lloyd_copies_nothing_in_and_reads_once_per_iteration(monkeypatch, planted):
    """The GPU profile's host traffic, counted on the CPU: conversions of numpy arrays to
    tensors (a host-to-device copy on a GPU) and tensor reads to numpy (a device-to-host sync)."""
    x, truth = planted
    counts = {"to_device": 0, "to_host": 0}

    def counting(module, name, key, kind=None):
        original = getattr(module, name)

        def wrapper(value, *args, **kwargs):
            if kind is None or isinstance(value, kind):
                counts[key] += 1
            return original(value, *args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for module in (kernels_module, kmeans_module):
        counting(module, "to_tensor", "to_device", np.ndarray)
        counting(module, "to_numpy", "to_host")
    rows = DeviceRows(x, "cpu")
    counts.update(to_device=0, to_host=0)
    for n_iter in (3, 9):
        counts.update(to_device=0, to_host=0)
        _, inertia, done = lloyd(ArrayBlocks(x), _one_row_per_blob(x, truth, 4), n_iter, -1.0, "cpu", rows=rows)
        assert done == n_iter and inertia > 0
        # centers and shift in once; one packed read per iteration, the final inertia, the centers out
        assert counts == {"to_device": 2, "to_host": n_iter + 2}
