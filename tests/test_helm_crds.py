"""The chart's custom resources against the operators' real CRDs (deploy/helm/crds-for-validation).

Every values file in the chart's ci/ folder (and a few --set combinations) is rendered with
``helm template``; every RayService, DaskCluster and DaskWorkerGroup must validate against the
CRD's openAPIV3Schema converted to JSON Schema (deploy/helm/crd_validation.py): no unknown
fields, the right types, required fields present, enum values.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml
from test_helm import CHART, CI_VALUES, FULL, _load_script, find, helm, one, render  # noqa: F401 (helm is a fixture)

crd_validation = _load_script("crd_validation")

CRDS = crd_validation.CRD_DIR
CURRENT = ("kuberay-v1.3.0-rayservices.yaml", "dask-operator-daskclusters.yaml", "dask-operator-daskworkergroups.yaml")
CUSTOM_KINDS = {"RayService", "DaskCluster", "DaskWorkerGroup"}
FULL_VALUES = CHART / "ci" / "full-values.yaml"


@functools.lru_cache(maxsize=None)
def schemas(*names: str) -> dict:
    return crd_validation.load_crds([CRDS / name for name in names])


def crd_errors(docs: list[dict], *names: str) -> list[str]:
    return crd_validation.validate_manifests(docs, schemas(*(names or CURRENT)), CUSTOM_KINDS)


# Renderings beyond the ci/ files: the Dask operator with and without GPU workers, auth and
# object storage on, everything off but serving.
EXTRA = {
    "operator": ("dask.mode=operator",),
    "operator-gpu-int-quantities": ("dask.mode=operator", "dask.gpuWorkers.enabled=true", "dask.gpuWorkers.gpusPerPod=2",
                                    "dask.workers.resources.limits.cpu=2", "dask.scheduler.resources.requests.cpu=0.5"),
    "ray-gpu-auth": ("serving.gpuWorkers.enabled=true", "serving.modelDeployment.enabled=true",
                     "serving.modelDeployment.numGpus=1", "auth.enabled=true", "serving.enableInTreeAutoscaling=true",
                     "serving.modelDeployment.autoscaling.enabled=true"),
}


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: "defaults" if v is None else v.name)
def test_every_ci_values_file_renders_custom_resources_the_crds_accept(helm: str, values: Path | None) -> None:
    docs = render(helm, files=(values,) if values else ())
    assert find(docs, "RayService"), "every ci/ values file serves through a RayService"
    assert crd_errors(docs) == []


@pytest.mark.parametrize("name", EXTRA)
def test_other_renderings_match_the_crds(helm: str, name: str) -> None:
    docs = render(helm, *EXTRA[name])
    assert {d["kind"] for d in docs} & CUSTOM_KINDS
    assert crd_errors(docs) == []


def test_the_ci_files_cover_every_custom_resource_kind(helm: str) -> None:
    kinds = {d["kind"] for values in CI_VALUES for d in render(helm, files=(values,))}
    assert CUSTOM_KINDS <= kinds


def test_quantities_render_as_strings_where_the_dask_crd_types_them_as_strings(helm: str) -> None:
    docs = render(helm, *EXTRA["operator-gpu-int-quantities"])
    worker = one(docs, "DaskWorkerGroup", f"{FULL}-dask-gpu")["spec"]["worker"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == "2"
    cluster = one(docs, "DaskCluster", f"{FULL}-dask")["spec"]
    assert cluster["worker"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"
    assert cluster["scheduler"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "0.5"


def _set(doc: dict, path: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return doc


_DELETE = object()
RAY_CONTAINER = "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0"
DASK_CONTAINER = "spec.worker.spec.containers.0"


@pytest.mark.parametrize(
    ("kind", "path", "value", "message"),
    [
        ("RayService", f"{RAY_CONTAINER}.resource", {}, "'resource' was unexpected"),
        ("RayService", "spec.rayClusterConfig.headGroupSpec.rayStartParam", {}, "'rayStartParam' was unexpected"),
        ("RayService", "spec.serveConfigV2", {"applications": []}, "is not of type 'string'"),
        ("RayService", "spec.rayClusterConfig.workerGroupSpecs.0.replicas", "1", "'1' is not of type 'integer'"),
        ("RayService", "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0.name", _DELETE,
         "'name' is a required property"),
        ("RayService", "spec.rayClusterConfig.autoscalerOptions", {"upscalingMode": "Sometimes"},
         "'Sometimes' is not one of ['Default', 'Aggressive', 'Conservative']"),
        ("DaskCluster", f"{DASK_CONTAINER}.resources.limits.cpu", 2, "2 is not of type 'string'"),
        ("DaskCluster", "spec.worker.replica", 2, "'replica' was unexpected"),
        ("DaskCluster", "spec.scheduler.service", _DELETE, "'service' is a required property"),
        ("DaskWorkerGroup", f"{DASK_CONTAINER}.resources.limits.nvidia.com/gpu", 1, "1 is not of type 'string'"),
        ("DaskWorkerGroup", "spec.clusterName", "x", "'clusterName' was unexpected"),
    ],
    ids=["unknown-container-field", "unknown-group-field", "serve-config-type", "replicas-type", "required-name",
         "enum", "dask-quantity-type", "dask-unknown-field", "dask-required", "gpu-quantity-type", "group-unknown-field"],
)
def test_a_planted_mistake_fails_validation(helm: str, kind: str, path: str, value: object, message: str) -> None:
    docs = render(helm, files=(FULL_VALUES,))
    (doc,) = find(docs, kind)
    if path.endswith("nvidia.com/gpu"):  # a key with dots
        bad = copy.deepcopy(doc)
        bad["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = value
    else:
        bad = _set(doc, path, value)
    assert crd_errors([doc]) == []
    errors = crd_errors([bad])
    assert len(errors) == 1 and message in errors[0], errors
    assert errors[0].startswith(f"{kind}/{doc['metadata']['name']}: .")


def test_a_custom_resource_without_a_crd_is_reported() -> None:
    doc = {"apiVersion": "ray.io/v2", "kind": "RayService", "metadata": {"name": "x"}, "spec": {}}
    (error,) = crd_errors([doc])
    assert "RayService/x: no CRD for apiVersion=ray.io/v2" in error


def test_kuberay_1_2_lacks_upgrade_strategy_so_the_chart_needs_1_3(helm: str) -> None:
    """The minimum KubeRay version in the chart README, proved: v1.2.2's CRD rejects the RayService."""
    old = "kuberay-v1.2.2-rayservices.yaml"
    for values in CI_VALUES:
        errors = crd_errors(find(render(helm, files=(values,)), "RayService"), old)
        assert errors == [f"RayService/{FULL}-serving: .spec: Additional properties are not allowed "
                          "('upgradeStrategy' was unexpected)"], values.name
    readme = (CHART / "README.md").read_text()
    assert "KubeRay operator](https://github.com/ray-project/kuberay) v1.3.0 or newer" in readme
    assert "v1.2 or newer" not in readme


# --- the conversion itself ------------------------------------------------------------------

CONVERSION = {
    "type": "object",
    "properties": {
        "strict": {"type": "object", "properties": {"a": {"type": "string"}}},
        "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
        "map": {"type": "object", "additionalProperties": {"type": "integer"}},
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "maybe": {"type": "string", "nullable": True},
        "embedded": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {"spec": {"type": "object"}}},
        "mode": {"type": "string", "enum": ["A", "B"]},
    },
    "required": ["mode"],
}


@pytest.mark.parametrize(
    ("instance", "valid"),
    [
        ({"mode": "A", "strict": {"a": "x"}}, True),
        ({"mode": "A", "strict": {"b": "x"}}, False),
        ({"mode": "A", "open": {"b": 1}}, True),
        ({"mode": "A", "open": {"a": 1}}, False),
        ({"mode": "A", "map": {"any": 1}}, True),
        ({"mode": "A", "map": {"any": "1"}}, False),
        ({"mode": "A", "port": 80}, True),
        ({"mode": "A", "port": "http"}, True),
        ({"mode": "A", "port": 1.5}, False),
        ({"mode": "A", "maybe": None}, True),
        ({"mode": "A", "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}}}, True),
        ({"mode": "C"}, False),
        ({}, False),
        ({"mode": "A", "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "status": {}}, True),
        ({"mode": "A", "extra": 1}, False),
    ],
)
def test_conversion_keeps_the_meaning_of_structural_schemas(instance: dict, valid: bool) -> None:
    import jsonschema

    schema = crd_validation.to_json_schema(CONVERSION, root=True)
    assert jsonschema.Draft202012Validator(schema).is_valid(instance) is valid


def test_validation_script_reports_violations(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    bad = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskWorkerGroup", "metadata": {"name": "g"},
           "spec": {"cluster": "c", "worker": {"replicas": "two", "spec": {"containers": []}}}}
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(bad)))
    assert crd_validation.main([str(CRDS / "dask-operator-daskworkergroups.yaml")]) == 1
    out, err = capsys.readouterr()
    assert "DaskWorkerGroup/g: .spec.worker.replicas: 'two' is not of type 'integer'" in out
    assert "1 custom resource(s) checked, 1 violation(s)" in err
    with pytest.raises(ValueError, match="expected a CustomResourceDefinition, got kind=Pod"):
        (tmp_path / "pod.yaml").write_text("kind: Pod\n")
        crd_validation.load_crd(tmp_path / "pod.yaml")


def test_the_readme_walkthrough_install_renders_and_matches_the_crds(helm: str) -> None:
    """The `helm install` of the chart README's walkthrough, flag for flag."""
    import shlex

    readme = (CHART / "README.md").read_text()
    start = readme.index("helm install clustra deploy/helm/clustra -n clustra \\\n    --set image.repository")
    command = readme[start:readme.index("\nhelm test", start)].replace("\\\n", " ")
    words = shlex.split(command)
    sets = tuple(words[i + 1] for i, word in enumerate(words) if word == "--set")
    assert "networkPolicy.kuberayOperatorNamespace=kuberay-operator" in sets and len(sets) >= 10
    docs = render(helm, *sets)
    assert {"RayService", "DaskCluster"} <= {d["kind"] for d in docs}
    assert crd_errors(docs) == []
    assert not find(docs, "PersistentVolumeClaim", f"{FULL}-registry")
