"""Job specs: the minimal train spec, TrainConfig as the source of fields and checks, errors naming the field."""

from __future__ import annotations

import json

import pytest

from cluster_core.config import TrainConfig
from cluster_core.errors import InvalidInputError
from jobs.specs import ApplySpec, SpecError, TrainSpec, load_spec_file, parse_spec, spec_json_schema

MINIMAL = {"kind": "train", "data": "customers/", "algorithms": ["kmeans"], "k": [3, 5]}


def test_minimal_train_spec_has_defaults_for_everything_else():
    spec = parse_spec(MINIMAL)
    assert isinstance(spec, TrainSpec)
    assert spec.version == 1 and spec.data == "customers/" and spec.output is None and spec.timeout_s is None
    config = spec.train_config()
    assert type(config) is TrainConfig
    defaults = TrainConfig(algorithms=["kmeans"], k=[3, 5])
    assert config == defaults  # every library default, nothing re-declared


def test_every_train_config_field_is_a_spec_field():
    """A field added to TrainConfig (new column kinds, options) is a spec field with no change here."""
    assert set(TrainConfig.model_fields) <= set(TrainSpec.model_fields)
    spec = parse_spec({**MINIMAL, "seed": 7, "exclude": ["email"], "kinds": {"zip": "categorical"},
                       "validation_fraction": 0.3, "feature_sample_rows": 500, "max_iter": 50})
    config = spec.train_config()
    assert (config.seed, config.exclude, config.kinds, config.validation_fraction) == (7, ["email"], {"zip": "categorical"}, 0.3)
    assert (config.feature_sample_rows, config.max_iter) == (500, 50)


def test_columns_is_another_name_for_include():
    assert parse_spec({**MINIMAL, "columns": ["spend", "plan"]}).train_config().include == ["spend", "plan"]
    assert parse_spec({**MINIMAL, "include": ["spend"]}).include == ["spend"]


def test_apply_spec_names_a_model_or_a_job():
    by_path = parse_spec({"kind": "apply", "model": "runs/a", "data": "d", "output": "scored"})
    assert isinstance(by_path, ApplySpec) and by_path.model == "runs/a" and by_path.overwrite is False
    by_job = parse_spec({"kind": "apply", "job": "abc123", "model_id": "kmeans-k3", "data": "d"})
    assert by_job.job == "abc123" and by_job.model_id == "kmeans-k3" and by_job.output is None


@pytest.mark.parametrize(
    "spec, field, message",
    [
        ({}, "kind", "kind must be one of ['train', 'apply', 'drift'] (missing)"),
        ({"kind": "cluster", "data": "d"}, "kind", "got 'cluster'"),
        ({"kind": "train"}, "data", "data is required"),
        ({**MINIMAL, "k": [1, 3]}, "k", "cluster counts must be >= 2, got [1]"),
        ({**MINIMAL, "k": [3, 500]}, "k", "k=500 exceeds `max_k`=100"),
        ({**MINIMAL, "k": ["three"]}, "k[0]", "valid integer"),
        ({**MINIMAL, "algorithms": ["spectral"]}, "algorithms", "unknown algorithm(s) ['spectral']"),
        ({**MINIMAL, "colour": "red"}, "colour", "unknown field 'colour'"),
        ({**MINIMAL, "version": 2}, "version", "unsupported spec version 2; this server reads version 1"),
        ({**MINIMAL, "validation_fraction": 1.5}, "validation_fraction", "less than 1"),
        ({**MINIMAL, "timeout_s": 0}, "timeout_s", "greater than 0"),
        ({**MINIMAL, "data": "  "}, "data", "non-empty path"),
        ({**MINIMAL, "persist": "sometimes"}, "persist", "match pattern"),
        ({"kind": "apply", "data": "d"}, "job", "give exactly one of 'model'"),
        ({"kind": "apply", "data": "d", "model": "m", "job": "j"}, "job", "give exactly one of 'model'"),
        ({"kind": "apply", "data": "d", "model": "m", "model_id": "x"}, "model_id", "selects a model of 'job'"),
        ({"kind": "apply", "job": "j"}, "data", "data is required"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 25 else None,
)
def test_invalid_specs_name_the_field(spec, field, message):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    first = info.value.errors[0]
    assert first["field"] == field
    assert message in first["message"]
    assert f"{field}: " in str(info.value)


def test_a_spec_must_be_a_mapping():
    with pytest.raises(SpecError, match="a job spec is a mapping"):
        parse_spec(["kind", "train"])


def test_spec_files_yaml_and_json(tmp_path):
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text("kind: train\ndata: customers/\nalgorithms: [kmeans]\nk: [3, 5]\n")
    json_file = tmp_path / "spec.json"
    json_file.write_text(json.dumps(MINIMAL))
    assert load_spec_file(yaml_file) == load_spec_file(json_file) == MINIMAL
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(InvalidInputError, match="is not valid YAML or JSON"):
        load_spec_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(InvalidInputError, match="must hold a mapping"):
        load_spec_file(tmp_path / "list.yaml")
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_spec_file(tmp_path / "missing.yaml")


def test_json_schema_has_every_kind():
    schema = spec_json_schema()
    assert set(schema["discriminator"]["mapping"]) == {"train", "apply", "drift"}
    train = schema["$defs"]["TrainSpec"]["properties"]
    assert {"data", "algorithms", "k", "seed", "validation_fraction", "version"} <= set(train)


def test_an_apply_spec_may_ask_for_explanations():
    spec = {"kind": "apply", "job": "abc123", "data": "d"}
    assert parse_spec(spec).explain is False
    assert parse_spec({**spec, "explain": True}).explain is True
    with pytest.raises(SpecError) as error:
        parse_spec({**spec, "explain": "maybe"})
    assert [e["field"] for e in error.value.errors] == ["explain"] and "got 'maybe'" in str(error.value)


def test_an_apply_spec_may_name_the_columns_to_write():
    spec = {"kind": "apply", "job": "abc123", "data": "d"}
    assert parse_spec(spec).columns is None
    assert parse_spec({**spec, "columns": ["customer_id"]}).columns == ["customer_id"]
    for bad in ("customer_id", [""], [3]):
        with pytest.raises(SpecError) as error:
            parse_spec({**spec, "columns": bad})
        assert error.value.errors[0]["field"].startswith("columns"), error.value.errors
