"""The local Dask cluster Clustra starts: worker environment and warm-up."""

import os
import sys
import time

from cluster_core.device import resolve_device
from jobs.dask_cluster import local_cluster


def _worker_state() -> dict:
    deadline = time.monotonic() + 60
    while "cluster_core.training" not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"), "warm": "cluster_core.training" in sys.modules}


def test_workers_keep_adaptive_malloc_and_warm_up_in_the_background():
    from distributed import Client

    with local_cluster(resolve_device("cpu"), n_workers=1) as cluster, Client(cluster) as client:
        state = client.submit(_worker_state, pure=False).result(timeout=90)
    # Dask's default exports MALLOC_TRIM_THRESHOLD_=65536, which made the kernels 3-10x slower in workers
    assert state["trim"] is None
    # the preload imported the heavy modules without any task asking for them
    assert state["warm"]
