"""Keeping Ray Serve's HAProxy ingress on the loopback interface for a loopback `clustra serve`.

Ray Serve 2.60 writes HAProxy's configuration from a fixed template: the HTTP frontend binds the
configured host, but the stats page (``bind *:8404``) and the Prometheus exporter
(``bind :9101``) bind every interface whatever the host. Ray runs the binary named by
``RAY_SERVE_HAPROXY_BINARY_PATH`` as ``BINARY -db -f CONFIG ...`` for every start and reload, so
:func:`confine_haproxy` points that variable at a small wrapper which rewrites those two
``bind`` lines of CONFIG to 127.0.0.1 and then execs the real binary with the same arguments.
It fails closed: a ``bind`` that would still listen on a non-loopback address stops the start
with an error naming the line. It also gives those two ports, and the fallback Python proxy Ray
starts beside HAProxy (8500, 9500 for gRPC), free loopback port numbers unless the variables
of :data:`PORT_ENVS` set them, so two local services do not collide on fixed ports.

The replicas' own HTTP ports (Serve's direct ingress, which HAProxy forwards to) bind the
configured host already, and the node address is 127.0.0.1 (:mod:`serving.loopback`).

Run as a script (by the wrapper) this module imports nothing but the standard library.
"""

from __future__ import annotations

import atexit
import fcntl
import ipaddress
import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
from pathlib import Path

BINARY_ENV = "RAY_SERVE_HAPROXY_BINARY_PATH"
# ports Ray Serve otherwise fixes (8404, 9101; its fallback Python proxy's 8500 and 9500)
PORT_ENVS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT", "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
             "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")
LOOPBACK_ADDRESS = "127.0.0.1"
_WILDCARDS = frozenset({"", "*", "0.0.0.0", "::", "[::]"})
_BIND = re.compile(r"^(?P<lead>\s*bind\s+)(?P<addresses>\S+)(?P<rest>.*)$")


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another name: it may resolve anywhere
        return False


def _loopback_address(address: str, line: str) -> str:
    """One address of a ``bind`` line, a wildcard moved to 127.0.0.1; ValueError if it stays exposed."""
    if address.startswith(("/", "unix@", "abns@", "fd@", "sockpair@")):
        return address  # not an internet socket
    family, _, plain = address.rpartition("@")
    if family not in ("", "ipv4", "ipv6"):
        raise ValueError(f"HAProxy bind address {address!r} (line {line.strip()!r}) is of an unknown kind; "
                         "expected HOST:PORT, *:PORT or :PORT")
    host, sep, port = plain.rpartition(":")
    if not sep or not port:
        raise ValueError(f"HAProxy bind address {address!r} (line {line.strip()!r}) has no port; expected HOST:PORT")
    if host in _WILDCARDS:
        return f"{LOOPBACK_ADDRESS}:{port}"
    if _is_loopback_host(host):
        return address
    raise ValueError(f"HAProxy would listen on {address!r} (line {line.strip()!r}), not a loopback address; "
                     "expected 127.0.0.1, ::1 or localhost for a loopback `clustra serve`")


def loopback_config(text: str) -> str:
    """HAProxy configuration ``text`` with every listening address on the loopback interface.

    Parameters
    ----------
    text : str
        A configuration as Ray Serve writes it.

    Returns
    -------
    str
        The same text with each wildcard ``bind`` address (``*:P``, ``:P``, ``0.0.0.0:P``,
        ``:::P``) replaced by ``127.0.0.1:P``.

    Raises
    ------
    ValueError
        If a ``bind`` line names a non-loopback address (nothing is rewritten then).
    """
    lines = []
    for line in text.splitlines(keepends=True):
        match = _BIND.match(line)
        if match:
            addresses = ",".join(_loopback_address(a, line) for a in match["addresses"].split(","))
            line = f"{match['lead']}{addresses}{match['rest']}" + ("\n" if line.endswith("\n") else "")
        lines.append(line)
    return "".join(lines)


def _config_path(args: list[str]) -> str:
    for flag, value in zip(args, args[1:]):
        if flag == "-f":
            return value
    raise ValueError(f"HAProxy arguments {args!r} name no configuration file; expected '-f CONFIG'")


def confine_config_file(path: str) -> None:
    """Rewrite the HAProxy configuration at ``path`` in place with :func:`loopback_config`.

    Holds the lock Ray Serve takes when it writes the file (``PATH.lock``).
    """
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            text = Path(path).read_text()
            confined = loopback_config(text)
            if confined != text:
                Path(path).write_text(confined)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _free_loopback_ports(count: int) -> list[int]:
    """``count`` different free ports of 127.0.0.1 (held together while chosen, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK_ADDRESS, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _is_wrapper(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return Path(__file__).name.encode() in file.read(4096)
    except OSError:
        return False


def confine_haproxy(binary: str, directory: str | None = None) -> Path:
    """Make the HAProxy that Ray Serve starts from this process listen on 127.0.0.1 only.

    Writes a wrapper of ``binary`` into ``directory`` (default: a new temporary directory),
    points ``RAY_SERVE_HAPROXY_BINARY_PATH`` at it and sets free loopback ports for the
    variables of :data:`PORT_ENVS` the environment does not set. Call before ``ray.init``:
    Ray's processes read the environment when they start.

    Parameters
    ----------
    binary : str
        The HAProxy executable to run. Ignored when ``RAY_SERVE_HAPROXY_BINARY_PATH`` already
        names a wrapper of this module (a second call, or a parent `clustra serve`).

    Returns
    -------
    Path
        The wrapper script.
    """
    preset = os.environ.get(BINARY_ENV)
    if preset and _is_wrapper(preset):  # already confined (a parent `clustra serve`, a second call)
        wrapper = Path(preset)
    else:
        wrapper = _write_wrapper(binary, directory)
        os.environ[BINARY_ENV] = str(wrapper)
    unset = [name for name in PORT_ENVS if not os.environ.get(name)]
    for name, port in zip(unset, _free_loopback_ports(len(unset))):
        os.environ[name] = str(port)
    return wrapper


def _write_wrapper(real: str, directory: str | None) -> Path:
    if directory is None:
        directory = tempfile.mkdtemp(prefix="clustra-haproxy-")
        atexit.register(shutil.rmtree, directory, True)  # after ray.shutdown, which runs before exit
    wrapper = Path(directory) / "haproxy"
    command = [sys.executable, "-I", str(Path(__file__).resolve()), real]
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.join(command)} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def main(argv: list[str]) -> int:
    """The wrapper: ``haproxy_loopback.py REAL_BINARY HAPROXY_ARGS...``; confine the config, exec HAProxy."""
    if not argv:
        print("usage: haproxy_loopback.py HAPROXY_BINARY [HAPROXY_ARGS...]", file=sys.stderr)
        return 2
    real, args = argv[0], argv[1:]
    try:
        confine_config_file(_config_path(args))
    except (OSError, ValueError) as error:
        print(f"clustra: HAProxy not started: {error}", file=sys.stderr)
        return 1
    os.execv(real, [real, *args])
    return 1  # not reached


__all__ = ["BINARY_ENV", "LOOPBACK_ADDRESS", "PORT_ENVS", "confine_config_file", "confine_haproxy", "loopback_config"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
