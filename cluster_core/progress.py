"""Progress reporting: the library calls a :class:`Progress`; the CLI prints, the jobs runner stores."""

from __future__ import annotations

import sys
import time


class Progress:
    """Receives progress events. The base class ignores them.

    Long operations call these methods between units of work; an implementation may
    raise from any of them (e.g. a cancelled job) to stop the operation there. Pending
    Dask futures are released when the exception unwinds.
    """

    def step(self, name: str) -> None:
        """A named step starts (it ends when the next one starts)."""

    def message(self, text: str) -> None:
        """Free-form information for the user."""

    def advance(self, done: int, total: int, text: str) -> None:
        """``done`` of ``total`` units of the current step are complete."""


class PrintProgress(Progress):
    """Prints steps with elapsed times to a stream (stderr by default)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self.current: tuple[str, float] | None = None

    def _close_step(self) -> None:
        if self.current is not None:
            name, since = self.current
            print(f"      done: {name} ({time.perf_counter() - since:.1f}s)", file=self.stream, flush=True)
        self.current = None

    def step(self, name: str) -> None:
        self._close_step()
        self.current = (name, time.perf_counter())
        print(f"[{time.perf_counter() - self.started:6.1f}s] {name} ...", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def advance(self, done: int, total: int, text: str) -> None:
        print(f"      [{done}/{total}] {text}", file=self.stream, flush=True)

    def finish(self) -> None:
        """Close the last step."""
        self._close_step()
