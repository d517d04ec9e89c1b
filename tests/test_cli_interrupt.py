"""Ctrl-C in a terminal: the whole process group gets SIGINT, at any moment of a command.

What the user must see is one line, ``clustra: interrupted``, exit status 130, and no run
directory: no traceback from the driver, the Dask scheduler's threads, the nannies or the
worker processes (each of which used to print its own KeyboardInterrupt).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CLUSTRA = [sys.executable, "-m", "clustra"]
DEADLINE_S = 120


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n = 60_000
    path = tmp_path_factory.mktemp("interrupt") / "table.parquet"
    pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(list("xyz"), n)}).to_parquet(path)
    return path


def _interrupt_when(marker: str, command: list[str]) -> tuple[int, str]:
    """Run ``command`` in its own process group; SIGINT the group once ``marker`` shows on stderr."""
    # SIGINT back to its default in the child: a shell ignores it for background jobs (`make test &`,
    # some CI runners), and an ignored SIGINT stays ignored in every process started from there
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = b""
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while marker.encode() not in seen:
            assert time.monotonic() < deadline, f"{marker!r} never shown: {seen.decode()[-2000:]}"
            if selector.select(timeout=1):
                chunk = os.read(process.stderr.fileno(), 65536)
                assert chunk, f"the command ended before {marker!r}: {seen.decode()[-2000:]}"
                seen += chunk
        os.killpg(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=DEADLINE_S)
        return process.returncode, (seen + rest).decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize(
    "marker",
    [
        "reading",  # before Dask starts
        "done: reading",  # while the workers start
        "done: starting Dask",  # while data moves to the workers
        "[1/",  # while models train on the workers
    ],
)
def test_ctrl_c_at_any_moment_prints_one_line_and_leaves_nothing(table, tmp_path, marker):
    out = tmp_path / "run"
    command = [*CLUSTRA, "train", str(table), "--out", str(out), "--k", "2,3,4,5,6,7,8,9,10", "--algorithms", "kmeans,gmm",
               "--scheduler", "local"]
    status, stderr = _interrupt_when(marker, command)
    assert status == 130, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert stderr.rstrip().endswith("clustra: interrupted"), stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
