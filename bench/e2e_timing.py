"""Timing the end-to-end benchmarks' processes: wall and CPU seconds of one child, Clustra from a given checkout.

Shared by ``bench/e2e_small.py`` and ``bench/e2e_kmeans_peer.py`` (issue 20). On a shared
machine wall time moves with the load; the CPU seconds (user + sys of the child and its
children) show what the work itself cost.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Timing:
    """One process: wall seconds, CPU seconds (user + sys), the load average when it started."""

    wall: float
    cpu: float
    load: float

    def as_dict(self) -> dict:
        return {"wall": round(self.wall, 2), "cpu": round(self.cpu, 2), "load_1m": round(self.load, 1)}


def timed_process(command: list[str], env: dict | None = None, cwd: Path | None = None) -> Timing:
    """Run ``command`` to completion (it must succeed) and time it."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu, load)


def clustra_command(root: Path, *args: str) -> tuple[list[str], dict]:
    """The ``clustra`` CLI of the checkout at ``root`` (its code first on the path), with this Python."""
    env = dict(os.environ, PYTHONPATH=str(root))
    return [sys.executable, "-m", "clustra", *args], env


def summary(label: str, runs: list[Timing]) -> str:
    """``label: wall best (all) / CPU best (all)``."""
    walls = ", ".join(f"{t.wall:.1f}" for t in runs)
    cpus = ", ".join(f"{t.cpu:.1f}" for t in runs)
    return f"{label}: wall {min(t.wall for t in runs):.1f} s ({walls}); CPU {min(t.cpu for t in runs):.1f} s ({cpus})"
