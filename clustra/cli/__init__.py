"""The ``clustra`` command.

One module per command group, each with ``register(subparsers)``:

* :mod:`clustra.cli.library` — ``train``, ``apply``, ``schema``, ``leaderboard``, ``demo``;
* :mod:`clustra.cli.jobs` — ``api`` (the jobs service) and ``jobs ...`` (its client);
* :mod:`clustra.cli.serving` — ``publish``, ``models ...``, ``serve``;
* :mod:`clustra.cli.report` — ``report`` (a run's HTML report).

Errors a user can cause (every :class:`~cluster_core.errors.ClustraError`) print one line,
``clustra: error: ...`` with the flag concerned, and exit with status 2; nothing
half-written is left behind. Anything else is a bug: one ``clustra: internal error`` line,
exit status 1, and the traceback in a log file (or on stderr with ``--debug``).
"""

from __future__ import annotations

import argparse
import atexit
import sys
from collections.abc import Callable

from cluster_core import __version__
from cluster_core.errors import ClustraError

from . import drift, jobs, library, report, serving
from ._args import describe_error

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130

CommandRegistrar = Callable[[argparse._SubParsersAction], None]
COMMAND_GROUPS: tuple[CommandRegistrar, ...] = (library.register, jobs.register, serving.register, drift.register, report.register)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group."""
    parser = argparse.ArgumentParser(prog="clustra", description="Clustra: clustering as a service.")
    parser.add_argument("--version", action="version", version=f"clustra {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(sub)
    return parser


def _report_internal_error(exc: BaseException, debug: bool) -> None:
    """One line on stderr; the traceback on stderr (``--debug``) or in a log file."""
    import tempfile
    import traceback

    trace = "".join(traceback.format_exception(exc))
    if debug:
        sys.stderr.write(trace)
        where = "traceback above"
    else:
        with tempfile.NamedTemporaryFile("w", prefix="clustra-error-", suffix=".log", delete=False) as log:
            log.write(trace)
        where = f"traceback in {log.name}; rerun with --debug to show it"
    print(f"clustra: internal error: {type(exc).__name__}: {exc} ({where})", file=sys.stderr)


# Loggers of the libraries that keep working in background threads while an interrupted
# command unwinds (Dask's scheduler and nannies, the event loops they run on): what they
# would log about connections closing under them is a consequence of the interrupt.
_BACKGROUND_LOGGERS = ("distributed", "tornado", "asyncio")


def _interrupt_quietly(signum: int, frame: object) -> None:
    """SIGINT: silence the background loggers, then raise KeyboardInterrupt as Python does."""
    import logging

    # children too: Dask's logging config gives some their own level (tornado.application: error)
    names = [name for name in list(logging.root.manager.loggerDict)
             if name.split(".")[0] in _BACKGROUND_LOGGERS] + list(_BACKGROUND_LOGGERS)
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    raise KeyboardInterrupt


def _install_interrupt_handler() -> None:
    """Use :func:`_interrupt_quietly` for Ctrl-C, where this is the main thread and Python's
    own handler is in place (an embedding program's choice is left alone)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt_quietly)


def main(argv: list[str] | None = None) -> int:
    """Run one ``clustra`` command; its exit status."""
    args = build_parser().parse_args(argv)
    _install_interrupt_handler()
    try:
        return int(args.func(args) or 0)
    except ClustraError as exc:
        print(f"clustra: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("clustra: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: reported as one line, traceback kept
        _report_internal_error(exc, args.debug)
        return EXIT_INTERNAL_ERROR


def run() -> None:
    """The ``clustra`` console script: :func:`main`, then a quick exit.

    With torch and scikit-learn imported, the interpreter spends ~0.7 s tearing its modules
    and libraries down after the command finished. The exit handlers still run (they close
    Dask clusters and clients, remove temporary directories, flush the logs); only that
    teardown is skipped. The handler is registered before the command imports those
    libraries, so their own exit handlers run first.
    """
    from cluster_core.engine.quick_exit import exit_now

    status = [EXIT_INTERNAL_ERROR]  # an uncaught exception exits with 1, as Python's own exit would
    atexit.register(lambda: exit_now(status[0]))
    try:
        status[0] = main()
    except SystemExit as exc:  # argparse's --help / --version (0) and usage errors (2)
        status[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    sys.exit(status[0])


__all__ = ["COMMAND_GROUPS", "build_parser", "main", "run"]
