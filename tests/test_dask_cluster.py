"""The local Dask cluster Clustra starts: worker environment and warm-up."""

import os
import sys
import threading

from cluster_core.device import resolve_device
from cluster_core.engine import local_cluster


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


def test_workers_exit_quickly_only_after_a_clean_close():
    """The preload's exit handler ends the process (flushing its output) only once the
    worker has closed; a worker that did not close leaves the exit to Python."""
    import subprocess
    import sys

    script = (
        "import types\n"
        "from distributed.core import Status\n"
        "from cluster_core.engine import warmup as worker_warmup\n"
        "running = types.SimpleNamespace(status=Status.running)\n"
        "worker_warmup._exit_without_teardown(running)\n"
        "print('still here', flush=True)\n"
        "closed = types.SimpleNamespace(status=Status.closed)\n"
        "print('buffered line', end='')\n"
        "worker_warmup._exit_without_teardown(closed)\n"
        "print('never printed')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == "still here\nbuffered line"


def test_cli_exit_code_survives_the_quick_exit(tmp_path):
    """`clustra` (clustra.cli.run) keeps each command's exit code: 0, argparse's 2, and a user error's 2."""
    import subprocess
    import sys

    def clustra(*args):
        return subprocess.run([sys.executable, "-m", "clustra.cli", *args], capture_output=True, text=True, timeout=120)

    assert clustra("--help").returncode == 0
    assert clustra("train", "--no-such-flag").returncode == 2
    missing = clustra("train", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def _ignores_interrupts() -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_taken_dashboard_port_goes_unnoticed_and_workers_ignore_ctrl_c():
    """Port 8787 taken (another Dask, a notebook): no "Port 8787 is already in use" warning on
    every run, as the scheduler's HTTP server takes a free loopback port. Workers ignore
    SIGINT from birth, so Ctrl-C in a terminal leaves them to their driver."""
    import socket
    import warnings

    from cluster_core.engine import dask_client

    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # already taken by someone else: the same situation
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with dask_client(device="cpu", n_workers=1) as client:
                ignored = client.submit(_ignores_interrupts, pure=False).result(timeout=90)
    assert not [w for w in caught if "8787" in str(w.message)]
    assert ignored
