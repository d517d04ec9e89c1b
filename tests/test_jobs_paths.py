"""Spec paths stay under the configured roots: '..', absolute paths and symlinks are refused."""

from __future__ import annotations

import os

import pytest

from cluster_core.errors import InvalidInputError
from jobs.paths import PathMissingError, PathNotAllowedError, PathPolicy
from jobs.specs import FieldError


@pytest.fixture
def roots(tmp_path):
    data = tmp_path / "data"
    (data / "customers" / "region=north").mkdir(parents=True)
    (data / "customers" / "region=north" / "part-0.parquet").write_bytes(b"x")
    (data / "one.parquet").write_bytes(b"x")
    other = tmp_path / "more"
    (other / "events").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "passwords.parquet").write_bytes(b"x")
    policy = PathPolicy.create([str(data), str(other)], str(tmp_path / "outputs"))
    return policy, data, other, outside


def test_relative_paths_resolve_under_the_first_root_that_has_them(roots):
    policy, data, other, _ = roots
    assert policy.readable("customers") == str(data / "customers")
    assert policy.readable("events") == str(other / "events")
    assert policy.readable(str(data / "one.parquet")) == str(data / "one.parquet")
    assert policy.readable("customers/*/part-*.parquet") == str(data / "customers" / "*" / "part-*.parquet")
    assert os.path.isdir(policy.output_root)  # created


@pytest.mark.parametrize(
    "value, message",
    [
        ("../secret/passwords.parquet", "contains '..'"),
        ("customers/../../secret", "contains '..'"),
        ("customers/..", "contains '..'"),
        ("/etc/passwd", "is outside the allowed roots"),
        ("s3://bucket/data", "is a URL outside the allowed roots"),
    ],
)
def test_reading_outside_the_roots_is_refused(roots, value, message):
    policy = roots[0]
    with pytest.raises(PathNotAllowedError, match="data: .*" + message.replace("(", r"\(").replace(")", r"\)")) as info:
        policy.readable(value, "data")
    assert info.value.field == "data"


def test_absolute_path_outside_is_refused_even_when_it_exists(roots):
    policy, _, _, outside = roots
    with pytest.raises(PathNotAllowedError, match="is outside the allowed roots"):
        policy.readable(str(outside / "passwords.parquet"))


def test_symlinks_that_lead_outside_are_refused(roots):
    policy, data, _, outside = roots
    os.symlink(outside / "passwords.parquet", data / "innocent.parquet")
    with pytest.raises(PathNotAllowedError, match="resolves \\(through a symlink\\) outside"):
        policy.readable("innocent.parquet")
    os.symlink(outside, data / "linked-dir")
    with pytest.raises(PathNotAllowedError, match="resolves \\(through a symlink\\) outside"):
        policy.readable("linked-dir")
    # a symlink hidden inside a dataset directory
    os.symlink(outside / "passwords.parquet", data / "customers" / "region=north" / "part-1.parquet")
    with pytest.raises(PathNotAllowedError, match="holds a symlink 'region=north/part-1.parquet'"):
        policy.readable("customers")
    # and one matched by a glob
    with pytest.raises(PathNotAllowedError, match="resolves \\(through a symlink\\) outside"):
        policy.readable("customers/region=north/*.parquet")


def test_symlinks_inside_the_roots_are_fine(roots):
    policy, data, _, _ = roots
    os.symlink(data / "one.parquet", data / "alias.parquet")
    assert policy.readable("alias.parquet") == str(data / "alias.parquet")


def test_missing_data_is_its_own_error(roots):
    with pytest.raises(PathMissingError, match="data: 'nope' does not exist under the data roots"):
        roots[0].readable("nope")
    with pytest.raises(PathMissingError):
        roots[0].readable("customers/*.csv")


def test_url_roots_confine_urls_by_prefix(tmp_path):
    policy = PathPolicy.create(["s3://bucket/team-a/"], str(tmp_path / "out"))
    assert policy.readable("s3://bucket/team-a/customers") == "s3://bucket/team-a/customers"
    for value in ("s3://bucket/team-b/x", "s3://bucket/team-a-other/x", "s3://bucket/team-a/../team-b"):
        with pytest.raises(PathNotAllowedError):
            policy.readable(value)


def test_outputs_go_under_the_output_root_or_a_data_root(roots):
    policy, data, _, outside = roots
    default = os.path.join(policy.output_root, "job1")
    assert policy.writable(None, default) == default
    assert policy.writable("scored/customers", default) == os.path.join(policy.output_root, "scored", "customers")
    assert policy.writable(str(data / "scored"), default) == str(data / "scored")
    for value, message in (
        ("../elsewhere", "contains '..'"),
        (str(outside / "out"), "is outside the allowed roots"),
        (str(data), "is a root itself"),
        ("s3://bucket/out", "is a URL"),
    ):
        with pytest.raises(PathNotAllowedError, match=message):
            policy.writable(value, default)


def test_outputs_do_not_overwrite_unless_asked_and_never_the_input(roots):
    policy, data, _, outside = roots
    default = os.path.join(policy.output_root, "job1")
    with pytest.raises(FieldError, match="output: .* already exists; choose another path or set overwrite: true"):
        policy.writable(str(data / "customers"), default)
    with pytest.raises(PathNotAllowedError, match="would overwrite or nest inside the input"):
        policy.writable(str(data / "customers"), default, overwrite=True, inputs=(str(data / "customers"),))
    with pytest.raises(PathNotAllowedError, match="would overwrite or nest inside the input"):
        policy.writable(str(data / "customers" / "scored"), default, inputs=(str(data / "customers"),))
    os.symlink(outside, data / "escape")
    with pytest.raises(PathNotAllowedError, match="is a symlink"):
        policy.writable(str(data / "escape"), default, overwrite=True)
    with pytest.raises(PathNotAllowedError, match="resolves \\(through a symlink\\) outside"):
        policy.writable(str(data / "escape" / "new"), default)


def test_roots_are_checked_when_the_service_starts(tmp_path):
    with pytest.raises(InvalidInputError, match="data root .*nope' is not a directory"):
        PathPolicy.create([str(tmp_path / "nope")], str(tmp_path / "out"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="cannot create the output root"):
        PathPolicy.create([str(tmp_path)], str(tmp_path / "file" / "out"))
