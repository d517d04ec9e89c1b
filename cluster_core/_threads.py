"""Native thread-pool limits (BLAS, OpenMP) without rescanning the process's libraries on every call.

``threadpoolctl.threadpool_limits`` builds a new controller each time, which reads
``/proc/self/maps`` and inspects every loaded shared library: ~3-4 ms with torch loaded.
Small fits enter such limits around every call (a sweep on 5,000 rows entered them 441
times: 1.7 s of a 6.7 s train step). :func:`limit_threads` reuses one controller,
rebuilt only when the set of imported modules changed (a newly imported extension may
have loaded a new thread pool), as ``threadpoolctl.get_cached_controller`` does.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_LOCK = threading.Lock()
_CACHED: list[Any] = [None, -1]  # the controller and len(sys.modules) when it was built


def native_controller() -> Any:
    """A ``threadpoolctl.ThreadpoolController`` for the libraries loaded now (cached)."""
    import threadpoolctl

    cached = getattr(threadpoolctl, "get_cached_controller", None)
    if cached is not None:  # threadpoolctl >= 3.6
        return cached()
    controller, modules = _CACHED
    if controller is not None and modules == len(sys.modules):
        return controller
    with _LOCK:
        if _CACHED[0] is None or _CACHED[1] != len(sys.modules):
            _CACHED[1] = len(sys.modules)
            _CACHED[0] = threadpoolctl.ThreadpoolController()
        return _CACHED[0]


def limit_threads(limits: int, user_api: str | None = None) -> Any:
    """``threadpool_limits(limits, user_api)`` through the cached controller: a context manager
    that sets the limits now and restores the previous ones on exit.

    Parameters
    ----------
    limits : int
        Threads each native pool may use.
    user_api : {"blas", "openmp"} or None
        The pools to limit (None: every pool).
    """
    return native_controller().limit(limits=limits, user_api=user_api)


__all__ = ["limit_threads", "native_controller"]
