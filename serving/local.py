"""Running the assignment API on a local Ray instance (what ``clustra serve`` starts)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from cluster_core.registry import REGISTRY_ENV

from .loopback import keep_ray_on_loopback, ray_init_options
from .settings import AUTH_TOKEN_ENV


def run_embedded(config: dict[str, Any], *, num_cpus: int | None = None) -> int:
    """Start Ray on this machine, deploy every application of ``config``, block until SIGINT/SIGTERM."""
    import ray
    from ray import serve

    from .app import build_application
    from .config import clustra_apps, deployment_overrides

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    http = config.get("http_options", {})
    options = ray_init_options(http.get("host"), num_cpus)  # address="local": never join a cluster found here
    if "_node_ip_address" in options:
        keep_ray_on_loopback()
    ray.init(**options)
    try:
        serve.start(proxy_location="HeadOnly", http_options=http)
        for app in clustra_apps(config):
            application = build_application(app.get("args", {}), deployment_overrides(app))
            serve.run(application, name=app["name"], route_prefix=app.get("route_prefix", "/"), blocking=False)
            registry = app.get("args", {}).get("registry") or os.environ.get(REGISTRY_ENV) or "~/.clustra/registry"
            auth = "on" if os.environ.get(AUTH_TOKEN_ENV) or app.get("args", {}).get("auth_token") else "off"
            url = f"http://{http.get('host')}:{http.get('port')}{app.get('route_prefix', '/')}"
            print(f"Clustra assignment API {app['name']!r} on {url} (registry {registry}, auth {auth})", file=sys.stderr, flush=True)
        print("ready; Ctrl-C stops it", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


__all__ = ["run_embedded"]
