"""The local Dask cluster Clustra starts: worker environment and warm-up."""

import os
import sys
import threading

from cluster_core.device import resolve_device
from jobs.dask_cluster import local_cluster


def _worker_state() -> dict:
    for thread in threading.enumerate():  # the preload's background import, if still running
        if thread.name == "clustra-warmup":
            thread.join(timeout=60)
    return {"trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"), "warm": "cluster_core.training" in sys.modules}


def test_workers_keep_adaptive_malloc_and_warm_up_in_the_background():
    from distributed import Client

    with local_cluster(resolve_device("cpu"), n_workers=1) as cluster, Client(cluster) as client:
        state = client.submit(_worker_state, pure=False).result(timeout=90)
    # Dask's default exports MALLOC_TRIM_THRESHOLD_=65536, which made the kernels 3-10x slower in workers
    assert state["trim"] is None
    # the preload imported the heavy modules without any task asking for them
    assert state["warm"]
