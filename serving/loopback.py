"""Keeping a local `clustra serve` on the loopback interface: every Ray socket, not only the HTTP proxy.

With ``--host 127.0.0.1`` (or ``localhost``, ``::1``) Ray starts with node address 127.0.0.1
(GCS, raylet, object manager, agents and workers then bind it) and no dashboard, and each
replica binds Serve's inter-deployment gRPC server to 127.0.0.1 (Ray binds it to ``[::]``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOOPBACK_ENV = "CLUSTRA_SERVE_LOOPBACK"  # set for the Ray processes of a loopback `clustra serve`
# Ray resolves a loopback node address to the machine's outward IP unless this is off
# (ray._private.services.get_node_ip_address); with it off, GCS, raylet, the agents and the
# workers all bind the loopback address.
_RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ray_init_options(host: str | None, num_cpus: int | None) -> dict[str, Any]:
    """``ray.init`` options for a local instance serving HTTP on ``host``.

    A loopback ``host`` keeps every Ray socket on the loopback interface (node address
    127.0.0.1, no dashboard); any other host leaves Ray's defaults.
    """
    options: dict[str, Any] = {"address": "local", "num_cpus": num_cpus or os.cpu_count(), "include_dashboard": False}
    if host in LOOPBACK_HOSTS:
        options.update(_node_ip_address="127.0.0.1", dashboard_host="127.0.0.1")
    return options


def keep_ray_on_loopback() -> None:
    """Stop Ray from replacing a 127.0.0.1 node address by the machine's IP (must precede ray.init)."""
    os.environ[_RAY_CLUSTER_ENV] = "0"  # for Ray processes started from here
    os.environ[LOOPBACK_ENV] = "1"  # read by confine_replica_sockets in every replica
    ray_constants = sys.modules.get("ray._private.ray_constants")
    if ray_constants is not None:  # read at import: already imported by the config check
        ray_constants.ENABLE_RAY_CLUSTER = False


def confine_replica_sockets() -> None:
    """In a replica of a loopback `clustra serve`: bind Serve's inter-deployment gRPC server to 127.0.0.1.

    Ray Serve 2.60 binds that server to ``[::]:0`` (all interfaces) whatever the node address;
    a deployment's constructor runs before the server starts, so calling this there keeps
    the port on the loopback interface. No effect elsewhere (a cluster, ``serve deploy``).
    """
    if os.environ.get(LOOPBACK_ENV) != "1":
        return
    try:
        from ray.serve._private import replica
    except ImportError:  # another Ray layout: nothing to confine
        return
    bind = getattr(replica, "add_port_to_grpc_server", None)
    if bind is None or getattr(bind, "_clustra_loopback", False):
        return

    def bind_loopback(server: Any, address: str) -> int:
        host, _, port = address.rpartition(":")
        return bind(server, f"127.0.0.1:{port}" if host in ("[::]", "0.0.0.0", "") else address)

    bind_loopback._clustra_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind_loopback


__all__ = ["LOOPBACK_ENV", "LOOPBACK_HOSTS", "confine_replica_sockets", "keep_ray_on_loopback", "ray_init_options"]
