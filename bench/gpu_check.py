"""The torch kernels on a GPU against the same code on the CPU (docs/gpu.md, "What is verified where").

Runs Clustra's KMeans (``engine="torch"``: Clustra's Lloyd kernels, not cuML) and
GaussianMixture with ``device="cuda"`` and ``device="cpu"`` on the same planted blobs, the same
seed and the same initial centers, and prints one JSON line per check: agreement (ARI between
the two devices' labels, relative difference of inertia / mean log-likelihood, ARI against the
planted labels) and fit seconds on each device (the second of two fits, so CUDA start-up is not
counted). Needs only numpy, scikit-learn, torch and the repository (no dask, pydantic, faiss
or cuML: ``cluster_core.algorithms`` imports none of them)::

    python bench/gpu_check.py [--rows 1000000] [--dims 32] [--k 64]

The first line names the devices and how the in-memory KMeans fit runs on the first one
(``DeviceRows``: rows resident on the device or streamed, rows per chunk); ``--devices cpu,cpu``
checks the script on a machine without a GPU.

``--profile`` first times the plain Lloyd iterations of the KMeans data on the first device with
each way of adding rows into cluster sums (``DeviceRows(reduction=...)``: ``index_add`` and
``onehot``), centers kept on the device (``"update": "device"``, what a fit runs), and once more
with ``index_add`` and the centers updated on the host as before (``"update": "host"``: every
pass copies the centers in and the sums out, and an emptied cluster is re-seeded by a pass over
the host blocks); one line each with ``ms_per_iter``, then one line with their agreement. Then it
runs ``torch.profiler`` around ``--profile-iters`` iterations of the device's default reduction
and prints the top ``--profile-top`` ops by self device time (self CPU time on a CPU), the longest
kernels, the host<->device copies per iteration and a total as JSON lines, followed by the usual
checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _fit_twice(make, X):
    make().fit(X)  # warm-up: CUDA context, kernels compiled / cached
    started = time.perf_counter()
    model = make().fit(X)
    return model, time.perf_counter() - started


def _fit_layout(X, k: int, device: str) -> dict:
    """How an in-memory KMeans fit runs on ``device``: the per-block kernels on the CPU, else
    :class:`~cluster_core.kernels.kmeans.DeviceRows` (resident or streamed, rows per chunk)."""
    from cluster_core.kernels._torch import chunk_rows
    from cluster_core.kernels.kmeans import DeviceRows

    if device == "cpu":
        return {"path": "Hamerly-bounded Lloyd on CPU blocks"}
    rows = DeviceRows(X, device)
    layout = {"path": "DeviceRows", "resident": rows.resident, "reduction": rows.reduction, "block_rows": rows.block_rows,
              "chunk_rows": chunk_rows(min(len(X), rows.block_rows), k, device=device)}
    del rows
    return layout


def _self_time_us(event, kind: str) -> float:
    """An op's self time in microseconds (``kind``: "device" or "cpu"; torch < 2.4 says "cuda")."""
    if kind == "cpu":
        return float(event.self_cpu_time_total)
    return float(getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0))


def _lloyd_runner(X, init, device: str, reduction: str | None, update: str = "device"):
    """A function running ``n`` plain Lloyd iterations (no tolerance stop, no final inertia
    pass) of ``X`` from ``init`` on ``device`` through one :class:`DeviceRows`; returns centers.
    ``update="host"``: the loop before the centers stayed on the device (each pass through
    ``DeviceRows.lloyd_sums``, the update and re-seeding in numpy over the host blocks)."""
    from cluster_core.algorithms import kmeans as kmeans_module
    from cluster_core.blocks import ArrayBlocks
    from cluster_core.kernels.kmeans import DeviceRows

    blocks = ArrayBlocks(X)
    rows = DeviceRows(X, device, reduction=reduction)

    class HostUpdate(kmeans_module._HostLloyd):
        def __init__(self, rows, centers, spherical):
            super().__init__(blocks, centers, device, spherical)
            self.rows = rows

        def _sums(self):
            return self.rows.lloyd_sums(self.centers, self.shift)

    def run(n: int):
        state = kmeans_module._DeviceLloyd
        if update == "host":
            kmeans_module._DeviceLloyd = HostUpdate
        try:
            return kmeans_module.lloyd(blocks, init, n, -1.0, device, final_inertia=False, rows=rows)[0]
        finally:
            kmeans_module._DeviceLloyd = state

    return run, rows


def _synchronize(device: str) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _time_reductions(X, init, device: str, iters: int) -> None:
    """Plain Lloyd iterations per reduction on ``device``: ms per iteration and agreement."""
    import numpy as np

    from cluster_core.kernels.kmeans import REDUCTIONS

    centers = {}
    for reduction, update in [(r, "device") for r in REDUCTIONS] + [("index_add", "host")]:
        run, rows = _lloyd_runner(X, init, device, reduction, update)
        run(2)  # warm-up
        _synchronize(device)
        started = time.perf_counter()
        centers[reduction, update] = run(iters)
        _synchronize(device)
        elapsed = time.perf_counter() - started
        print(json.dumps({"profile": "lloyd iterations", "device": device, "reduction": reduction, "update": update,
                          "resident": rows.resident, "iterations": iters,
                          "ms_per_iter": round(1e3 * elapsed / iters, 3)}), flush=True)
        del rows
    reference = centers["index_add", "device"].astype(np.float64)
    print(json.dumps({"profile": "reductions agree", "iterations": iters,
                      "centers_max_abs_diff": float(np.abs(centers["onehot", "device"] - reference).max()),
                      "host_update_centers_max_abs_diff": float(np.abs(centers["index_add", "host"] - reference).max()),
                      "centers_max_abs": float(np.abs(reference).max())}), flush=True)


def _copies(kernels, ops, iters: int) -> dict:
    """The profile's host<->device copies per iteration: calls and device ms of each direction's
    ``Memcpy`` kernels (``HtoD``, ``DtoH``, ...; pageable or pinned together), and the
    ``cudaMemcpyAsync`` calls (each a host synchronisation for a pageable copy)."""
    copies = {}
    for event in kernels:  # "Memcpy HtoD (Pageable -> Device)", "Memcpy DtoH (Device -> Pageable)", ...
        if event.key.startswith("Memcpy"):
            direction = event.key.split()[1]
            calls, device_us = copies.get(direction, (0, 0.0))
            copies[direction] = (calls + event.count, device_us + _self_time_us(event, "device"))
    line = {"profile": "copies"}
    for direction, (calls, device_us) in sorted(copies.items()):
        line[f"{direction}_calls_per_iter"] = round(calls / iters, 2)
        line[f"{direction}_device_ms_per_iter"] = round(device_us / 1e3 / iters, 4)
    line["cudaMemcpyAsync_calls_per_iter"] = round(sum(e.count for e in ops if e.key == "cudaMemcpyAsync") / iters, 2)
    return line


def _profile_lloyd(X, init, device: str, iters: int, top: int) -> None:
    """``torch.profiler`` around ``iters`` Lloyd iterations with the device's default reduction.

    Prints the ``top`` torch ops by self device time (the kernels each op launched itself;
    on a CPU: self CPU time) as ``{"op": ...}`` lines, the 5 longest kernels as ``{"kernel": ...}``
    lines, then a total: the device's busy time (kernels and copies, as the profiler's table
    sums it) against the wall time per iteration; the difference is the device idling.
    """
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_gpu = torch.device(device).type == "cuda"
    run, rows = _lloyd_runner(X, init, device, None)
    run(2)  # warm-up outside the profile
    _synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        run(iters)
        _synchronize(device)
        wall = time.perf_counter() - started
    events = list(prof.key_averages())
    ops = [e for e in events if e.device_type == DeviceType.CPU]
    kernels = [e for e in events if e.device_type != DeviceType.CPU]
    kind = "device" if on_gpu else "cpu"
    if on_gpu and not kernels:
        # no kernel events (CUPTI unavailable to this process): rank by self CPU time instead
        print(json.dumps({"profile": "no CUDA kernel events recorded; ranking by self CPU time"}), flush=True)
        kind = "cpu"
    busy_us = sum(_self_time_us(e, kind) for e in (kernels if kind == "device" else ops))

    def line(label: str, event) -> str:
        self_us = _self_time_us(event, kind)
        return json.dumps({label: event.key[:160], "calls_per_iter": round(event.count / iters, 2),
                           f"self_{kind}_ms_per_iter": round(self_us / 1e3 / iters, 4),
                           "self_cpu_ms_per_iter": round(event.self_cpu_time_total / 1e3 / iters, 4),
                           "share": round(self_us / busy_us, 4) if busy_us else None})

    for event in sorted(ops, key=lambda e: _self_time_us(e, kind), reverse=True)[:top]:
        print(line("op", event), flush=True)
    if kind == "device":
        for event in sorted(kernels, key=lambda e: _self_time_us(e, kind), reverse=True)[:5]:
            print(line("kernel", event), flush=True)
        print(json.dumps(_copies(kernels, ops, iters)), flush=True)
    print(json.dumps({"profile": "total", "device": device, "reduction": rows.reduction, "iterations": iters,
                      f"busy_{kind}_ms_per_iter": round(busy_us / 1e3 / iters, 4),
                      "wall_ms_per_iter_profiled": round(1e3 * wall / iters, 3)}), flush=True)


def main() -> None:
    import numpy as np
    import torch
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    from cluster_core.algorithms import GaussianMixture, KMeans

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--gmm-rows", type=int, default=200_000)
    parser.add_argument("--gmm-k", type=int, default=16)
    parser.add_argument("--devices", default="cuda,cpu", help="the two devices compared (cpu,cpu checks the script here)")
    parser.add_argument("--profile", action="store_true",
                        help="first time and profile plain Lloyd iterations on the first device (see above)")
    parser.add_argument("--profile-iters", type=int, default=10, help="Lloyd iterations timed and profiled")
    parser.add_argument("--profile-top", type=int, default=15, help="ops printed from the profile")
    args = parser.parse_args()
    first, second = args.devices.split(",")
    X, truth = make_blobs(args.rows, args.dims, centers=args.k, cluster_std=1.0, random_state=0)
    X = X.astype(np.float32)
    print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                      "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                      "devices": [first, second], "kmeans_fit_on_first": _fit_layout(X, args.k, first)}), flush=True)
    init = X[np.random.default_rng(0).choice(len(X), args.k, replace=False)]
    if args.profile:
        _time_reductions(X, init, first, args.profile_iters)
        try:
            _profile_lloyd(X, init, first, args.profile_iters, args.profile_top)
        except Exception as error:  # a profiler failure must not cost the checks below
            print(json.dumps({"profile": "failed", "error": repr(error)}), flush=True)
    fits = [_fit_twice(lambda: KMeans(args.k, init=init, n_init=1, max_iter=100, tol=0.0, random_state=0,
                                                 device=device, engine="torch"), X)
            for device in (first, second)]
    (gpu, t_gpu), (cpu, t_cpu) = fits
    print(json.dumps({"check": "kmeans, same initial centers", "rows": args.rows, "dims": args.dims, "k": args.k,
                      "ari_gpu_vs_cpu": round(adjusted_rand_score(cpu.labels_, gpu.labels_), 6),
                      "inertia_rel_diff": abs(gpu.inertia_ - cpu.inertia_) / cpu.inertia_,
                      "n_iter": [int(gpu.n_iter_), int(cpu.n_iter_)],
                      "ari_vs_planted": [round(adjusted_rand_score(truth, gpu.labels_), 4),
                                         round(adjusted_rand_score(truth, cpu.labels_), 4)],
                      "fit_s": {"cuda": round(t_gpu, 3), "cpu": round(t_cpu, 3)}, "speedup": round(t_cpu / t_gpu, 1),
                      "ms_per_iter": {"cuda": round(1e3 * t_gpu / gpu.n_iter_, 2), "cpu": round(1e3 * t_cpu / cpu.n_iter_, 2)}}),
          flush=True)
    fits = [_fit_twice(lambda: KMeans(args.k, n_init=3, random_state=0, device=device, engine="torch"), X)
            for device in (first, second)]
    (gpu, t_gpu), (cpu, t_cpu) = fits
    print(json.dumps({"check": "kmeans, k-means++ x3 each", "ari_gpu_vs_cpu": round(adjusted_rand_score(cpu.labels_, gpu.labels_), 6),
                      "inertia_rel_diff": abs(gpu.inertia_ - cpu.inertia_) / cpu.inertia_,
                      "n_iter_of_kept_run": [int(gpu.n_iter_), int(cpu.n_iter_)],
                      "ari_vs_planted": [round(adjusted_rand_score(truth, gpu.labels_), 4),
                                         round(adjusted_rand_score(truth, cpu.labels_), 4)],
                      "fit_s": {"cuda": round(t_gpu, 3), "cpu": round(t_cpu, 3)}, "speedup": round(t_cpu / t_gpu, 1)}),
          flush=True)

    Xg, truth_g = make_blobs(args.gmm_rows, 16, centers=args.gmm_k, cluster_std=1.5, random_state=1)
    Xg = Xg.astype(np.float32)
    fits = [_fit_twice(lambda: GaussianMixture(args.gmm_k, covariance_type="full", max_iter=100, reg_covar=1e-4,
                                                          random_state=0, device=device), Xg)
            for device in (first, second)]
    (gpu, t_gpu), (cpu, t_cpu) = fits
    print(json.dumps({"check": "gmm full covariance", "rows": args.gmm_rows, "k": args.gmm_k,
                      "ari_gpu_vs_cpu": round(adjusted_rand_score(cpu.predict(Xg), gpu.predict(Xg)), 6),
                      "lower_bound": [float(gpu.lower_bound_), float(cpu.lower_bound_)],
                      "ari_vs_planted": [round(adjusted_rand_score(truth_g, gpu.predict(Xg)), 4),
                                         round(adjusted_rand_score(truth_g, cpu.predict(Xg)), 4)],
                      "fit_s": {"cuda": round(t_gpu, 3), "cpu": round(t_cpu, 3)}, "speedup": round(t_cpu / t_gpu, 1)}),
          flush=True)


if __name__ == "__main__":
    main()
