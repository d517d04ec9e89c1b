"""What every command group shares: argument types, common options, and how a library error
becomes one ``clustra: error: ...`` line that names the flag."""

from __future__ import annotations

import argparse
import re

from cluster_core.errors import ClustraError

# Library settings whose flag is not ``--`` + the name with dashes.
_FLAGS = {
    "output": "--out",
    "kinds": "--kind",
    "weights": "--weight",
    "kind_weights": "--kind-weight",
    "geo_pairs": "--geo",
    "view_sample_rows": "--view-rows",
    # series mode (cluster_core.series.SeriesSettings)
    "values": "--value",
    "method": "--series-method",
    "shape_length": "--series-length",
    "profile_points": "--series-profile-points",
    "max_length": "--series-max-length",
    "min_points": "--series-min-points",
}
_BACKTICKED = re.compile(r"`([a-z][a-z0-9_]*)`")


class UsageError(ClustraError):
    """Flags that do not go together (a CLI-level problem; exit status 2)."""


def flag_for(field: str) -> str:
    """The CLI flag of a library setting: ``max_k`` -> ``--max-k``, ``output`` -> ``--out``;
    an entry of a mapping setting names its key: ``weights.spend`` -> ``--weight (spend)``."""
    name, _, key = field.partition(".")
    flag = _FLAGS.get(name) or "--" + name.replace("_", "-")
    return f"{flag} ({key})" if key else flag


def describe_error(exc: ClustraError) -> str:
    """The error as the CLI shows it: its field as a flag, settings it mentions as flags.

    ``ClustraError("already exists; set `overwrite`", field="output")`` becomes
    ``--out: already exists; set --overwrite``.
    """
    message = _BACKTICKED.sub(lambda m: flag_for(m.group(1)), exc.message)
    return f"{flag_for(exc.field)}: {message}" if exc.field else message


def csv_list(text: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (blank items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def csv_ints(text: str) -> list[int]:
    """``3,5,7`` -> ``[3, 5, 7]``; a non-integer raises a clear argparse error."""
    try:
        return [int(item) for item in csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 3,5,7, got {text!r}") from None


def key_values(text: str) -> dict[str, str]:
    """``col=kind,col2=kind`` -> dict."""
    pairs = {}
    for item in csv_list(text):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE pairs separated by commas, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def numbers(pairs: dict[str, str] | None, flag: str) -> dict[str, float] | None:
    """``{name: "2"}`` -> ``{name: 2.0}``; a non-number is a one-line :class:`UsageError`."""
    if not pairs:
        return None
    try:
        return {k: float(v) for k, v in pairs.items()}
    except ValueError:
        raise UsageError(f"{flag} expects NAME=NUMBER pairs, got {pairs}") from None


def add_column_options(parser: argparse.ArgumentParser) -> None:
    """--include / --exclude / --kind."""
    parser.add_argument("--include", type=csv_list, help="use only these columns (comma-separated)")
    parser.add_argument("--exclude", type=csv_list, default=[], help="leave these columns out (comma-separated)")
    parser.add_argument("--kind", type=key_values, default={}, metavar="COL=KIND,...",
                        help="force column kinds: numeric, boolean, categorical, datetime, text, image, geo, "
                             "identifier, constant")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """--scheduler / --device."""
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="where the work runs: a Dask scheduler tcp://HOST:PORT, 'local' (start a LocalCluster), "
                             "'inprocess' (threads of this process, no cluster) or 'auto' (default: $CLUSTRA_DASK_SCHEDULER, "
                             "else auto: in this process when the data fits comfortably, else a LocalCluster)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                        help="where the kernels run (default: $CLUSTRA_DEVICE, else auto: a GPU when present)")


def cluster_setting(args: argparse.Namespace) -> str:
    """The engine a command runs on: ``--scheduler``, else ``CLUSTRA_DASK_SCHEDULER``, else ``"auto"``
    (chosen by the data's size, :func:`cluster_core.engine.resolve_engine`)."""
    from cluster_core.engine import AUTO, scheduler_address

    return scheduler_address(args.scheduler) or AUTO


def add_json_option(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    """--json."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")
