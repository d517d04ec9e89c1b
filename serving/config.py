"""The Serve config YAML: what ``serve deploy`` takes and what ``clustra serve`` runs.

:func:`serve_config` builds it (``clustra serve --print-config`` prints it); the shipped
``serving/serve_config.yaml`` is its default output with comments. Replicas, autoscaling,
batching and ``ray_actor_options`` (``num_gpus: 1`` for GPU replicas) are set here, not in
code; ``user_config`` blocks are applied live by each deployment's ``reconfigure``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from cluster_core.errors import InvalidInputError

from .settings import DEFAULT_MAX_MODELS_PER_REPLICA, HEALTH_CHECK_PERIOD_S, MAX_MODELS_ENV, IngressOptions, ModelOptions

APP_NAME = "clustra"
IMPORT_PATH = "serving.app:build_app"
INGRESS_DEPLOYMENT = "AssignmentAPI"
MODEL_DEPLOYMENT = "AssignmentModel"
SHIPPED_CONFIG = Path(__file__).with_name("serve_config.yaml")
DEFAULT_PORT = 8000


def serve_config(
    *,
    registry: str | None = None,
    host: str = "0.0.0.0",
    port: int = DEFAULT_PORT,
    model_deployment: bool | None = None,
    model_replicas: int | None = None,
    max_model_replicas: int = 4,
    model_num_cpus: float = 0.5,
    model_num_gpus: float = 0,
    ingress_replicas: int = 1,
    ingress_num_cpus: float = 0.25,
    max_models_per_replica: int = DEFAULT_MAX_MODELS_PER_REPLICA,
    ingress_options: IngressOptions | None = None,
    model_options: ModelOptions | None = None,
) -> dict[str, Any]:
    """A Serve config (``ServeDeploySchema`` form) for the Clustra application.

    By default the ingress deployment assigns itself (one hop, the lowest latency): it gets
    the model settings below (replicas, CPUs, models kept loaded) and there is no
    ``AssignmentModel`` deployment. With ``model_deployment`` (implied by GPUs), a separate
    multiplexed, batched ``AssignmentModel`` deployment assigns and the ingress forwards to it.

    Parameters
    ----------
    registry : str, optional
        Registry path or URL every node can read (``s3://...`` on a cluster); left out,
        replicas use ``CLUSTRA_REGISTRY`` or ``~/.clustra/registry``.
    host, port : str, int
        Where the Serve HTTP proxies listen.
    model_deployment : bool, optional
        Assign in a separate ``AssignmentModel`` deployment; default: only when
        ``model_num_gpus`` is above 0.
    model_replicas : int, optional
        A fixed number of replicas that assign (ingress or model replicas); default:
        autoscaling from 1 to ``max_model_replicas``.
    model_num_cpus, model_num_gpus : float
        ``ray_actor_options`` of each replica that assigns (``model_num_gpus=1`` for GPU replicas).
    ingress_replicas, ingress_num_cpus : int, float
        The ingress deployment's replicas and CPUs when a model deployment assigns.
    max_models_per_replica : int
        Models one replica keeps loaded (LRU), via ``CLUSTRA_MAX_MODELS_PER_REPLICA``.
    ingress_options, model_options : optional
        The deployments' ``user_config``.
    """
    if model_deployment is None:
        model_deployment = model_num_gpus > 0
    if model_num_gpus > 0 and not model_deployment:
        raise InvalidInputError(f"model_num_gpus={model_num_gpus} needs model_deployment=True (GPU replicas are model replicas)")
    actor: dict[str, Any] = {"num_cpus": model_num_cpus}
    if model_deployment:
        actor["num_gpus"] = model_num_gpus
    actor["runtime_env"] = {"env_vars": {MAX_MODELS_ENV: str(max_models_per_replica)}}
    ingress: dict[str, Any] = {
        "name": INGRESS_DEPLOYMENT,
        "num_replicas": ingress_replicas,
        "max_ongoing_requests": 512,
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "ray_actor_options": {"num_cpus": ingress_num_cpus},
        "user_config": (ingress_options or IngressOptions()).model_dump(),
    }
    deployments = [ingress]
    if model_deployment:
        assigner: dict[str, Any] = {
            "name": MODEL_DEPLOYMENT,
            "max_ongoing_requests": 256,
            "health_check_period_s": HEALTH_CHECK_PERIOD_S,
            "ray_actor_options": actor,
            "user_config": (model_options or ModelOptions()).model_dump(),
        }
        deployments.append(assigner)
    else:
        assigner = ingress
        ingress["ray_actor_options"] = actor
    if model_replicas is None:
        assigner.pop("num_replicas", None)
        assigner["autoscaling_config"] = {
            "min_replicas": 1,
            "max_replicas": max_model_replicas,
            "target_ongoing_requests": 32,
        }
    else:
        assigner["num_replicas"] = model_replicas
    app = {"name": APP_NAME, "route_prefix": "/", "import_path": IMPORT_PATH, "args": {}, "deployments": deployments}
    if registry:
        app["args"]["registry"] = registry
    if model_deployment:
        app["args"]["model_deployment"] = True
    return {"proxy_location": "EveryNode", "http_options": {"host": host, "port": port}, "applications": [app]}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a Serve config YAML and check it (InvalidInputError naming the problem)."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"Serve config {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"Serve config {str(path)!r} is not valid YAML: {exc}") from None
    validate_config(config)
    return config


def validate_config(config: Any) -> None:
    """Check ``config`` against Ray Serve's own ``ServeDeploySchema`` and find the Clustra app."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        raise InvalidInputError(f"not a valid Serve config: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    for app in clustra_apps(config):
        named = {d.get("name") for d in app.get("deployments", []) or []}
        if MODEL_DEPLOYMENT in named and not (app.get("args") or {}).get("model_deployment"):
            raise InvalidInputError(
                f"application {app.get('name')!r} configures deployment {MODEL_DEPLOYMENT!r}, which exists only with "
                f"args.model_deployment: true (without it the {INGRESS_DEPLOYMENT} replicas assign themselves)"
            )
    others = [app.get("name") for app in config.get("applications", []) if app.get("import_path") != IMPORT_PATH]
    if others:
        raise InvalidInputError(f"applications {others} do not use {IMPORT_PATH!r}; run such configs with `serve run` or `serve deploy`")


def clustra_apps(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The applications whose import path is ``serving.app:build_app`` (InvalidInputError if none)."""
    apps = [app for app in config.get("applications", []) if app.get("import_path") == IMPORT_PATH]
    if not apps:
        raise InvalidInputError(f"the Serve config has no application with import_path {IMPORT_PATH!r}")
    return apps


def with_overrides(config: dict[str, Any], *, registry: str | None = None, host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """A copy of ``config`` with the registry (of every Clustra app) and the HTTP host/port replaced where given."""
    config = copy.deepcopy(config)
    if registry:
        for app in clustra_apps(config):
            app.setdefault("args", {})["registry"] = registry
    http = config.setdefault("http_options", {})
    if host:
        http["host"] = host
    if port:
        http["port"] = port
    return config


def deployment_overrides(app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{deployment name: options}`` of one application entry, as ``Deployment.options`` takes them."""
    return {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app.get("deployments", [])}


def to_yaml(config: dict[str, Any]) -> str:
    """The config as YAML, keys in the order written."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
