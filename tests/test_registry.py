"""The model registry: immutable versions, atomic aliases, local and fsspec (memory://) storage, the CLI."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from _serving_helpers import train_run
from cluster_core.errors import ArtifactError, InvalidInputError, NotFoundError
from cluster_core.model import ClusteringModel
from cluster_core.registry import REGISTRY_ENV, ModelRegistry, default_registry_url
from clustra.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One trained sweep (kmeans, gmm, hdbscan with k=3)."""
    return train_run(tmp_path_factory.mktemp("registry"))[1]


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def memory_registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(f"memory://registry-{uuid.uuid4().hex[:8]}", cache_dir=str(tmp_path / "cache"))


def test_publish_copies_a_model_as_version_one_then_two(registry, run_dir):
    first = registry.publish(run_dir / "models" / "kmeans-k3", "customers")
    second = registry.publish(run_dir / "models" / "gmm-k3", "customers")
    assert (first["version"], second["version"]) == (1, 2)
    assert registry.versions("customers") == [1, 2]
    info = registry.version_info("customers", 1)
    assert info["model_id"] == "kmeans-k3" and info["algorithm"] == "kmeans" and info["published_at"]
    source = run_dir / "models" / "kmeans-k3"
    for name, facts in info["files"].items():
        assert (source / name).read_bytes() == (registry.local_dir("customers", 1) / name).read_bytes()
        assert facts["bytes"] == (source / name).stat().st_size
    assert registry.load("customers", 1).model_id == "kmeans-k3"
    assert registry.load("customers").model_id == "gmm-k3"  # latest


def test_publish_of_a_run_directory_takes_its_recommended_model(registry, run_dir):
    board = json.loads((run_dir / "leaderboard.json").read_text())
    assert registry.publish(run_dir, "best")["model_id"] == (board.get("recommended") or board["best"])


def test_alias_moves_and_resolves(registry, run_dir):
    registry.publish(run_dir / "models" / "kmeans-k3", "customers", alias="production")
    registry.publish(run_dir / "models" / "gmm-k3", "customers")
    assert registry.aliases("customers") == {"production": 1}
    assert registry.resolve("customers", alias="production").version == 1
    registry.set_alias("customers", "production", 2)
    ref = registry.resolve("customers", alias="production")
    assert (ref.version, ref.alias) == (2, "production")
    assert registry.resolve("customers", version="v1").version == 1
    assert not [p for p in (Path(registry.root) / "customers" / "aliases").iterdir() if p.name.startswith(".")]
    registry.remove_alias("customers", "production")
    assert registry.aliases("customers") == {}


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda r: r.resolve("nobody"), NotFoundError, ["'nobody'", "customers"]),
        (lambda r: r.resolve("customers", version=9), NotFoundError, ["version 9", "[1]"]),
        (lambda r: r.resolve("customers", alias="staging"), NotFoundError, ["'staging'"]),
        (lambda r: r.resolve("customers", version=1, alias="production"), InvalidInputError, ["either"]),
        (lambda r: r.resolve("customers", version="one"), InvalidInputError, ["'one'", "positive integer"]),
        (lambda r: r.set_alias("customers", "latest", 1), InvalidInputError, ["'latest'", "reserved"]),
        (lambda r: r.set_alias("customers", "7", 1), InvalidInputError, ["'7'", "reserved"]),
        (lambda r: r.set_alias("customers", "production", 5), NotFoundError, ["version 5"]),
        (lambda r: r.resolve("../etc"), InvalidInputError, ["'../etc'", "letters, digits"]),
        (lambda r: r.remove_alias("customers", "staging"), NotFoundError, ["'staging'"]),
    ],
    ids=["unknown-model", "unknown-version", "unknown-alias", "both", "bad-version", "alias-latest", "alias-number",
         "alias-to-missing-version", "bad-name", "remove-missing-alias"],
)
def test_errors_name_the_value(registry, run_dir, call, error, words):
    registry.publish(run_dir / "models" / "kmeans-k3", "customers")
    with pytest.raises(error) as info:
        call(registry)
    for word in words:
        assert word in str(info.value)


def test_a_corrupt_model_is_refused_and_nothing_is_written(registry, run_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir / "models" / "kmeans-k3", broken)
    (broken / "estimator.json").write_text("{not json")
    with pytest.raises(ArtifactError):
        registry.publish(broken, "customers")
    assert registry.names() == []
    with pytest.raises(InvalidInputError, match="does not exist"):
        registry.publish(tmp_path / "missing", "customers")


def test_half_written_versions_are_invisible(registry, run_dir):
    registry.publish(run_dir / "models" / "kmeans-k3", "customers")
    versions = Path(registry.root) / "customers" / "versions"
    staging = versions / ".publish-crashed"  # a publisher that died while copying
    staging.mkdir()
    (staging / "model.json").write_text("{}")
    assert registry.versions("customers") == [1]
    assert registry.publish(run_dir / "models" / "gmm-k3", "customers")["version"] == 2
    assert sorted(p.name for p in versions.iterdir() if not p.name.startswith(".")) == ["1", "2"]


def test_concurrent_publishers_get_distinct_complete_versions(registry, run_dir):
    results, errors = [], []

    def publish():
        try:
            results.append(registry.publish(run_dir / "models" / "kmeans-k3", "customers")["version"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    for version in results:
        assert ClusteringModel.load(registry.local_dir("customers", version)).model_id == "kmeans-k3"


def test_object_store_registry_through_fsspec(memory_registry, run_dir):
    registry = memory_registry
    registry.publish(run_dir / "models" / "kmeans-k3", "customers", alias="production")
    registry.publish(run_dir / "models" / "hdbscan", "customers")
    assert not registry.is_local
    assert registry.names() == ["customers"]
    assert registry.versions("customers") == [1, 2]
    assert registry.resolve("customers", alias="production").version == 1
    model = registry.load("customers", alias="production")
    local = ClusteringModel.load(run_dir / "models" / "kmeans-k3")
    x = np.random.default_rng(0).normal(size=(5, len(local.pipeline.feature_names_))).astype(np.float32)
    assert np.array_equal(model.estimator.assign(x).labels, local.estimator.assign(x).labels)
    # a version whose commit file was never written does not exist, and its number is skipped
    registry.fs.pipe_file(f"{registry.root}/customers/versions/3/model.json", b"{}")
    assert registry.versions("customers") == [1, 2]
    assert registry.publish(run_dir / "models" / "gmm-k3", "customers")["version"] == 4


def test_object_store_download_is_checked(memory_registry, run_dir):
    registry = memory_registry
    registry.publish(run_dir / "models" / "kmeans-k3", "customers")
    registry.fs.pipe_file(f"{registry.root}/customers/versions/1/estimator.npz", b"tampered")
    with pytest.raises(ArtifactError, match="checksum"):
        registry.load("customers")
    assert not list((Path(registry._cache_root()) / "customers").glob("1"))


def test_default_location_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "from-env"))
    assert ModelRegistry().url == str(tmp_path / "from-env")
    monkeypatch.delenv(REGISTRY_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_registry_url() == str(tmp_path / ".clustra" / "registry")


def test_cli_publish_list_show_alias(tmp_path, run_dir, capsys):
    reg = str(tmp_path / "reg")
    assert main(["publish", str(run_dir / "models" / "kmeans-k3"), "--name", "customers", "--alias", "production",
                 "--registry", reg]) == 0
    published = json.loads(capsys.readouterr().out)
    assert (published["version"], published["alias"], published["model_id"]) == (1, "production", "kmeans-k3")
    assert main(["publish", str(run_dir), "--name", "customers", "--registry", reg]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--registry", reg]) == 0
    table = capsys.readouterr().out
    assert "customers" in table and "production=1" in table
    assert main(["models", "alias", "customers", "production", "2", "--registry", reg]) == 0
    capsys.readouterr()
    assert main(["models", "show", "customers", "--alias", "production", "--registry", reg]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 2 and shown["aliases"] == {"production": 2} and len(shown["versions"]) == 2
    assert {"input_schema", "clusters", "metrics"} <= set(shown)
    assert all({"cluster_id", "name", "size"} <= set(c) for c in shown["clusters"])
    assert main(["models", "list", "--json", "--registry", reg]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["n_versions"] == 2


def test_cli_errors_are_one_line_and_exit_2(tmp_path, run_dir, capsys):
    reg = str(tmp_path / "reg")
    assert main(["models", "show", "nobody", "--registry", reg]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clustra: error:") and "'nobody'" in err[0]
    assert main(["publish", str(run_dir), "--name", "bad name", "--registry", reg]) == 2
    assert "'bad name'" in capsys.readouterr().err
    assert not (tmp_path / "reg").exists() or ModelRegistry(reg).names() == []


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class _ReadOnly:
    """Make a directory tree unwritable for this process: ``chattr +i`` as root (root ignores modes), else chmod."""

    def __init__(self, root: Path) -> None:
        import os
        import subprocess

        self.root, self.as_root = root, os.geteuid() == 0
        self.paths = [root, *sorted(root.rglob("*"))]
        if self.as_root:
            subprocess.run(["chattr", "-R", "+i", str(root)], check=True, capture_output=True)
        else:
            for path in self.paths:
                path.chmod(path.stat().st_mode & ~0o222)

    def undo(self) -> None:
        import subprocess

        if self.as_root:
            subprocess.run(["chattr", "-R", "-i", str(self.root)], check=True, capture_output=True)
        else:
            for path in self.paths:
                path.chmod(path.stat().st_mode | 0o200)


@pytest.mark.parametrize(
    "argv",
    [["publish", "MODEL", "--name", "customers"], ["publish", "MODEL", "--name", "customers", "--alias", "production"],
     ["publish", "MODEL", "--name", "newcomer"], ["models", "alias", "customers", "production", "1"]],
    ids=["new-version", "with-alias", "new-model", "move-alias"],
)
def test_a_read_only_registry_is_one_error_line_and_nothing_changes(tmp_path, run_dir, argv):
    """Issue 15: `clustra publish` to a read-only registry printed 3 chained tracebacks."""
    import subprocess
    import sys

    registry = ModelRegistry(tmp_path / "registry")
    registry.publish(run_dir / "models" / "kmeans-k3", "customers", alias="production")
    before = _snapshot(tmp_path / "registry")
    argv = [str(run_dir / "models" / "gmm-k3") if a == "MODEL" else a for a in argv]
    locked = _ReadOnly(tmp_path / "registry")
    try:
        result = subprocess.run([sys.executable, "-m", "clustra.cli", *argv, "--registry", registry.url],
                                capture_output=True, text=True, timeout=120)
    finally:
        locked.undo()
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clustra: error: ") and "Traceback" not in result.stderr, result.stderr
    assert registry.url in lines[0] and ("not permitted" in lines[0] or "ermission denied" in lines[0])
    assert result.stdout == ""
    assert _snapshot(tmp_path / "registry") == before
